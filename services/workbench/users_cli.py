"""`fengqiao users create|list|disable|reset-password`: the workbench's staff accounts.
Passwords are read from the terminal (or FQ_NEW_PASSWORD, for scripts), never arguments."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from typing import Any

from kit import migrate
from kit.auth import KeyStore, auth_metadata
from kit.db import create_engine
from kit.settings import Settings
from services.workbench import accounts, store


def _password() -> str:
    if password := os.environ.get("FQ_NEW_PASSWORD"):
        return password
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise accounts.AccountError("the passwords differ")
    return first


async def _go(args: argparse.Namespace, settings: Settings) -> int:
    engine = create_engine(settings.effective_database_url(), pool_size=1)
    auth_url = settings.effective_auth_database_url()
    auth_engine = (engine if auth_url == settings.effective_database_url()
                   else create_engine(auth_url, pool_size=1))
    try:
        await migrate.upgrade(engine, "workbench", store.metadata)
        await migrate.upgrade(auth_engine, "auth", auth_metadata)
        keys = KeyStore(auth_engine)
        command = args.users_command
        if command == "create":
            await accounts.create_user(
                engine, keys, settings.workbench_secret, username=args.username,
                password=_password(), role=args.role, display_name=args.name,
                departments=args.department, jurisdictions=args.jurisdiction)
            print(f"created {args.username}")
        elif command == "list":
            for user in await store.list_users(engine):
                shown: dict[str, Any] = {k: v for k, v in user.items()
                                         if k not in ("password_hash", "key_nonce")}
                print(json.dumps(shown, ensure_ascii=False))
        elif command == "disable":
            await accounts.disable_user(engine, keys, args.username)
            print(f"disabled {args.username}")
        elif command == "reset-password":
            await accounts.reset_password(engine, keys, settings.workbench_secret,
                                          args.username, _password())
            print(f"new password set for {args.username}")
        return 0
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
        if auth_engine is not engine:
            await auth_engine.dispose()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_go(args, Settings(service="workbench")))
