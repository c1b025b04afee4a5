"""A 12345 hotline platform's side of the integration with a fengqiao centre, runnable.

What a hotline vendor writes, in one file, using only the documented API (docs/intake.md,
"Integrating a 12345 hotline platform") and one library, httpx:

- `Centre`: the centre's REST calls with the hotline's one key (`fengqiao keys create
  --name 12345 --profile hotline --channel hotline_12345`): post a work order, find its
  case and status, answer an extension request, read the log of the callbacks sent to it,
  list the region codes it may send. Errors become `CentreError` with the field and what to
  do, as the centre words them (`reason` in English, `reason_zh` in Chinese).
- `CallbackReceiver`: the endpoint the centre calls back (签收, 过程反馈, 延期申请, 退单, 办结,
  回访…): checks each callback's Standard Webhooks signature with the integration's
  secret, answers 401 to a forged or stale one, drops a repeat of a callback it already
  took (same `webhook-id`: delivery is at least once), and hands each new one on in order.
- `main`: the whole conversation from a terminal, for a first try against a centre on
  the same machine, started so that notify may call back to loopback (which it refuses by
  default, docs/notify.md):

      FQ_WEBHOOK_DENIED_NETWORKS='[]' make run
      uv run fengqiao keys create --name 12345 --profile hotline --channel hotline_12345
      HOTLINE_KEY=fq_... uv run python examples/hotline_client.py --listen 127.0.0.1:9100

  It starts the receiver, posts one order whose `callback_url` is the receiver, prints the
  case as the centre routed it and every callback as it arrives, approves any extension
  the department asks for, and stops at the result (办结) or the return (退单), or after
  `--wait` seconds. Accept and close the case meanwhile in the workbench (port 8005) or
  with the mediation API. With `--register` it first registers the receiver as the key's
  callback endpoint (docs/intake.md, "Registering a callback endpoint") and posts the order
  without `callback_url`: the callbacks come signed with the endpoint's own secret.

`--secret` is the one the centre signs this hotline's callbacks with:
`FQ_HOTLINE_CALLBACK_SECRET`, or this integration's entry of `FQ_HOTLINE_CALLBACK_SECRETS`
(docs/notify.md); against `make run`, the built-in development secret, the default here.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

CHINA = timezone(timedelta(hours=8))  # the centre writes every time at +08:00
CHANNEL = "hotline_12345"
# A callback whose timestamp is further than this from now is refused: a replay.
SIGNATURE_TOLERANCE_SECONDS = 300
# What `make run` signs callbacks with when FQ_HOTLINE_CALLBACK_SECRET is not set: the
# built-in development secret (kit/settings.py), public, refused by a production start.
MAKE_RUN_SECRET = "whsec_ZmVuZ3FpYW8tZGV2LWhvdGxpbmUtY2FsbGJhY2sta2V5"
# The steps after which nothing more is sent for an order (回访 may still follow 办结).
FINAL_STEPS = {"closed", "returned", "rated"}


class CentreError(Exception):
    """A 4xx or 5xx from the centre, with what its error body says (kit/errors.py)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("error", "http_error"))
        self.fields: list[dict[str, str]] = list(body.get("fields") or [])
        self.body = body
        detail = "; ".join(f"{f.get('field')}: {f.get('reason_zh') or f.get('reason')}"
                           for f in self.fields)
        super().__init__(f"{status} {self.code}: {body.get('message', '')}"
                         + (f" ({detail})" if detail else ""))


