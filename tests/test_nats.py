"""Issue 15 item 2: the venue on NATS JetStream (solvent.service.nats, solvent.service.bus), against the real server
at 127.0.0.1:4222 (skipped, saying so, when it is not reachable; no mock). Each test has its own subjects, streams
and consumer (a random prefix), deleted afterwards, so parallel runs do not collide.

The twin is the engine fed the same records directly (`test_stream.run`): the events on the bus must be its events,
byte for byte, in order, each once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import numpy as np
import pytest
from test_stream import market, price_walk, run, venue

from solvent.service.venue import Venue
from solvent.stream.feed import FeedRecord

nats = pytest.importorskip("nats")

from nats.js import JetStreamContext  # noqa: E402
from nats.js.api import Header  # noqa: E402

from solvent.service.nats import NatsConfig, ensure_streams, run_nats, serve_nats  # noqa: E402

URL = os.environ.get("SOLVENT_NATS_URL", "nats://127.0.0.1:4222")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1.0).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _reachable(URL), reason=f"no NATS server at {URL}")


@pytest.fixture
def config() -> Iterator[NatsConfig]:
    """A bus of the test's own; its streams are deleted afterwards. JetStream's de-duplication is all but off (its
    least window, 100 ms), so that an event the pump published twice would be seen twice."""
    unique = NatsConfig(
        url=URL, prefix=f"t{uuid.uuid4().hex[:12]}", durable="venue", fetch_timeout_s=0.1, duplicate_window_s=0.1
    )
    yield unique

    async def delete() -> None:
        connection = await nats.connect(URL)
        js = connection.jetstream()
        for name in (unique.feed_stream, unique.events_stream):
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
        await connection.close()

    asyncio.run(delete())


async def publish_feed(js: JetStreamContext, config: NatsConfig, records: Sequence[FeedRecord]) -> None:
    for record in records:
        await js.publish(f"{config.prefix}.feed.{record.__struct_config__.tag}", msgspec.json.encode(record))


async def on_the_bus(js: JetStreamContext, config: NatsConfig) -> list[tuple[str, bytes]]:
    """The events subject's messages, in stream order: (message id, data)."""
    try:
        count = (await js.stream_info(config.events_stream)).state.messages
    except nats.js.errors.NotFoundError:
        return []
    messages = [await js.get_msg(config.events_stream, seq=k) for k in range(1, count + 1)]
    return [((m.headers or {})[Header.MSG_ID], m.data or b"") for m in messages]


