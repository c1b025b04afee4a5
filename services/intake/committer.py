"""Group commit for single posts: concurrent requests share one transaction.

A transaction costs the same for one report as for fifty, so the requests that arrive while
one commits wait for the next and go in together. There is no added delay: a lone request
is written at once. Each request still gets its own answer, and a report that makes the
shared transaction fail is retried alone, so it cannot fail the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from kit.runtime import Runtime
from services.intake.domain import ChannelAdapter, Submission
from services.intake.handlers import submit_many

MAX_GROUP = 200


@dataclass
class _Pending:
    adapter: ChannelAdapter[Any]
    payload: BaseModel
    integration_key_id: str | None
    answer: asyncio.Future[Submission] = field(default_factory=lambda: asyncio.get_running_loop()
                                               .create_future())


class GroupCommitter:
    def __init__(self, runtime: Runtime, writers: int = 2) -> None:
        self.runtime = runtime
        self.writers = writers
        self._queue: asyncio.Queue[_Pending] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, adapter: ChannelAdapter[Any], payload: BaseModel,
                     integration_key_id: str | None = None) -> Submission:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.create_task(self._write(), name=f"group-commit-{i}")
                           for i in range(self.writers)]
        pending = _Pending(adapter, payload, integration_key_id)
        self._queue.put_nowait(pending)
        return await pending.answer

    async def _write(self) -> None:
        assert self._queue is not None
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await self._commit(group)
            except Exception as exc:  # noqa: BLE001 - retried alone: one fails only itself
                if len(group) == 1:
                    _fail(group[0], exc)
                else:
                    for one in group:
                        try:
                            await self._commit([one])
                        except Exception as own:  # noqa: BLE001 - to its own request
                            _fail(one, own)
            self.runtime.relay.wake()

    async def _commit(self, group: list[_Pending]) -> None:
        secret = self.runtime.settings.hash_secret
        # One submit_many per channel and posting key: each stamps its key on its cases.
        by_source: dict[tuple[str, str | None], list[_Pending]] = {}
        for pending in group:
            by_source.setdefault((pending.adapter.channel.value, pending.integration_key_id),
                                 []).append(pending)
        async with self.runtime.sessions() as session, session.begin():
            answers = []
            for (_, key_id), items in by_source.items():
                results = await submit_many(session, items[0].adapter,
                                            [p.payload for p in items], secret, key_id)
                answers += list(zip(items, results, strict=True))
        for pending, result in answers:
            if not pending.answer.done():
                pending.answer.set_result(result)



def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.answer.done():
        pending.answer.set_exception(exc)