@dataclass
class Centre:
    """The centre's four services, called with the hotline's key."""

    key: str
    intake: str = "http://127.0.0.1:8001"
    router: str = "http://127.0.0.1:8002"
    mediation: str = "http://127.0.0.1:8003"
    notify: str = "http://127.0.0.1:8004"
    timeout: float = 10.0
    http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(headers={"Authorization": f"Bearer {self.key}"},
                                 timeout=self.timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, url, **kwargs)
        if answer.status_code == 429:  # over the key's rate: wait as told, once
            time.sleep(float(answer.headers.get("Retry-After", "1")))
            answer = self.http.request(method, url, **kwargs)
        if answer.status_code >= 400:
            try:
                body = answer.json()
            except ValueError:
                body = {"message": answer.text[:300]}
            raise CentreError(answer.status_code, body)
        return answer.json() if answer.content else None

    def post_order(self, order: dict[str, Any]) -> str:
        """The work order (1). Its case id; sending the same order again is safe (200, the
        same case id); the same number with other content is a 409 naming the fields."""
        answer = self._call("POST", f"{self.intake}/v1/intake/{CHANNEL}", json=order)
        return str(answer["case_id"])

    def case_of(self, order_no: str) -> dict[str, Any] | None:
        """The order's case as mediation holds it (status, department, limits, history), or
        None until it reaches mediation (a moment after the 202). Its status is `reported`
        until the router has decided its category, department and limits."""
        page = self._call("GET", f"{self.mediation}/v1/cases",
                          params={"external_id": order_no, "channel": CHANNEL, "limit": 1})
        if not page["items"]:
            return None
        case_id = page["items"][0]["case_id"]
        return dict(self._call("GET", f"{self.mediation}/v1/cases/{case_id}"))

    def wait_for_case(self, order_no: str, within: float = 60.0) -> dict[str, Any]:
        """The order's case once routed (normally within a second or two)."""
        deadline = time.monotonic() + within
        while (case := self.case_of(order_no)) is None or case["status"] == "reported":
            if time.monotonic() > deadline:
                raise TimeoutError(f"order {order_no} is not routed after {within:.0f} s")
            time.sleep(0.5)
        return case

    def answer_extension(self, order_no: str, extension_id: str, *, approved: bool,
                         reason: str, resolve_by: str | None = None) -> dict[str, Any]:
        """延期审核 (6): approve (optionally with another date) or deny. Safe to repeat."""
        body: dict[str, Any] = {"extension_id": extension_id, "reason": reason,
                                "decision": "approved" if approved else "denied"}
        if resolve_by:
            body["resolve_by"] = resolve_by
        return dict(self._call(
            "POST", f"{self.mediation}/v1/hotline/orders/{order_no}/extension-decision",
            json=body))

    def send_update(self, order_no: str, update_id: str, kind: str, **fields: Any
                    ) -> dict[str, Any]:
        """An update after the order (docs/intake.md, "Updates from the hotline"): `kind`
        supplement (text), chaser (text), deadline_change (deadline, urgency, text) or
        follow_up (satisfaction, text). Safe to send again with the same `update_id`."""
        return dict(self._call(
            "POST", f"{self.mediation}/v1/hotline/orders/{order_no}/updates",
            json={"update_id": update_id, "kind": kind, **fields}))

    def callbacks_sent(self, case_id: str) -> list[dict[str, Any]]:
        """notify's log of the callbacks to this case: status, attempts, what the hotline's
        endpoint answered (a 4xx's body, numbers masked)."""
        page = self._call("GET", f"{self.notify}/v1/deliveries",
                          params={"case_id": case_id, "target": "hotline_feedback"})
        return list(page["items"])

    def register_endpoint(self, url: str, kinds: list[str] | None = None) -> str | None:
        """Register (or move) this integration's one callback endpoint: the orders it posts
        without `callback_url` are called back there, for the steps in `kinds` (all if
        None). The signing secret when the endpoint is new (shown this once), else None:
        the secret stays what it was (`rotate_endpoint_secret` makes a new one)."""
        body: dict[str, Any] = {"url": url}
        if kinds is not None:
            body["kinds"] = kinds
        answer = self._call("PUT", f"{self.notify}/v1/hotline/endpoint", json=body)
        return answer["secret"]

    def rotate_endpoint_secret(self) -> str:
        """A new signing secret for the endpoint; the old one keeps signing beside it (two
        signatures on each callback) for 24 hours, so the platform can switch in its time."""
        answer = self._call("POST", f"{self.notify}/v1/hotline/endpoint/rotate-secret")
        return str(answer["secret"])

    def region_codes(self) -> list[dict[str, Any]]:
        """The division codes an order's `region_code` may carry."""
        return list(self._call("GET", f"{self.router}/v1/jurisdictions"))


