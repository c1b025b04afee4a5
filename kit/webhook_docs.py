"""Put the webhooks a service sends into its OpenAPI document (`webhooks`, OpenAPI 3.1), from
the contracts' models: receivers generate their handlers from it as clients do from paths."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header

from contracts.webhooks import SIGNATURE, WEBHOOKS, Webhook


def _receiver(hook: Webhook) -> Any:
    async def receive(**_: Any) -> None:
        """Never called: FastAPI documents the receiver's side from its signature."""

    parameters = [
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Annotated[hook.body, Body()]),
        *(inspect.Parameter(name.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY,
                            annotation=Annotated[str, Header(alias=name, description=text)])
          for name, text in (
              ("webhook-id", "The message id: the same on every retry and redelivery"),
              ("webhook-timestamp", "Unix seconds when this attempt was signed"),
              ("webhook-signature", "v1,<base64 HMAC-SHA256>; space separated if several")))]
    receive.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return receive


def add_webhooks(app: FastAPI, receivers: Iterable[str] = ("department", "hotline")) -> None:
    """Document every webhook sent to `receivers` in `app`'s OpenAPI."""
    wanted = set(receivers)
    for hook in WEBHOOKS:
        if hook.receiver in wanted:
            app.webhooks.add_api_route(
                hook.name, _receiver(hook), methods=["POST"], summary=hook.summary,
                description=f"{hook.description}\n\n{SIGNATURE}", tags=["webhooks"],
                operation_id=f"webhook_{hook.name.replace('-', '_')}",
                responses={200: {"description": "Received (any 2xx)"}}, status_code=200)


def webhooks_document() -> dict[str, Any]:
    """The OpenAPI document of every webhook alone (contracts/webhooks.openapi.json)."""
    app = FastAPI(title="fengqiao webhooks and callbacks", version="1.0.0",
                  description="What fengqiao POSTs to department receivers and to 12345 "
                  "work orders' callback URLs. " + SIGNATURE, openapi_url=None)
    add_webhooks(app)
    return app.openapi()
