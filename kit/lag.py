"""Consumer-group lag as the broker sees it: each group's committed offsets against the
log-end offsets of the topics it consumes. The consumers' own gauge
(fq_consumer_lag_messages) is written by the consumer, so a consumer that hangs, dies or
fails every batch stops updating it; this one keeps growing, because nothing commits.

Every service process runs one exporter for every group, with no leader: whichever
replicas are being scraped report the same figures (the alerts fold them with max), so a
frozen process, even the one whose group is stuck, hides nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import CONSUMER_GROUPS
from kit.consumer import TRANSIENT_ERRORS
from kit.leader import sleep_unless
from kit.metrics import CONSUMER_GROUP_COMMITTED, CONSUMER_GROUP_LAG

log = logging.getLogger(__name__)

# aiokafka raises ValueError on some replies a restarting broker sends.
UNMEASURABLE: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, ValueError)


class GroupLagExporter:
    def __init__(self, bootstrap: str, every: float = 10.0,
                 groups: Mapping[str, Sequence[str]] = CONSUMER_GROUPS) -> None:
        self.bootstrap = bootstrap
        self.every = every
        self.groups = groups
        self._stopping = asyncio.Event()
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    for (group, topic), (lag, committed) in (await self.measure()).items():
                        CONSUMER_GROUP_LAG.labels(group=group, topic=topic).set(lag)
                        CONSUMER_GROUP_COMMITTED.labels(group=group, topic=topic).set(committed)
                except UNMEASURABLE as exc:
                    # A figure that cannot be read is no figure: drop the series rather than
                    # leave the last one standing.
                    log.warning("consumer group lag not measured",
                                extra={"error": repr(exc)[:200]})
                    CONSUMER_GROUP_LAG.clear()
                    CONSUMER_GROUP_COMMITTED.clear()
                    await self._close()
                await sleep_unless(self._stopping, self.every)
        finally:
            await self._close()

    async def measure(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(lag, committed) of each group by topic: the messages it has not committed yet, and
        the sum of its committed offsets. A partition the group never committed on counts
        from its first offset (the consumers start at the earliest)."""
        admin, offsets = await self._clients()
        topics = sorted({t for ts in self.groups.values() for t in ts})
        partitions = [TopicPartition(d["topic"], p["partition"])
                      for d in await admin.describe_topics(topics) for p in d["partitions"]]
        ends = await offsets.end_offsets(partitions)
        starts = await offsets.beginning_offsets(partitions)
        figures: dict[tuple[str, str], tuple[int, int]] = {}
        for group, group_topics in self.groups.items():
            mine = [tp for tp in partitions if tp.topic in group_topics]
            # Tansu answers an offset fetch only for named partitions (not "all of them").
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            for tp in mine:
                at = committed.get(tp)
                # Below the first offset (Kafka deleted what it had not read): it restarts
                # from the first one, as with no commit.
                position = max(at.offset if at is not None else -1, starts[tp])
                lag, done = figures.get((group, tp.topic), (0, 0))
                figures[(group, tp.topic)] = (lag + max(0, ends[tp] - position), done + position)
        return figures

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            await self._close()
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                        client_id="fengqiao-lag", request_timeout_ms=5000)
            offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                       client_id="fengqiao-lag", enable_auto_commit=False,
                                       request_timeout_ms=5000)
            self._admin, self._offsets = admin, offsets
            await admin.start()
            await offsets.start()
        return self._admin, self._offsets

    async def _close(self) -> None:
        admin, offsets, self._admin, self._offsets = self._admin, self._offsets, None, None
        for client in (admin, offsets):
            if client is None:
                continue
            try:
                if isinstance(client, AIOKafkaAdminClient):
                    await client.close()
                else:
                    await client.stop()
            except Exception:  # noqa: BLE001 - closing a broken client: nothing to do
                pass
