"""Kafka plumbing written once: encoding, the producer, topic creation and dead letters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import BaseModel

from kit.metrics import DLQ_MESSAGES

log = logging.getLogger(__name__)

CE_CONTENT_TYPE = b"application/cloudevents+json"
DLQ_REASON_HEADER = "fq-dlq-reason"
MAX_REASON_BYTES = 2000


def encode(model: BaseModel) -> bytes:
    """JSON bytes of a contract model, as every producer writes them."""
    return orjson.dumps(model.model_dump(mode="json"))


@dataclass(frozen=True)
class Record:
    """One message to publish."""

    topic: str
    value: bytes
    key: str | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Producer:
    """aiokafka producer with acks=all. No idempotence: Tansu refuses InitProducerId, so
    delivery is at-least-once and every consumer is idempotent."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._instance: AIOKafkaProducer | None = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._instance is None:
            raise RuntimeError("producer not started")
        return self._instance

    async def start(self) -> None:
        # aiokafka clients must be created inside the running event loop.
        self._instance = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, acks="all",
            enable_idempotence=False, linger_ms=5, max_batch_size=1 << 20,
            request_timeout_ms=15000, retry_backoff_ms=200,
        )
        try:
            await self._instance.start()
        except BaseException:
            await self._instance.stop()
            self._instance = None
            raise

    async def stop(self) -> None:
        if self._instance is not None:
            await self._instance.stop()
            self._instance = None

    async def reachable(self) -> bool:
        """True when the broker answered a metadata request just now."""
        try:
            return bool(await asyncio.wait_for(self._producer.client.force_metadata_update(), 5))
        except (KafkaError, OSError, TimeoutError):
            return False

    async def send_all(self, records: Sequence[Record]) -> None:
        """Publish records in order and wait until the broker acknowledged every one."""
        futures = [
            await self._producer.send(r.topic, r.value, key=r.key.encode() if r.key else None,
                                      headers=r.headers or None)
            for r in records
        ]
        if futures:
            await asyncio.gather(*futures)

    async def send_dead_letter(self, topic: str, key: bytes | None, value: bytes | None,
                               reason: str, headers: Iterable[tuple[str, bytes]] = ()) -> None:
        """Publish an unprocessable message to `<topic>.dlq` with the reason in a header."""
        dlq_topic = topic + ".dlq"
        reason_bytes = reason.encode()[:MAX_REASON_BYTES]
        all_headers = [h for h in headers if h[0] != DLQ_REASON_HEADER]
        all_headers += [(DLQ_REASON_HEADER, reason_bytes), ("fq-dlq-source-topic", topic.encode())]
        fut = await self._producer.send(dlq_topic, value or b"", key=key, headers=all_headers)
        await fut
        DLQ_MESSAGES.labels(topic=dlq_topic).inc()
        log.warning("dead-lettered a message", extra={"topic": topic, "reason": reason[:300]})


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 4) -> list[str]:
    """Create whichever of `names` do not exist yet; returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="fengqiao-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n not in existing]
        if wanted:
            try:
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted])
            except TopicAlreadyExistsError:
                pass
        return wanted
    finally:
        await admin.close()


async def wait_for_broker(bootstrap: str, within: float = 30.0) -> None:
    """Wait until the broker answers metadata requests, or raise TimeoutError."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="fengqiao-probe",
                                    request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
