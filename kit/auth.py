"""API keys with scopes and limits. Keys are random tokens stored as SHA-256 hashes; a key
may be limited to channels, departments or jurisdictions. One FastAPI dependency checks them."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import JSON, Column, Float, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from kit.errors import ApiError, ErrorBody

KEY_PREFIX = "fq_"
CACHE_SECONDS = 5.0

auth_metadata = MetaData()
api_keys = Table(
    "auth_api_keys", auth_metadata,
    Column("key_id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("channels", JSON, nullable=False),
    Column("departments", JSON, nullable=False),
    Column("jurisdictions", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)


class Scope(StrEnum):
    ADMIN = "admin"
    INTAKE_WRITE = "intake:write"
    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    # A centre dispatcher: reassigns cases, dispatches the queue by hand, returns 12345 cases
    # to the hotline. Limited, as any key, to jurisdictions (and channels).
    CASES_DISPATCH = "cases:dispatch"
    # A leader (领导): issues supervision notices (督办 / 催办) and owns cases (领导包案).
    # Limited, as any key, to jurisdictions (and channels).
    CASES_LEAD = "cases:lead"
    ROUTING_READ = "routing:read"
    ROUTING_ADMIN = "routing:admin"
    SUBSCRIPTIONS = "subscriptions:manage"
    # A hotline integration registers, reads, rotates and deletes its own callback endpoint
    # (notify's /v1/hotline/endpoint): only ever the calling key's own.
    HOTLINE_ENDPOINT = "hotline:endpoint"
    DELIVERIES_READ = "deliveries:read"
    STATS_READ = "stats:read"
    PERSONAL_DATA_READ = "personal_data:read"
    # A person working a case is shown its phone and id numbers in clear (显示号码), with a
    # reason, audited: intake's POST /v1/intake/cases/{case_id}/personal-data. A key limited
    # to departments reveals only the cases its departments lead (docs/privacy.md).
    PERSONAL_DATA_REVEAL = "personal_data:reveal"
    # A person's data on request: export, and erasure ahead of the retention (mediation).
    PERSONAL_DATA_ADMIN = "personal_data:admin"
    AUDIT_READ = "audit:read"


# Keys made for one kind of integration (`fengqiao keys create --profile ...`): exactly the
# scopes it needs, each limited by the key's channels (docs/security.md).
KEY_PROFILES: dict[str, tuple[Scope, ...]] = {
    # A 12345 platform: post orders (and read the region codes it sends), read its orders'
    # cases, read its callbacks' delivery log, register its callback endpoint. Only with
    # --channel hotline_12345.
    "hotline": (Scope.INTAKE_WRITE, Scope.CASES_READ, Scope.DELIVERIES_READ,
                Scope.HOTLINE_ENDPOINT),
}


def key_scopes(profile: str | None, scopes: list[str], channels: list[str]) -> list[str]:
    """The scopes of a new key: a profile's, or those named; ValueError says what is wrong."""
    if profile is None:
        if not scopes:
            raise ValueError("name the key's scopes (--scope, repeatable) or a --profile")
        return scopes
    if profile not in KEY_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(KEY_PROFILES)}")
    if scopes:
        raise ValueError("--profile sets the scopes: do not name --scope as well")
    if not channels:
        raise ValueError(f"a {profile} key is limited to its channel: add --channel "
                         "(e.g. --channel hotline_12345)")
    return [s.value for s in KEY_PROFILES[profile]]


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may see."""

    key_id: str
    name: str
    scopes: frozenset[str]
    channels: frozenset[str] = field(default_factory=frozenset)
    departments: frozenset[str] = field(default_factory=frozenset)
    jurisdictions: frozenset[str] = field(default_factory=frozenset)

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @property
    def is_limited(self) -> bool:
        return bool(self.channels or self.departments or self.jurisdictions)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """Looks keys up by hash, with a short cache so revocation takes effect within seconds."""

    def __init__(self, engine: AsyncEngine | None, dev_key: str | None = None) -> None:
        self.engine = engine
        self._dev_hash = hash_key(dev_key) if dev_key else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, token: str) -> Principal | None:
        digest = hash_key(token)
        if self._dev_hash and secrets.compare_digest(digest, self._dev_hash):
            return Principal("dev", "dev admin key", frozenset({Scope.ADMIN}))
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        principal = await self._load(digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal

    async def _load(self, digest: str) -> Principal | None:
        if self.engine is None:
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(
                api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)))).first()
        if row is None:
            return None
        return Principal(row.key_id, row.name, frozenset(row.scopes), frozenset(row.channels),
                         frozenset(row.departments), frozenset(row.jurisdictions))

    async def create(self, name: str, scopes: list[str], *, channels: list[str] | None = None,
                     departments: list[str] | None = None,
                     jurisdictions: list[str] | None = None,
                     token: str | None = None) -> tuple[str, str]:
        """Store a new key; returns (key_id, token). The token is shown once, never stored.
        `token`: one the caller derived itself (the workbench's per-person keys), instead of
        a random one."""
        unknown = set(scopes) - {s.value for s in Scope}
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
        assert self.engine is not None
        token = token or new_token()
        key_id = secrets.token_hex(6)
        async with self.engine.begin() as conn:
            await conn.execute(api_keys.insert().values(
                key_id=key_id, key_hash=hash_key(token), name=name, scopes=sorted(scopes),
                channels=sorted(channels or []), departments=sorted(departments or []),
                jurisdictions=sorted(jurisdictions or []), created_at=time.time(),
                revoked_at=None))
        return key_id, token

    async def list(self) -> list[dict[str, object]]:
        assert self.engine is not None
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
        return [{k: v for k, v in row._mapping.items() if k != "key_hash"} for row in rows]

    async def revoke(self, key_id: str) -> bool:
        assert self.engine is not None
        async with self.engine.begin() as conn:
            result = await conn.execute(update(api_keys).where(
                api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)
            ).values(revoked_at=time.time()))
        self._cache.clear()
        return bool(result.rowcount)


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fq_...`")


def require(scope: Scope, *alternatives: Scope) -> Any:
    """A dependency that admits a caller whose key has `scope`, one of `alternatives`, or
    admin."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise ApiError(401, "unauthenticated", "An API key is required: "
                           "send 'Authorization: Bearer <key>'.")
        store: KeyStore = request.app.state.keys
        principal = await store.principal(credentials.credentials)
        if principal is None:
            raise ApiError(401, "unauthenticated", "The API key is unknown or revoked.")
        if not any(principal.allows(s) for s in (scope, *alternatives)):
            wanted = " or ".join(f"'{s.value}'" for s in (scope, *alternatives))
            raise ApiError(403, "forbidden", f"This key lacks the {wanted} scope.")
        return principal

    dependency.requires_key = True  # type: ignore[attr-defined]  # read by KeyBeforeBody
    return Depends(dependency)


