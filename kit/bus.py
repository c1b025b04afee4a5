"""Kafka plumbing written once: encoding, the producer, topic creation, dead letters, and the
broker epoch that tells when a memory-only broker came back empty."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from pydantic import BaseModel

from contracts.topics import all_topic_names
from kit.metrics import DLQ_MESSAGES

log = logging.getLogger(__name__)

CE_CONTENT_TYPE = b"application/cloudevents+json"
DLQ_REASON_HEADER = "fq-dlq-reason"
MAX_REASON_BYTES = 2000
# A dead letter keeps at most this much of the original value, so that it fits under the
# producer's max request size (1 MB) whatever a hostile producer sent.
MAX_DEAD_LETTER_BYTES = 512 * 1024
# The kit's own bookkeeping topics (one partition each), beside the platform's.
EPOCH_TOPIC = "_fengqiao.epoch"
# The epoch an outbox relay believed it was publishing to, on every record it sends: a send
# that crossed a broker restart lands on the new broker with the old epoch (see BrokerEpoch).
EPOCH_HEADER = "fq-broker-epoch"


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
    partition: int | None = None  # None: by key, as every event is


class Producer:
    """aiokafka producer with acks=all. No idempotence: Tansu refuses InitProducerId, so
    delivery is at-least-once and every consumer is idempotent."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._instance: AIOKafkaProducer | None = None
        self.epoch = BrokerEpoch(self)

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
        await self.epoch.close()
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
        for error in await self.send_each(records):
            if error is not None:
                raise error

    async def send_each(self, records: Sequence[Record]) -> list[KafkaError | None]:
        """Publish records in order; for each, None once the broker acknowledged it, or the
        error that stopped that one (the others still go)."""
        sending: list[asyncio.Future[object] | KafkaError] = []
        for r in records:
            try:
                sending.append(await self._producer.send(
                    r.topic, r.value, key=r.key.encode() if r.key else None,
                    headers=r.headers or None, partition=r.partition))
            except KafkaError as exc:  # refused before it left: too large, no such topic
                sending.append(exc)
        futures = [s for s in sending if isinstance(s, asyncio.Future)]
        outcomes = iter(await asyncio.gather(*futures, return_exceptions=True))
        errors: list[KafkaError | None] = []
        for s in sending:
            if isinstance(s, KafkaError):
                errors.append(s)
                continue
            outcome = next(outcomes)
            if isinstance(outcome, KafkaError):
                errors.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                errors.append(None)
        return errors

    async def send_dead_letter(self, topic: str, key: bytes | None, value: bytes | None,
                               reason: str, headers: Iterable[tuple[str, bytes]] = ()) -> None:
        """Publish an unprocessable message to `<topic>.dlq` with the reason in a header."""
        dlq_topic = topic + ".dlq"
        # Cut on a character boundary: a reason quoting Chinese text must stay valid UTF-8.
        reason_bytes = reason.encode()[:MAX_REASON_BYTES].decode(
            errors="ignore").encode()
        all_headers = [h for h in headers if h[0] != DLQ_REASON_HEADER]
        all_headers += [(DLQ_REASON_HEADER, reason_bytes), ("fq-dlq-source-topic", topic.encode())]
        if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
            all_headers.append(("fq-dlq-original-bytes", str(len(value)).encode()))
            value = value[:MAX_DEAD_LETTER_BYTES]
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


class BrokerEpoch:
    """Which incarnation of the broker this process talks to.

    The embedded broker keeps everything in memory: restarted, it is empty (no topics, no
    messages, no committed offsets), and it even acknowledges writes to a topic that does not
    exist yet and then loses them. The first client to find `_fengqiao.epoch` empty creates
    every topic (before anyone else writes) and writes one record there; the broker's
    timestamp of that record names the incarnation. When the epoch changes, outbox relays
    publish their kept rows again and consumers start over; with a durable Kafka it never
    changes. A check is one ListOffsets request.

    Relays stamp each record with the epoch they publish to (EPOCH_HEADER). A send under way
    when the broker restarted may land on the new one, stamped with the old epoch, ahead of
    the replay; the relay sees the epoch change after the send and publishes those rows again
    in order, so consumers skip records stamped with an epoch other than the broker's."""

    def __init__(self, producer: Producer, timeout: float = 5.0) -> None:
        self.producer = producer
        self.timeout = timeout
        self._reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()
        self._lock = asyncio.Lock()

    async def current(self) -> int:
        """The epoch of the broker now; on a new or emptied broker, create the topics first."""
        epoch = await self._read()
        if epoch is not None:
            return epoch
        async with self._lock:
            epoch = await self._read()
            if epoch is None:
                log.warning("the broker has no epoch (new, or restarted empty): creating topics")
                await create_topics(self.producer.bootstrap, all_topic_names())
                await create_topics(self.producer.bootstrap, [EPOCH_TOPIC], partitions=1)
                await self.producer.send_all(
                    [Record(EPOCH_TOPIC, uuid.uuid4().bytes, partition=0)])
                epoch = await self._read()
        if epoch is None:
            raise KafkaError("the broker epoch could not be read back")
        return epoch

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def _started_reader(self) -> AIOKafkaConsumer:
        # Every loop of the process asks at once when it starts: make one reader, not several.
        async with self._reader_lock:
            if self._reader is None:
                reader = AIOKafkaConsumer(
                    bootstrap_servers=self.producer.bootstrap, group_id=None,
                    client_id=f"{self.producer.client_id}-epoch",
                    request_timeout_ms=int(self.timeout * 1000) + 1000)
                try:
                    await reader.start()
                except BaseException:
                    await reader.stop()
                    raise
                self._reader = reader
            return self._reader

    async def _read(self) -> int | None:
        reader = await self._started_reader()
        epoch_tp = TopicPartition(EPOCH_TOPIC, 0)
        try:
            found = await asyncio.wait_for(reader.offsets_for_times({epoch_tp: 0}), self.timeout)
        except UnknownTopicOrPartitionError:
            return None
        except TimeoutError:
            # A broker that does not create topics on demand (Kafka's default) and has never
            # had ours: create it, and ask again next time.
            await create_topics(self.producer.bootstrap, [EPOCH_TOPIC], partitions=1)
            raise
        at = found.get(epoch_tp)
        # Kafka answers None for an empty partition, Tansu a timestamp of -1.
        return at.timestamp if at is not None and at.timestamp >= 0 else None