async def pump_until(service: Venue, config: NatsConfig, done: Callable[[], bool], limit_s: float = 120.0) -> None:
    """Run the venue on the bus until `done()` holds (polled, not a fixed sleep), then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_nats(service, config, stop))
    deadline = time.monotonic() + limit_s
    while not done():
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline, "the venue never got there"
        await asyncio.sleep(0.02)
    stop.set()
    await task


def encoded(events: Sequence[object]) -> list[tuple[str, bytes]]:
    return [(str(e.seq), msgspec.json.encode(e)) for e in events]  # type: ignore[attr-defined]


def test_quotes_on_the_bus_move_health_and_the_events_arrive_in_order(config: NatsConfig) -> None:
    records = price_walk(40, seed=11, step=0.03)
    engine, expected = run(venue(), records)
    service = Venue.start(venue(), market(), insurance_fund=50_000.0)
    before = service.engine.margin_now().health

    async def scenario() -> list[tuple[str, bytes]]:
        connection = await nats.connect(URL)
        js = connection.jetstream()
        await ensure_streams(js, config)
        await publish_feed(js, config, records)
        await pump_until(service, config, lambda: service.engine.last_input_seq == records[-1].seq)
        published = await on_the_bus(js, config)
        await connection.close()
        return published

    published = asyncio.run(scenario())
    assert published == encoded(expected)  # every event, in order, once; its seq the message id
    after = service.engine.margin_now().health
    np.testing.assert_array_equal(after, engine.margin_now().health)
    assert np.all(after != before)
    assert any(b"MarginCallIssued" in data or b"LiquidationExecuted" in data for _, data in published)


def test_a_restarted_consumer_resumes_without_loss_or_duplicates(config: NatsConfig) -> None:
    """The first pump stops cleanly; then a consumer takes ten messages and dies without acknowledging them, after
    the venue logged five of their records (whose events it never published); more records arrive; a new pump
    takes every record once and publishes every event once, in order."""
    records = price_walk(60, seed=4, step=0.03)
    _, expected = run(venue(), records)
    service = Venue.start(venue(), market(), insurance_fund=50_000.0)

    async def scenario() -> list[tuple[str, bytes]]:
        connection = await nats.connect(URL)
        js = connection.jetstream()
        await ensure_streams(js, config)
        await publish_feed(js, config, records[:20])
        await pump_until(service, config, lambda: service.engine.last_input_seq == 19)
        await publish_feed(js, config, records[20:40])
        crashed = await nats.connect(URL)
        taken = await crashed.jetstream().pull_subscribe_bind(config.durable, config.feed_stream)
        messages = await taken.fetch(10, timeout=5.0)
        assert [msgspec.json.decode(m.data)["seq"] for m in messages] == list(range(20, 30))
        service.ingest(records[20:25])  # logged, never acknowledged, its events never published
        await crashed.close()
        await publish_feed(js, config, records[40:])
        await pump_until(service, config, lambda: service.engine.last_input_seq == records[-1].seq)
        published = await on_the_bus(js, config)
        await connection.close()
        return published

    published = asyncio.run(scenario())
    assert published == encoded(expected)
    assert [seq for seq, _ in service.store.inputs_after(-1)] == [r.seq for r in records]


def test_a_malformed_or_late_message_is_refused_and_the_feed_goes_on(
    config: NatsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    records = price_walk(6, seed=2)
    late = msgspec.json.encode(msgspec.structs.replace(records[2], seq=100, time=records[0].time))
    service = Venue.start(venue(), market(), insurance_fund=50_000.0)

    async def scenario() -> None:
        connection = await nats.connect(URL)
        js = connection.jetstream()
        await ensure_streams(js, config)
        await publish_feed(js, config, records[:3])
        await js.publish(f"{config.prefix}.feed.quote", b'{"type":"quote","seq":50,"time":"2026-11-25T00:00:00Z"}')
        await js.publish(f"{config.prefix}.feed.quote", b"not json")
        await js.publish(f"{config.prefix}.feed.quote", late)
        await publish_feed(js, config, records[3:])
        await connection.close()
        await pump_until(service, config, lambda: service.engine.last_input_seq == records[-1].seq)

    with caplog.at_level(logging.WARNING, logger="solvent.service.bus"):
        asyncio.run(scenario())
    assert [seq for seq, _ in service.store.inputs_after(-1)] == [r.seq for r in records]
    warnings = [r.getMessage() for r in caplog.records if r.name == "solvent.service.bus"]
    subject = f"{config.prefix}.feed.quote"
    assert warnings == [
        f"refused a feed message: {subject}: asset: required field is missing",
        f"refused a feed message: {subject}: not valid JSON (JSON is malformed: invalid character (byte 4))",
        f"refused a feed message: {subject}: time: {records[0].time.isoformat()} of seq 100 is before "
        f"{records[2].time.isoformat()}",
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_nats_run_serves_a_venue_until_sigterm(config: NatsConfig) -> None:
    """The command: a quote published on the bus gives events on the events subject; SIGTERM stops it cleanly."""
    command = [sys.executable, "-m", "solvent", "nats-run", "--accounts", str(EXAMPLES / "portfolio.json")]
    command += ["--market", str(EXAMPLES / "market.json"), "--nats", URL, "--prefix", config.prefix]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    async def scenario() -> list[tuple[str, bytes]]:
        connection = await nats.connect(URL)
        js = connection.jetstream()
        deadline = time.monotonic() + 120.0
        while not await on_the_bus(js, config):  # the opening events: the venue is up
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        quote = b'{"type":"quote","seq":0,"time":"2026-11-25T00:00:10Z","asset":"BTC","price":60000.0}'
        await js.publish(f"{config.prefix}.feed.quote.BTC", quote)
        # The batch's events are published one at a time: wait for those the quote caused (BTC -37% moves
        # accounts), not merely for the first new one.
        seen = await on_the_bus(js, config)
        while not any(b'"cause":0' in data for _, data in seen):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
            seen = await on_the_bus(js, config)
        await connection.close()
        return seen

    try:
        seen = asyncio.run(scenario())
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout.decode().startswith("stopped after input seq 0")
    assert [int(seq) for seq, _ in seen] == list(range(len(seen)))
    assert any(b'"cause":0' in data for _, data in seen)  # BTC -37%: the quote moved accounts


def test_a_new_venue_on_the_same_bus_takes_the_feed_from_its_start_and_publishes_no_event_twice(
    config: NatsConfig,
) -> None:
    """A venue without durable state restarted (`nats-run` on a MemoryStore): the new venue re-applies the whole feed
    and, the engine being deterministic, regenerates the events already on the subject, which it does not publish
    again. It runs on a thread of its own (`serve_nats`, the HTTP service's hook) until its stop event is set."""
    records = price_walk(40, seed=8, step=0.03)
    _, expected = run(venue(), records)
    first = Venue.start(venue(), market(), insurance_fund=50_000.0)
    second = Venue.start(venue(), market(), insurance_fund=50_000.0)

    async def first_life() -> None:
        connection = await nats.connect(URL)
        js = connection.jetstream()
        await ensure_streams(js, config)
        await publish_feed(js, config, records[:20])
        await pump_until(first, config, lambda: first.engine.last_input_seq == 19)
        await publish_feed(js, config, records[20:])
        await connection.close()

    asyncio.run(first_life())
    stop = threading.Event()
    thread = threading.Thread(target=serve_nats, args=(second, config, stop))
    thread.start()
    deadline = time.monotonic() + 120.0
    while second.engine.last_input_seq < records[-1].seq and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=60.0)
    assert not thread.is_alive()

    async def bus() -> list[tuple[str, bytes]]:
        connection = await nats.connect(URL)
        published = await on_the_bus(connection.jetstream(), config)
        await connection.close()
        return published

    assert second.engine.last_input_seq == records[-1].seq
    assert asyncio.run(bus()) == encoded(expected)


def test_an_empty_fetch_under_a_short_deadline_is_nothing_yet_not_an_error(config: NatsConfig) -> None:
    """nats-py raises asyncio's bare TimeoutError (not its own) when a fetch's deadline runs out between its no-wait
    probe and its waiting request, as on a busy machine; `nats-run` once died of it at SIGTERM with 'error:
    TimeoutError'. A deadline of half a millisecond on an empty feed makes that path likely: every fetch must
    return nothing."""
    from solvent.service.nats import JetStreamFeed

    short = dataclasses.replace(config, fetch_timeout_s=0.0005)

    async def fetch_many() -> list[int]:
        connection = await nats.connect(short.url)
        try:
            js = connection.jetstream()
            await ensure_streams(js, short)
            feed = await JetStreamFeed.open(js, short, resume=False)
            return [len(await feed.fetch()) for _ in range(300)]
        finally:
            await connection.close()

    assert asyncio.run(fetch_many()) == [0] * 300
