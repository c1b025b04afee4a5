"""The baseline for bench/intake_http.py: a FastAPI endpoint on the same server stack as
intake (uvicorn, uvloop, httptools) that parses the JSON body and does nothing else."""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/intake/hotline_12345", status_code=202)
async def bare(body: dict[str, Any] = Body()) -> JSONResponse:
    return JSONResponse({"case_id": "bare", "status": "accepted"}, status_code=202)
