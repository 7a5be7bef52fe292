"""A message bus beside the venue: feed records in from a consumer, the venue's events out to a publisher.

The pump is the same for every bus; an adapter (NATS JetStream in `solvent.service.nats`; Kafka would be another)
supplies two small objects, `FeedConsumer` and `EventPublisher` (docs/service.md, "Buses"):

- A delivery is acknowledged only after the venue has logged its record (or skipped it as seen, or refused it as
  malformed or out of time order: rejected, and logged at WARNING), so a consumer that dies before its acks
  reach the bus gets those deliveries again, and the venue skips what it already has (idempotent by `seq`).
- Events are published from the venue's log (an outbox), each after the last one the bus holds, in order: a
  publisher restarted after a crash publishes the rest, none twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Protocol, TypeVar

import msgspec

from solvent.errors import InputError
from solvent.service.venue import Venue
from solvent.stream.feed import FeedRecord
from solvent.stream.feedio import decode_record

LOG: Final = logging.getLogger(__name__)
#: Events read from the log and published at a time.
PUBLISH_CHUNK: Final = 1_000
T = TypeVar("T")
_ENCODE: Final = msgspec.json.Encoder().encode


class Delivery(Protocol):
    """One message from the bus: a `solvent.feed/1` record as JSON, and how to settle it."""

    @property
    def subject(self) -> str:
        """Where it came from (a subject, a topic and partition): named in log lines."""

    @property
    def data(self) -> bytes:
        """The record, one JSON object (an NDJSON line of a feed file)."""

    async def ack(self) -> None:
        """Done with: never deliver it again."""

    async def term(self) -> None:
        """Refused: never deliver it again (it will not get better)."""


class FeedConsumer(Protocol):
    """The feed side of a bus: deliveries in the order the feed was published."""

    async def fetch(self) -> Sequence[Delivery]:
        """The next deliveries, waiting a short while for some (an empty sequence when there are none yet)."""


class EventPublisher(Protocol):
    """The events side of a bus: one subject or topic, events in `seq` order."""

    async def last_seq(self) -> int:
        """The `seq` of the last event the bus holds (-1 if none)."""

    async def publish(self, events: Sequence[tuple[int, bytes]]) -> None:
        """Publish encoded events (`seq`, `solvent.events/1` JSON) in order, each confirmed by the bus; `seq` is the
        message id, so that the bus drops one it already has."""


class Pump:
    """Moves deliveries into the venue and its logged events out. The venue is called on one worker thread (its
    engine and store are single-threaded), so the bus's connection stays served while a batch is margined."""

    def __init__(self, venue: Venue, consumer: FeedConsumer, publisher: EventPublisher) -> None:
        self.venue = venue
        self.consumer = consumer
        self.publisher = publisher
        self.published = -1
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="solvent-venue")

    async def run(self, stop: asyncio.Event) -> None:
        """Publish what the log holds past the bus's last event, then ingest and publish until `stop` is set."""
        try:
            self.published = await self.publisher.last_seq()
            await self.publish()
            while not stop.is_set():
                if await self.step():
                    await self.publish()
        finally:
            self._worker.shutdown()

    async def step(self) -> int:
        """Ingest one fetch's records; returns how many deliveries it settled."""
        deliveries = await self.consumer.fetch()
        if not deliveries:
            return 0
        accepted, refused = await self._call(lambda: self._ingest(deliveries))
        for delivery in accepted:
            await delivery.ack()
        for delivery, problem in refused:  # problem: `<subject>: <field>: <message>`
            LOG.warning("refused a feed message: %s", problem)
            await delivery.term()
        return len(deliveries)

    async def publish(self) -> None:
        """Publish the logged events after the last one published, in chunks."""
        while rows := await self._call(self._logged):
            await self.publisher.publish(rows)
            self.published = rows[-1][0]

    def _logged(self) -> list[tuple[int, bytes]]:
        """On the worker: the next chunk of logged events to publish, encoded as the log holds them."""
        with self.venue.lock:
            return [(event.seq, _ENCODE(event)) for event in self.venue.events_after(self.published, PUBLISH_CHUNK)]

    def _ingest(self, deliveries: Sequence[Delivery]) -> tuple[list[Delivery], list[tuple[Delivery, str]]]:
        """On the worker: decode, keep the records that follow the venue's last in `seq` and `time`, ingest them
        (logged when this returns). Returns the deliveries to acknowledge (ingested or seen) and those refused."""
        with self.venue.lock:
            engine = self.venue.engine
            last_seq, last_time = engine.last_input_seq, engine.last_time
            records: list[FeedRecord] = []
            accepted: list[Delivery] = []
            refused: list[tuple[Delivery, str]] = []
            for delivery in deliveries:
                try:
                    record = decode_record(delivery.data, delivery.subject)
                except InputError as exc:
                    refused.append((delivery, str(exc)))
                    continue
                if record.seq <= last_seq:
                    accepted.append(delivery)  # seen: a redelivery or a resend
                elif record.time < last_time:
                    late = f"{record.time.isoformat()} of seq {record.seq} is before {last_time.isoformat()}"
                    refused.append((delivery, str(InputError(delivery.subject, "time", late))))
                else:
                    records.append(record)
                    accepted.append(delivery)
                    last_seq, last_time = record.seq, record.time
            if records:
                self.venue.ingest(records, source=deliveries[0].subject)
                self.venue.commit()  # durable before any ack, whatever the venue's commit_every
            return accepted, refused

    def _call(self, work: Callable[[], T]) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(self._worker, work)
