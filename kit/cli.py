"""The `fengqiao` command: serve a service, create topics, manage API keys, run the platform."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from kit.settings import ALL_PORTS, Settings

SERVICES = tuple(ALL_PORTS)


def _serve(args: argparse.Namespace) -> int:
    settings = Settings(service=args.service)
    if args.host:
        settings.host = args.host
    module = importlib.import_module(f"services.{args.service}.main")
    app = module.create(settings)
    # Everything made so far (modules, models' validators, the rulebook) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks ~150,000 such
    # objects each time. The router under load ran 13 full collections in 20,000 cases;
    # their wall time fell from 6.0 to 0.7 s (docs/performance.md).
    gc.freeze()
    # Idle connections stay open longer than callers' pools keep them (httpx 5 s, proxies
    # 60 s): a server closing first races a client reusing the connection (a reset request).
    config = uvicorn.Config(app, host=settings.host, port=settings.effective_port(),
                            loop="uvloop", log_config=None, access_log=False,
                            timeout_graceful_shutdown=15, timeout_keep_alive=75)
    DrainingServer(config, app, settings.shutdown_grace_seconds).run()
    return 0


class DrainingServer(uvicorn.Server):
    """On SIGTERM, report not-ready first and keep serving for `grace` seconds, so load
    balancers stop sending work before the listener closes; a second signal stops at once.
    Then uvicorn finishes in-flight requests and the lifespan drains consumers and relays."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, grace: float) -> None:
        super().__init__(config)
        self.app = app
        self.grace = grace
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self.grace <= 0:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        self.app.state.ready = False
        threading.Timer(self.grace, super().handle_exit, (sig, frame)).start()


def _topics(args: argparse.Namespace) -> int:
    from contracts.topics import all_topic_names
    from kit.bus import create_topics, wait_for_broker

    settings = Settings()

    async def go() -> list[str]:
        await wait_for_broker(settings.kafka_bootstrap, within=args.wait)
        return await create_topics(settings.kafka_bootstrap, all_topic_names(), args.partitions)

    created = asyncio.run(go())
    print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from kit import migrate
    from kit.auth import KeyStore, auth_metadata, key_scopes
    from kit.db import create_engine

    async def go() -> int:
        engine = create_engine(Settings().effective_auth_database_url(), pool_size=1)
        try:
            await migrate.upgrade(engine, "auth", auth_metadata)
            store = KeyStore(engine)
            if args.keys_command == "create":
                try:
                    scopes = key_scopes(args.profile, args.scope, args.channel)
                    key_id, token = await store.create(
                        args.name, scopes, channels=args.channel,
                        departments=args.department, jurisdictions=args.jurisdiction)
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                print(json.dumps({"key_id": key_id, "key": token}))
            elif args.keys_command == "list":
                for row in await store.list():
                    print(json.dumps(row, ensure_ascii=False))
            elif args.keys_command == "revoke":
                if not await store.revoke(args.key_id):
                    print(f"error: no active key {args.key_id}", file=sys.stderr)
                    return 1
                print(f"revoked {args.key_id}")
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _users(args: argparse.Namespace) -> int:
    from services.workbench import users_cli

    return users_cli.run(args)


def _run(args: argparse.Namespace) -> int:
    from kit.platform import run_platform

    return run_platform()


def _backup(args: argparse.Namespace) -> int:
    from kit.backup import BackupError, backup

    try:
        manifest = backup(args.directory)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for entry in manifest["databases"]:
        print(f"{entry['name']}: {entry['file']} ({entry['bytes']} bytes, "
              f"{sum(entry['tables'].values())} rows, {', '.join(entry['components'])})")
    print(f"backup complete: {args.directory / 'manifest.json'}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from kit.backup import BackupError, restore

    try:
        manifest = restore(args.directory)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {manifest['created_at']} "
          f"({len(manifest['databases'])} database(s)); start the platform again")
    return 0


def _revision(args: argparse.Namespace) -> int:
    from kit import migrate
    from kit.auth import auth_metadata
    from kit.db import create_engine

    if args.component == "auth":
        metadata = auth_metadata
    else:
        metadata = importlib.import_module(f"services.{args.component}.store").metadata

    async def go() -> None:
        engine = create_engine("sqlite+aiosqlite:///:memory:")
        await migrate.revision(engine, args.component, metadata, args.message)
        await engine.dispose()

    asyncio.run(go())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fengqiao", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service (HTTP, consumers, relay)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--host", default=None, help="listen address (default FQ_HOST)")
    serve.set_defaults(func=_serve)

    topics = sub.add_parser("topics", help="create every topic and its .dlq (idempotent)")
    topics.add_argument("action", choices=["create"])
    topics.add_argument("--partitions", type=int, default=4)
    topics.add_argument("--wait", type=float, default=60.0, help="seconds to wait for Kafka")
    topics.set_defaults(func=_topics)

    keys = sub.add_parser("keys", help="manage API keys (stored hashed)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[],
                        help="repeatable: admin, intake:write, cases:read, ...")
    create.add_argument("--profile", choices=["hotline"], default=None,
                        help="the scopes an integration needs (hotline: intake:write, "
                        "cases:read, deliveries:read, hotline:endpoint; requires --channel)")
    create.add_argument("--channel", action="append", default=[])
    create.add_argument("--department", action="append", default=[])
    create.add_argument("--jurisdiction", action="append", default=[])
    keys_sub.add_parser("list")
    revoke = keys_sub.add_parser("revoke")
    revoke.add_argument("key_id")
    keys.set_defaults(func=_keys)

    users = sub.add_parser("users", help="workbench staff accounts (docs/workbench.md)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    ucreate = users_sub.add_parser("create", help="a new account; asks for the password "
                                   "(or FQ_NEW_PASSWORD)")
    ucreate.add_argument("username")
    ucreate.add_argument("--role", required=True,
                         choices=["clerk", "dispatcher", "handler", "leader", "admin"])
    ucreate.add_argument("--name", default=None, help="display name (default: the username)")
    ucreate.add_argument("--department", action="append", default=[])
    ucreate.add_argument("--jurisdiction", action="append", default=[])
    users_sub.add_parser("list")
    udisable = users_sub.add_parser("disable", help="sign out and revoke its key")
    udisable.add_argument("username")
    ureset = users_sub.add_parser("reset-password", help="a new password and key; enables "
                                  "a disabled account")
    ureset.add_argument("username")
    users.set_defaults(func=_users)

    run = sub.add_parser("run", help="the embedded platform: Tansu, SQLite and all services")
    run.set_defaults(func=_run)

    backup = sub.add_parser("backup", help="copy every service's database (online) with a "
                            "manifest: SQLite's backup API, or pg_dump on PostgreSQL")
    backup.add_argument("directory", type=Path, help="a new or empty directory")
    backup.set_defaults(func=_backup)

    restore = sub.add_parser("restore", help="put a backup back (the platform stopped)")
    restore.add_argument("directory", type=Path, help="a directory `backup` wrote")
    restore.set_defaults(func=_restore)

    revision = sub.add_parser("revision", help="autogenerate a migration (developers)")
    revision.add_argument("component", choices=[*SERVICES, "auth"])
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(func=_revision)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
