"""A department's webhook receiver on loopback: it records every notification it gets (a
webhook may arrive twice when notify is killed between sending and recording; the
webhook-id header tells the copies apart)."""

from __future__ import annotations

from collections import Counter

import orjson
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect


class Receiver:
    def __init__(self) -> None:
        self.received: Counter[tuple[str, str]] = Counter()  # (path, webhook-id) → copies
        self.events: dict[tuple[str, str], tuple[str, str]] = {}  # → (case id, event type)
        self.app = FastAPI()

        @self.app.post("/hooks/{name}")
        async def hook(name: str, request: Request) -> Response:
            try:
                body = await request.body()
            except ClientDisconnect:  # notify was killed while sending: it will send again
                return Response(status_code=400)
            webhook_id = request.headers.get("webhook-id", "")
            event = orjson.loads(body)
            self.received[(name, webhook_id)] += 1
            self.events[(name, webhook_id)] = (str(event.get("subject")), str(event.get("type")))
            return Response(status_code=204)

    def unique(self, name: str) -> int:
        return sum(1 for hook, _ in self.received if hook == name)

    def copies(self, name: str) -> int:
        return sum(n - 1 for (hook, _), n in self.received.items() if hook == name)