def _requires_key(dependant: Any) -> bool:
    return any(getattr(d.call, "requires_key", False) or _requires_key(d)
               for d in dependant.dependencies)


class KeyRefused(Exception):
    pass


class KeyBeforeBody:
    """Refuse a request to a route that needs a key with 401 before its body is read, when it
    has no key or an unknown one: FastAPI reads and parses the body before it runs the
    route's dependencies, so an anonymous client would otherwise get 400/422 for its body
    and make the service parse up to the body limit for nothing. The check runs when the
    route first asks for the body (routing has chosen the route by then); the scope is
    still checked by the route (403), once the key is known to be valid."""

    BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needs_key: dict[int, bool] = {}

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.BODYLESS:
            await self.app(scope, receive, send)
            return
        checked = refused = False

        async def checking_receive() -> Message:
            nonlocal checked, refused
            if not checked:
                checked = True
                refusal = await self._refusal(scope) if self._route_needs_key(scope) else None
                if refusal:
                    refused = True
                    await self._refuse(send, refusal)
                    raise KeyRefused  # FastAPI turns it into a 400, which is dropped below
            return await receive()

        async def tracking_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, checking_receive, tracking_send)
        except KeyRefused:
            pass

    def _route_needs_key(self, scope: AsgiScope) -> bool:
        route = scope.get("route")
        if route is None:
            return False
        if id(route) not in self._needs_key:
            dependant = getattr(route, "dependant", None)
            self._needs_key[id(route)] = dependant is not None and _requires_key(dependant)
        return self._needs_key[id(route)]

    async def _refusal(self, scope: AsgiScope) -> str | None:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "An API key is required: send 'Authorization: Bearer <key>'."
        keys: KeyStore = scope["app"].state.keys
        if await keys.principal(token.strip()) is None:
            return "The API key is unknown or revoked."
        return None

    @staticmethod
    async def _refuse(send: Send, message: str) -> None:
        body = ErrorBody(error="unauthenticated", message=message).model_dump_json().encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
