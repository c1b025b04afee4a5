"""Baselines on the same server stack as the services (uvicorn, uvloop, httptools): for
bench/intake_http.py a FastAPI endpoint that parses the JSON body and does nothing else; for
bench/sender.py a webhook receiver."""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/intake/hotline_12345", status_code=202)
async def bare(body: dict[str, Any] = Body()) -> JSONResponse:
    return JSONResponse({"case_id": "bare", "status": "accepted"}, status_code=202)


async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The receiver for bench/sender.py: a raw ASGI app that reads the body and answers 204,
    so that the receiving side costs as little as it can."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
