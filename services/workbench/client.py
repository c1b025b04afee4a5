"""The other services' REST APIs, called with the signed-in person's key: the workbench keeps
no copy of a case, and every service checks that person's rights itself."""

from __future__ import annotations

from typing import Any

import httpx

from kit.settings import Settings


class ServiceError(Exception):
    """A service answered with an error (its error body in `body`)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('message', '')}")
        self.status = status
        self.body = body

    @property
    def fields(self) -> list[dict[str, str]]:
        return list(self.body.get("fields") or [])


class ServiceUnavailable(Exception):
    """A service did not answer (down, restarting, or too slow)."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class Services:
    def __init__(self, settings: Settings) -> None:
        self.urls = {"mediation": settings.mediation_url.rstrip("/"),
                     "intake": settings.intake_url.rstrip("/")}
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=3.0))

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, service: str, method: str, path: str, token: str,
                    **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(
                method, self.urls[service] + path,
                headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
                **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(service) from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(service)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"message": response.text[:500]}
            raise ServiceError(response.status_code, body if isinstance(body, dict) else {})
        return response

    async def cases(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        r = await self._call("mediation", "GET", "/v1/cases", token, params=params)
        return dict(r.json())

    async def case(self, token: str, case_id: str) -> dict[str, Any]:
        r = await self._call("mediation", "GET", f"/v1/cases/{httpx_quote(case_id)}", token)
        return dict(r.json())

    async def transition(self, token: str, case_id: str, body: dict[str, Any]
                         ) -> dict[str, Any]:
        r = await self._call("mediation", "POST",
                             f"/v1/cases/{httpx_quote(case_id)}/transitions", token, json=body)
        return dict(r.json())

    async def assign(self, token: str, case_id: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self._call("mediation", "POST",
                             f"/v1/cases/{httpx_quote(case_id)}/assignment", token, json=body)
        return dict(r.json())

    async def stats(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        r = await self._call("mediation", "GET", "/v1/stats", token, params=params)
        return dict(r.json())

    async def stats_csv(self, token: str, params: dict[str, Any]) -> httpx.Response:
        return await self._call("mediation", "GET", "/v1/stats", token,
                                params={**params, "format": "csv"})

    async def reveal(self, token: str, case_id: str, reason: str, person: str | None
                     ) -> dict[str, Any]:
        """The case's numbers in clear from intake: audited there with the person's key and
        reason. The answer is shown once and kept nowhere."""
        body = {"reason": reason, **({"person": person} if person else {})}
        r = await self._call("intake", "POST",
                             f"/v1/intake/cases/{httpx_quote(case_id)}/personal-data", token,
                             json=body)
        return dict(r.json())

    async def walk_in(self, token: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await self._call("intake", "POST", "/v1/intake/walk_in", token, json=payload)
        return r.status_code, dict(r.json())


def httpx_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
