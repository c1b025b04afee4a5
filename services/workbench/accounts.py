"""Staff accounts: roles, passwords (argon2), and the API key each account acts with.

Each account is backed by an API key of its own (kit/auth.py) with its role's scopes and its
departments and jurisdictions as the key's limits, named `workbench:<username>`: mediation and
intake check the person's rights exactly as they check any key's, and mediation's audit log
names the person. The key's token is derived, HMAC-SHA256(workbench secret, username and a
nonce), so the workbench stores no token at all: the key store holds its SHA-256 hash, the
workbench the nonce. Disabling an account revokes its key; resetting the password rotates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import Channel, Department
from kit.auth import KeyStore, Scope
from services.workbench import store

MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHash((Argon2Hasher(),))
# Verifying against this when the user does not exist takes as long as a real check, so the
# time of an answer does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class Role(StrEnum):
    CLERK = "clerk"            # 窗口受理: registers walk-ins, sees them
    DISPATCHER = "dispatcher"  # 分流调度: the dispatch queue, reassignment, 退单
    HANDLER = "handler"        # 部门办理: works its departments' cases (incl. 回访)
    LEADER = "leader"          # 中心领导: supervision (督办) and figures, reads only
    ADMIN = "admin"            # 管理员: everything


ROLE_ZH = {Role.CLERK: "窗口受理", Role.DISPATCHER: "分流调度", Role.HANDLER: "部门办理",
           Role.LEADER: "中心领导", Role.ADMIN: "管理员"}

ROLE_SCOPES: dict[Role, list[Scope]] = {
    Role.CLERK: [Scope.INTAKE_WRITE, Scope.CASES_READ],
    Role.DISPATCHER: [Scope.CASES_READ, Scope.CASES_WRITE, Scope.CASES_DISPATCH,
                      Scope.STATS_READ],
    # Handlers call the parties: they may be shown the numbers in clear, for the cases their
    # departments lead, with a reason that intake records (显示号码).
    Role.HANDLER: [Scope.CASES_READ, Scope.CASES_WRITE, Scope.STATS_READ,
                   Scope.PERSONAL_DATA_REVEAL],
    Role.LEADER: [Scope.CASES_READ, Scope.STATS_READ, Scope.AUDIT_READ],
    Role.ADMIN: [Scope.ADMIN],
}
# A clerk registers walk-ins and sees those only.
ROLE_CHANNELS: dict[Role, list[str]] = {Role.CLERK: [Channel.WALK_IN.value]}


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


@dataclass(frozen=True)
class Staff:
    """The signed-in person, as pages need them."""

    username: str
    display_name: str
    role: Role
    departments: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    token: str

    @property
    def may_register(self) -> bool:
        return self.role in (Role.CLERK, Role.DISPATCHER, Role.ADMIN)

    @property
    def may_dispatch(self) -> bool:
        return self.role in (Role.DISPATCHER, Role.ADMIN)

    @property
    def may_supervise(self) -> bool:
        return self.role in (Role.LEADER, Role.ADMIN)

    @property
    def may_see_stats(self) -> bool:
        return self.role is not Role.CLERK

    @property
    def role_zh(self) -> str:
        return ROLE_ZH[self.role]


def derive_token(secret: str, username: str, nonce: str) -> str:
    mac = hmac.new(secret.encode(), f"workbench-key\x00{username}\x00{nonce}".encode(),
                   hashlib.sha256).digest()
    return "fq_wb_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def staff_of(user: dict[str, Any], secret: str) -> Staff:
    return Staff(user["username"], user["display_name"], Role(user["role"]),
                 tuple(user["departments"]), tuple(user["jurisdictions"]),
                 derive_token(secret, user["username"], user["key_nonce"]))


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def check_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # noqa: BLE001 - an unreadable hash admits no one
        return False


def _check_limits(role: Role, departments: list[str], jurisdictions: list[str]) -> None:
    known = {d.value for d in Department}
    unknown = [d for d in departments if d not in known]
    if unknown:
        raise AccountError(f"unknown departments: {', '.join(unknown)}")
    bad = [j for j in jurisdictions if not (j.isdigit() and 1 <= len(j) <= 15)]
    if bad:
        raise AccountError(f"jurisdictions are division codes (digits): {', '.join(bad)}")
    if role is Role.HANDLER and not departments:
        raise AccountError("a handler works for at least one department (--department)")
    if role in (Role.DISPATCHER, Role.ADMIN) and departments:
        # Mediation refuses assignment to keys limited to departments.
        raise AccountError(f"a {role.value} is not limited to departments")


async def _new_key(keys: KeyStore, secret: str, username: str, role: Role,
                   departments: list[str], jurisdictions: list[str]) -> tuple[str, str]:
    nonce = secrets.token_urlsafe(16)
    key_id, _ = await keys.create(
        f"workbench:{username}", [s.value for s in ROLE_SCOPES[role]],
        channels=ROLE_CHANNELS.get(role, []), departments=departments,
        jurisdictions=jurisdictions, token=derive_token(secret, username, nonce))
    return key_id, nonce


async def create_user(engine: AsyncEngine, keys: KeyStore, secret: str, *, username: str,
                      password: str, role: str, display_name: str | None = None,
                      departments: list[str] | None = None,
                      jurisdictions: list[str] | None = None) -> None:
    if not username or len(username) > 64 or not username.replace("_", "").replace(
            "-", "").replace(".", "").isalnum():
        raise AccountError("a username is 1–64 letters, digits, '.', '-' or '_'")
    try:
        the_role = Role(role)
    except ValueError:
        raise AccountError(f"role is one of {', '.join(r.value for r in Role)}") from None
    departments, jurisdictions = sorted(departments or []), sorted(jurisdictions or [])
    _check_limits(the_role, departments, jurisdictions)
    password_hash = hash_password(password)
    if await store.get_user(engine, username) is not None:
        raise AccountError(f"user {username} exists")
    key_id, nonce = await _new_key(keys, secret, username, the_role, departments, jurisdictions)
    await store.insert_user(
        engine, username=username, display_name=display_name or username,
        password_hash=password_hash, role=the_role.value, departments=departments,
        jurisdictions=jurisdictions, key_id=key_id, key_nonce=nonce, created_at=time.time(),
        disabled_at=None)


async def disable_user(engine: AsyncEngine, keys: KeyStore, username: str) -> None:
    user = await store.get_user(engine, username)
    if user is None:
        raise AccountError(f"no user {username}")
    await keys.revoke(user["key_id"])
    await store.update_user(engine, username, disabled_at=time.time())
    await store.end_sessions_of(engine, username)


async def reset_password(engine: AsyncEngine, keys: KeyStore, secret: str, username: str,
                         password: str) -> None:
    """A new password, a new key (the old one revoked), every session signed out; enables a
    disabled account again."""
    user = await store.get_user(engine, username)
    if user is None:
        raise AccountError(f"no user {username}")
    password_hash = hash_password(password)
    await keys.revoke(user["key_id"])
    key_id, nonce = await _new_key(keys, secret, username, Role(user["role"]),
                                   user["departments"], user["jurisdictions"])
    await store.update_user(engine, username, password_hash=password_hash, key_id=key_id,
                            key_nonce=nonce, disabled_at=None)
    await store.end_sessions_of(engine, username)


class SignInThrottle:
    """Failed sign-ins per username and per address within a window: past the limit, sign-in
    is refused until the oldest failure leaves the window. Per process: behind several
    workbench replicas, each counts its own (docs/workbench.md)."""

    def __init__(self, per_user: int, per_address: int, window_seconds: float = 900.0) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until a sign-in may be tried again; 0: now."""
        now = time.monotonic()
        wait = 0.0
        for kind, value in (("user", username.lower()), ("address", address)):
            failures = self._recent((kind, value), now)
            if len(failures) >= self.limits[kind]:
                wait = max(wait, failures[0] + self.window - now)
        return wait

    def failed(self, username: str, address: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 100_000:
            self._failures.clear()
        for key in (("user", username.lower()), ("address", address)):
            self._recent(key, now).append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(("user", username.lower()), None)
