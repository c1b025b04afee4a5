"""What fengqiao POSTs to receivers outside it: department webhooks (case events as
CloudEvents) and the callbacks to a 12345 work order (办结反馈 ...). Each is documented in the
services' OpenAPI `webhooks` and in `contracts/webhooks.openapi.json`, generated from these
models, so a receiver's code can be generated the way a client's is."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.api_notify import HotlineFeedback
from contracts.events import CaseLifecycleEvent, CaseRoutedEvent, CaseSupervisionEvent

SIGNATURE = (
    "Signed as [Standard Webhooks](https://www.standardwebhooks.com/): `webhook-signature` "
    "is `v1,` + base64(HMAC-SHA256(secret, `{webhook-id}.{webhook-timestamp}.{body}`)); "
    "several signatures, space separated, during a secret rotation. Answer any 2xx within "
    "5 s; anything else is retried with backoff for hours. At least once: deduplicate on "
    "`webhook-id`.")


@dataclass(frozen=True)
class Webhook:
    name: str
    body: type[BaseModel]
    receiver: str  # who gets it: "department" (a subscription) or "hotline" (callback_url,
    # or the integration's registered endpoint)
    summary: str
    description: str


WEBHOOKS: tuple[Webhook, ...] = (
    Webhook("case-routed", CaseRoutedEvent, "department",
            "A case routed, returned and routed again, or assigned by hand (kinds routed, "
            "routed.assigned, routed.withdrawn)",
            "To a subscription's URL (docs/notify.md). The body is the event as on "
            "`case.routed.v1`: a CloudEvents 1.0 structured-mode JSON object."),
    Webhook("case-lifecycle", CaseLifecycleEvent, "department",
            "A step in a case's lifecycle (kind lifecycle.<status>), or an activity on it "
            "(kind lifecycle.<activity>: progress_note, extension_*, and the 12345 hotline's "
            "updates hotline_supplement 补充, hotline_chaser 催办, hotline_deadline_change)",
            "To a subscription's URL. The body is the event as on `case.lifecycle.v1`; order "
            "a case's steps by `data.version`. An activity leaves the status as it is "
            "(`to_status` is `from_status`) and says what happened in `data.activity`'s "
            "fields: a supplement's text in `data.notes` (numbers masked), a chaser's count "
            "in `data.chasers` and its supervision notice in `data.notice_id`, a changed "
            "limit in `data.resolve_by`."),
    Webhook("case-supervision", CaseSupervisionEvent, "department",
            "A time limit missed: supervision raised (kind supervision.<level>)",
            "To a subscription's URL. The body is the event as on `case.supervision.v1`."),
    Webhook("hotline-feedback", HotlineFeedback, "hotline",
            "A 12345 work order's result (办结反馈), follow-up (回访), rating (评价) or return "
            "(退单)",
            "To the work order's `callback_url`, signed with the hotline integration's secret; "
            "for an order without one, to the endpoint its integration registered "
            "(PUT /v1/hotline/endpoint), signed with that endpoint's secret (docs/intake.md, "
            "docs/notify.md)."),
)