def signature_is_valid(secret: str, headers: dict[str, str], body: bytes,
                       now: float | None = None) -> bool:
    """Standard Webhooks: `webhook-signature` holds one or more `v1,<base64>` (two during a
    secret rotation), each HMAC-SHA256 under the secret's key of
    `{webhook-id}.{webhook-timestamp}.{body}`."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, part.removeprefix("v1,"))
               for part in headers.get("webhook-signature", "").split())


class CallbackReceiver:
    """The hotline's callback endpoint on `host:port`, path `/callback`. A real platform
    stores the callback and answers 2xx at once (the centre waits 5 s at most and sends an
    order's callbacks one at a time, so a slow answer holds up that order's next step)."""

    def __init__(self, secret: str, host: str = "127.0.0.1", port: int = 0,
                 on_callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.secret = secret
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: set[str] = set()
        self.refused = 0
        self._lock = threading.Lock()
        self._on_callback = on_callback
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/callback"

    def __enter__(self) -> CallbackReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        if not signature_is_valid(self.secret, headers, body):
            with self._lock:
                self.refused += 1
            return 401
        with self._lock:
            if headers["webhook-id"] in self.seen:
                return 200  # a repeat of one already taken: at-least-once delivery
            self.seen.add(headers["webhook-id"])
        callback = json.loads(body)
        self.received.put(callback)
        if self._on_callback:
            self._on_callback(callback)
        return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/callback":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._take(headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass  # the demo prints callbacks itself

        return Handler


def sample_order(callback_url: str | None) -> dict[str, Any]:
    now = datetime.now(CHINA).replace(microsecond=0)
    order: dict[str, Any] = {
        "order_no": f"GD{now:%Y%m%d}-{uuid.uuid4().hex[:6].upper()}",
        "content": "楼上住户装修噪音持续一个月，多次协商无果，影响老人休息。",
        "received_at": now.isoformat(), "deadline": (now + timedelta(days=3)).isoformat(),
        "urgency": "normal", "caller_name": "王女士", "caller_phone": "13800138000"}
    if callback_url:
        order["callback_url"] = callback_url
    return order


def describe(callback: dict[str, Any]) -> str:
    return (f"[{callback['sequence']:>3}] {callback['step']:<20} {callback['status']:<13} "
            f"{callback.get('handling_department') or '':<18} {callback.get('result') or ''}")


def follow_order(centre: Centre, receiver: CallbackReceiver, order_no: str, *,
                 wait: float = 600.0, approve_extensions: bool = True,
                 echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The order's callbacks as they arrive, until its result, its return or its rating (or
    `wait` seconds); extension requests approved as they come, as a hotline operator might."""
    taken: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            callback = receiver.received.get(timeout=0.5)
        except queue.Empty:
            continue
        if callback["order_no"] != order_no:
            continue
        taken.append(callback)
        echo(describe(callback))
        if callback["step"] == "extension_requested" and approve_extensions:
            centre.answer_extension(order_no, callback["extension"]["extension_id"],
                                    approved=True, reason="同意延期")
        if callback["step"] in FINAL_STEPS:
            break
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--key", default=os.environ.get("HOTLINE_KEY"),
                        help="the hotline's key (or HOTLINE_KEY)")
    parser.add_argument("--secret", default=os.environ.get("FQ_HOTLINE_CALLBACK_SECRET",
                                                          MAKE_RUN_SECRET),
                        help="the secret callbacks are signed with (default: "
                        "FQ_HOTLINE_CALLBACK_SECRET, else `make run`'s development secret)")
    parser.add_argument("--host", default="127.0.0.1", help="the centre's host")
    parser.add_argument("--listen", default="127.0.0.1:9100",
                        help="host:port of this receiver, reachable from the centre")
    parser.add_argument("--wait", type=float, default=600.0,
                        help="seconds to wait for the result before stopping")
    parser.add_argument("--register", action="store_true",
                        help="register the receiver as this key's callback endpoint and post "
                        "the order without callback_url (callbacks signed with the "
                        "endpoint's own secret; --secret is not used)")
    args = parser.parse_args(argv)
    if not args.key or not args.secret:
        parser.error("--key (or HOTLINE_KEY) and --secret are required")
    base = f"http://{args.host}"
    centre = Centre(args.key, intake=f"{base}:8001", router=f"{base}:8002",
                    mediation=f"{base}:8003", notify=f"{base}:8004")
    host, port = args.listen.rsplit(":", 1)
    with CallbackReceiver(args.secret, host, int(port)) as receiver:
        try:
            if args.register:
                # Known only at creation: an endpoint registered before gets a new secret.
                receiver.secret = centre.register_endpoint(receiver.url) \
                    or centre.rotate_endpoint_secret()
                print(f"registered {receiver.url} as this key's callback endpoint")
            order = sample_order(None if args.register else receiver.url)
            case_id = centre.post_order(order)
            case = centre.wait_for_case(order["order_no"])
        except (CentreError, TimeoutError) as exc:
            print(f"the centre refused or did not answer: {exc}", file=sys.stderr)
            return 1
        print(f"order {order['order_no']} → case {case_id}: {case['category']}, "
              f"{case['lead_department']}, resolve by {case['resolve_by']} "
              f"({case['resolve_by_source']})")
        print(f"waiting for callbacks at {receiver.url} (accept the case in the workbench)")
        follow_order(centre, receiver, order["order_no"], wait=args.wait)
        for delivery in centre.callbacks_sent(case_id):
            print(f"  log: {delivery['kind']:<28} {delivery['status']:<10} "
                  f"attempts {delivery['attempts']}")
    centre.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
