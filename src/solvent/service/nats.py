"""NATS JetStream beside the venue (nats-py): feed records from `<prefix>.feed.>`, events to `<prefix>.events`.

- Feed: one `solvent.feed/1` record per message, the JSON of one NDJSON line of a feed file, on any subject under
  `<prefix>.feed.` (`solvent.feed.quote.BTC`, `solvent.feed.fill`: the record's `type` says what it is). The
  stream `<PREFIX>_FEED` keeps them in publication order, which must be the records' `seq` order; the venue reads
  them through one durable pull consumer (`durable`), acknowledging each only after the venue has logged it
  (`solvent.service.bus`). One venue per consumer: two pumps on one durable would split the feed.
- Events: one `solvent.events/1` event per message on `<prefix>.events`, in `seq` order, the header
  `Nats-Msg-Id` set to the event's `seq` (JetStream drops a repeat within `duplicate_window_s`), kept in the
  stream `<PREFIX>_EVENTS`.

Restart: the pump starts the consumer afresh, at the first message after its acknowledgement floor when the venue
has applied input already (everything acknowledged was logged first), else at the start of the stream (a new
venue takes the whole feed; the records it has are skipped either way). Delivery is thus in order from that
point, with no wait for the bus's redelivery timer, and the events pick up after the last one on the subject.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from solvent._extras import requires_extra
from solvent.errors import SolventError
from solvent.service.bus import Delivery, Pump
from solvent.service.venue import Venue

with requires_extra("nats"):
    import nats
    from nats.aio.client import Client
    from nats.errors import NoServersError
    from nats.js import JetStreamContext
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header, StreamConfig
    from nats.js.errors import NotFoundError

DEFAULT_URL: Final = "nats://127.0.0.1:4222"
LOG: Final = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NatsConfig:
    """Where the bus is and what the venue's subjects, streams and consumer are called."""

    url: str = DEFAULT_URL
    prefix: str = "solvent"
    durable: str = "solvent-venue"
    batch: int = 256  # messages per fetch (one venue batch at most)
    fetch_timeout_s: float = 0.25  # how long a fetch waits for messages: the longest a stop waits
    ack_wait_s: float = 30.0
    duplicate_window_s: float = 120.0
    reconnect_attempts: int = 10  # one a second: without a server for longer, the pump stops (a restart resumes)

    @property
    def feed_subject(self) -> str:
        return f"{self.prefix}.feed.>"

    @property
    def events_subject(self) -> str:
        return f"{self.prefix}.events"

    @property
    def feed_stream(self) -> str:
        return f"{self._stream_prefix}_FEED"

    @property
    def events_stream(self) -> str:
        return f"{self._stream_prefix}_EVENTS"

    @property
    def _stream_prefix(self) -> str:
        return self.prefix.upper().replace(".", "_")


async def ensure_streams(js: JetStreamContext, config: NatsConfig) -> None:
    """Create the feed and events streams if they are not there (an existing stream is left as it is). Both drop a
    message whose `Nats-Msg-Id` they have seen within `duplicate_window_s` (a feeder may set it to the `seq`)."""
    for name, subject in ((config.feed_stream, config.feed_subject), (config.events_stream, config.events_subject)):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=name, subjects=[subject], duplicate_window=config.duplicate_window_s))


class JetStreamFeed:
    """The feed consumer (`FeedConsumer`): a durable pull consumer on the feed stream."""

    def __init__(self, subscription: JetStreamContext.PullSubscription, config: NatsConfig) -> None:
        self.subscription = subscription
        self.config = config

    @classmethod
    async def open(cls, js: JetStreamContext, config: NatsConfig, resume: bool) -> JetStreamFeed:
        """The consumer, started afresh: after its acknowledgement floor if `resume`, else at the stream's start."""
        start = None
        try:
            info = await js.consumer_info(config.feed_stream, config.durable)
            await js.delete_consumer(config.feed_stream, config.durable)
            if resume and info.ack_floor is not None:
                start = info.ack_floor.stream_seq + 1
        except NotFoundError:
            pass
        consumer = ConsumerConfig(
            durable_name=config.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=config.ack_wait_s,
            max_ack_pending=config.batch,
            deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
        )
        await js.add_consumer(config.feed_stream, consumer)
        return cls(await js.pull_subscribe_bind(config.durable, config.feed_stream), config)

    async def fetch(self) -> Sequence[Delivery]:
        """Up to `batch` messages, or none when `fetch_timeout_s` passes first. nats-py signals the empty fetch
        with its own TimeoutError or, when the deadline runs out between its two pull requests (a busy machine),
        with asyncio's bare one: both mean 'nothing yet', never a reason to stop the pump."""
        try:
            return await self.subscription.fetch(self.config.batch, timeout=self.config.fetch_timeout_s)
        except TimeoutError:  # asyncio.TimeoutError is TimeoutError (3.11); nats.errors.TimeoutError subclasses it
            return []


class JetStreamEvents:
    """The events publisher (`EventPublisher`): the events subject, each event's `seq` its message id."""

    def __init__(self, js: JetStreamContext, config: NatsConfig) -> None:
        self.js = js
        self.config = config

    async def last_seq(self) -> int:
        try:
            last = await self.js.get_last_msg(self.config.events_stream, self.config.events_subject)
        except NotFoundError:
            return -1
        return int((last.headers or {})[Header.MSG_ID])

    async def publish(self, events: Sequence[tuple[int, bytes]]) -> None:
        for seq, data in events:
            await self.js.publish(
                self.config.events_subject, data, stream=self.config.events_stream, headers={Header.MSG_ID: str(seq)}
            )


async def connect(config: NatsConfig) -> Client:
    """A connection to the bus; connection trouble is logged at WARNING, and a server that never answers is a
    SolventError after `reconnect_attempts` tries."""

    async def log_error(exc: Exception) -> None:
        LOG.warning("NATS %s: %s", config.url, exc)

    try:
        connection: Client = await nats.connect(
            config.url, max_reconnect_attempts=config.reconnect_attempts, reconnect_time_wait=1, error_cb=log_error
        )
    except (NoServersError, OSError) as exc:
        raise SolventError(f"{config.url}: no NATS server answers ({exc})") from None
    return connection


async def run_nats(venue: Venue, config: NatsConfig, stop: asyncio.Event) -> None:
    """Connect, make sure the streams exist, and pump the feed into `venue` and its events out until `stop`."""
    connection = await connect(config)
    try:
        js = connection.jetstream()
        await ensure_streams(js, config)
        feed = await JetStreamFeed.open(js, config, resume=venue.engine.last_input_seq >= 0)
        await Pump(venue, feed, JetStreamEvents(js, config)).run(stop)
    finally:
        if connection.is_connected:
            await connection.flush()  # the last acknowledgements reach the server
        await connection.close()


def serve_nats(venue: Venue, config: NatsConfig, stop: threading.Event) -> None:
    """`run_nats` in this thread, until `stop` is set from another (`solvent nats-run`, or beside the HTTP API:
    `threading.Thread(target=serve_nats, args=(venue, config, stop)).start()`)."""

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        waiter = loop.run_in_executor(None, stop.wait)
        waiter.add_done_callback(lambda _: stopping.set())
        try:
            await run_nats(venue, config, stopping)
        finally:
            stop.set()  # an error ended the pump: release the waiting thread
            await waiter

    asyncio.run(main())
