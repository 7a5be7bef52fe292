"""The HTTP API (solvent.service.app, issue 15 items 1, 3 and 5): every endpoint x every role, bad requests as
4xx naming the field, bulk NDJSON and Arrow IPC equal to the library fed the same records, event resume, the
operator's audit line, metrics, and no key in any log line. The shared `service` runs each test twice: on a venue in
the test's process, and on a venue in an engine process of its own, as `solvent serve` runs it."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from solvent.cli import main
from solvent.convert.inputs import load_portfolio
from solvent.errors import InputError
from solvent.formats.io import load_market
from solvent.params import MarginParams
from solvent.service.access import VenueAccess
from solvent.service.app import ARROW, NDJSON, create_app
from solvent.service.auth import KeyEntry, KeyRing, Role, digest, read_keys
from solvent.service.build import ServeOptions
from solvent.service.engine_process import VenueClient
from solvent.service.serve import JsonFormatter
from solvent.service.venue import Venue
from solvent.store import MemoryStore
from solvent.store.url import open_store
from solvent.stream.engine import params_digest
from solvent.stream.feed import FeedRecord, Fill, Quote
from solvent.stream.feedio import write_feed

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"read": "k-read", "trader": "k-trader", "feeder": "k-feeder", "operator": "k-operator"}
CALLERS = ("none", "wrong", *KEYS)


def start_venue() -> Venue:
    return Venue.start(
        load_portfolio(ROOT / "examples" / "portfolio.json"),
        load_market(ROOT / "examples" / "market.json"),
        insurance_fund=1_000_000.0,
    )


def ring() -> KeyRing:
    return KeyRing(
        tuple(
            KeyEntry(
                name=f"{role}-desk", role=Role(role), sha256=digest(key), account="alice" if role == "trader" else None
            )
            for role, key in KEYS.items()
        )
    )


def headers(caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    return {"Authorization": f"Bearer {KEYS.get(caller, 'sk_not-a-key')}"}


@pytest.fixture(scope="module", params=["in process", "engine process"])
def service(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient[Any], VenueAccess]]:
    """The API over the examples' venue: in this process, or in an engine process of its own (`solvent serve`'s)."""
    if request.param == "in process":
        access: Venue | VenueAccess = start_venue()
    else:
        examples = ROOT / "examples"
        options = ServeOptions(
            portfolio=str(examples / "portfolio.json"), market=str(examples / "market.json"), store="memory://"
        )
        access = VenueClient.start(options)
    app = create_app(access, ring(), max_body_bytes=64 * 1024)
    try:
        with TestClient(app) as client:
            yield client, app.state.venue
    finally:
        app.state.venue.close()


class Feed:
    """Fresh records for a venue: the next sequence number, at the venue's current feed time (as of its last
    batch, which a record's answer comes after)."""

    def __init__(self, venue: VenueAccess) -> None:
        self.venue = venue
        self.seq = itertools.count(venue.view.last_input_seq + 1)

    @property
    def time(self) -> datetime:
        return self.venue.view.time

    def quote(self, price: float = 95_000.0) -> Quote:
        return Quote(seq=next(self.seq), time=self.time, asset="BTC", price=price)


def _record(feed: Feed) -> bytes:
    return msgspec.json.encode(feed.quote())


# (method, path, body maker, callers answered 200; the others with a key get 403, those without 401)
Call = tuple[str, str, Callable[[Feed], Any] | None, frozenset[str]]
OPEN = frozenset(CALLERS)
CALLS: dict[str, Call] = {
    "health": ("GET", "/health", None, OPEN),
    "ready": ("GET", "/ready", None, OPEN),
    "metrics": ("GET", "/metrics", None, OPEN),
    "openapi": ("GET", "/schema/openapi.json", None, OPEN),
    "venue": ("GET", "/venue", None, frozenset({"read", "operator"})),
    "dashboard page": ("GET", "/dashboard", None, OPEN),
    "dashboard data": ("GET", "/dashboard/data", None, frozenset({"read", "operator"})),
    "events": ("GET", "/events?follow=false", None, frozenset({"read", "operator"})),
    "own account": ("GET", "/accounts/alice", None, frozenset({"read", "operator", "trader"})),
    "other account": ("GET", "/accounts/bob", None, frozenset({"read", "operator"})),
    "sub-account": ("GET", "/accounts/alice/eth-short", None, frozenset({"read", "operator"})),
    "own figures": ("GET", "/figures/alice", None, frozenset({"read", "operator", "trader"})),
    "other figures": ("GET", "/figures/bob", None, frozenset({"read", "operator"})),
    "what-if own": (
        "POST",
        "/what-if",
        lambda f: {"account": "alice", "instrument": "BTC-PERP", "quantity": 0.1, "price": 95_000.0},
        frozenset({"trader"}),
    ),
    "what-if other": (
        "POST",
        "/what-if",
        lambda f: {"account": "bob", "instrument": "BTC-PERP", "quantity": 0.1, "price": 95_000.0},
        frozenset(),
    ),
    "record": ("POST", "/records", _record, frozenset({"feeder"})),
    "bulk": ("POST", "/records/bulk", lambda f: msgspec.json.encode(f.quote()) + b"\n", frozenset({"feeder"})),
    "params": ("PUT", "/params", lambda f: msgspec.json.encode(MarginParams()), frozenset({"operator"})),
}


def _send(client: TestClient[Any], feed: Feed, call: Call, caller: str) -> Any:
    method, path, body, _ = call
    extra = {"content-type": NDJSON} if path.endswith("/bulk") else {}
    payload = None if body is None else body(feed)
    if isinstance(payload, dict):
        return client.request(method, path, json=payload, headers=headers(caller))
    return client.request(method, path, content=payload, headers={**headers(caller), **extra})


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", CALLS)
def test_every_endpoint_answers_every_role_as_the_roles_table_says(
    service: tuple[TestClient[Any], VenueAccess], name: str, caller: str
) -> None:
    """issue 15 acceptance: 200 for a role granted the endpoint, 403 for a valid key without it, 401 without a
    valid key; a trader reads and checks trades on its own account only."""
    client, venue = service
    call = CALLS[name]
    response = _send(client, Feed(venue), call, caller)
    allowed = call[3]
    expected = 200 if caller in allowed else 401 if caller in ("none", "wrong") else 403
    assert response.status_code == expected, response.text


def test_no_log_line_holds_a_key_and_a_parameter_change_is_audited(
    service: tuple[TestClient[Any], VenueAccess], caplog: pytest.LogCaptureFixture
) -> None:
    """issue 15 item 3: the operator's change is logged with who, when and the digest before and after; no key
    (valid or not) appears in any log line, whatever was called."""
    client, venue = service
    feed = Feed(venue)
    before = venue.view.venue["provenance"]["params"]["margin"]
    new = MarginParams(days_per_year=360.0)
    with caplog.at_level(logging.DEBUG):
        for call, caller in itertools.product(CALLS.values(), CALLERS):
            _send(client, feed, call, caller)
        response = client.put("/params", content=msgspec.json.encode(new), headers=headers("operator"))
    assert response.status_code == 200
    assert response.json()["digest_after"] == params_digest(new) != before
    audit = [r for r in caplog.records if r.name == "solvent.service.audit"][-1]
    assert (audit.who, audit.before, audit.after) == ("operator-desk", before, params_digest(new))  # type: ignore[attr-defined]
    assert audit.when  # type: ignore[attr-defined]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert all(key not in text for key in (*KEYS.values(), "sk_not-a-key"))


# ------------------------------------------------------------------------------------------ bad input


def _fill(feed: Feed, **fields: Any) -> dict[str, Any]:
    record = {"type": "fill", "seq": next(feed.seq), "time": feed.time.isoformat()}
    return {**record, "account": "bob", "instrument": "BTC-PERP", "quantity": 0.1, "price": 95_000.0, **fields}


BAD: dict[str, tuple[str, str, Callable[[Feed], Any], dict[str, str], int, str]] = {
    "malformed json": ("POST", "/records", lambda f: b'{"type": "quote",', {}, 400, ""),
    "wrong type": ("POST", "/records", lambda f: {**_fill(f), "quantity": "lots"}, {}, 400, "quantity"),
    "unknown field": ("POST", "/records", lambda f: {**_fill(f), "colour": "red"}, {}, 400, "colour"),
    "unknown record type": ("POST", "/records", lambda f: {**_fill(f), "type": "bribe"}, {}, 400, ""),
    "unknown instrument": ("POST", "/records", lambda f: _fill(f, instrument="BTC-NOPE"), {}, 422, "BTC-NOPE"),
    "unknown account": ("POST", "/records", lambda f: _fill(f, account="mallory"), {}, 422, "mallory"),
    "off-market fill": ("POST", "/records", lambda f: _fill(f, price=9_500.0), {}, 422, "refused"),
    "parameters as a record": (
        "POST",
        "/records",
        lambda f: {
            "type": "params",
            "seq": next(f.seq),
            "time": f.time.isoformat(),
            "params": msgspec.to_builtins(MarginParams()),
        },
        {},
        403,
        "PUT /params",
    ),
    "time backwards": (
        "POST",
        "/records",
        lambda f: _fill(f) | {"time": (f.time - timedelta(days=1)).isoformat()},
        {},
        422,
        "time",
    ),
    "oversized body": ("POST", "/records/bulk", lambda f: b"x" * 100_000, {"content-type": NDJSON}, 413, ""),
    "bulk bad line": (
        "POST",
        "/records/bulk",
        lambda f: msgspec.json.encode(_fill(f)) + b"\n" + msgspec.json.encode({**_fill(f), "price": -1.0}),
        {"content-type": NDJSON},
        400,
        "records[1] (line 2).price",
    ),
    "bulk wrong content type": ("POST", "/records/bulk", lambda f: b"a,b\n", {"content-type": "text/csv"}, 415, "csv"),
    "bulk not arrow": ("POST", "/records/bulk", lambda f: b"not arrow", {"content-type": ARROW}, 400, "Arrow"),
    "bulk empty": ("POST", "/records/bulk", lambda f: b"\n", {"content-type": NDJSON}, 400, "no records"),
}
WHAT_IF_BAD = {
    "what-if unknown instrument": ({"instrument": "BTC-NOPE"}, 404, "BTC-NOPE"),
    "what-if negative price": ({"price": -5.0}, 400, "price"),
    "what-if unknown field": ({"leverage": 100}, 400, "leverage"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_record_is_a_4xx_naming_what_is_wrong(service: tuple[TestClient[Any], VenueAccess], name: str) -> None:
    """issue 15 acceptance: malformed JSON, wrong types, unknown fields, oversized bodies, unknown instruments and
    off-market fills get a 4xx with a clear message, never a 500."""
    client, venue = service
    method, path, body, extra, status, mention = BAD[name]
    payload = body(Feed(venue))
    auth = headers("feeder")
    if isinstance(payload, dict):
        response = client.request(method, path, json=payload, headers=auth)
    else:
        response = client.request(method, path, content=payload, headers={**auth, **extra})
    assert response.status_code == status, response.text
    assert mention in response.text


@pytest.mark.parametrize("name", WHAT_IF_BAD)
def test_a_bad_what_if_is_a_4xx_naming_what_is_wrong(service: tuple[TestClient[Any], VenueAccess], name: str) -> None:
    client, _ = service
    fields, status, mention = WHAT_IF_BAD[name]
    trade = {"account": "alice", "instrument": "BTC-PERP", "quantity": 0.1, "price": 95_000.0, **fields}
    response = client.post("/what-if", json=trade, headers=headers("trader"))
    assert response.status_code == status, response.text
    assert mention in response.text


def test_an_off_market_what_if_is_refused_by_the_price_band(service: tuple[TestClient[Any], VenueAccess]) -> None:
    """The engine's price band applies over HTTP: a trade at half the mark is refused (fail closed)."""
    client, _ = service
    trade = {"account": "alice", "instrument": "BTC-PERP", "quantity": 0.1, "price": 47_500.0}
    response = client.post("/what-if", json=trade, headers=headers("trader"))
    assert response.status_code == 200
    body = response.json()
    assert body["allowed"] is False
    assert body["reason"] == start_venue().engine.what_if("alice", "BTC-PERP", 0.1, 47_500.0).reason


# ---------------------------------------------------------------------------------- the library's answers


def _walk(venue: Venue, n: int) -> list[FeedRecord]:
    start = venue.engine.last_time
    records: list[FeedRecord] = []
    for k in range(n):
        time = start + timedelta(seconds=k + 1)
        if k % 5 == 4:
            records.append(
                Fill(
                    seq=k,
                    time=time,
                    account="bob",
                    instrument="BTC-PERP",
                    quantity=0.01,
                    price=95_000.0 * (1 - 0.004 * k),
                )
            )
        else:
            asset, base = ("BTC", 95_000.0) if k % 2 == 0 else ("ETH", 3_400.0)
            records.append(Quote(seq=k, time=time, asset=asset, price=base * (1 - 0.004 * k)))
    return records


def _arrow(records: list[FeedRecord], tmp_path: Path) -> bytes:
    """The records as an Arrow IPC stream, by way of the feed's own Parquet writer."""
    write_feed(tmp_path / "feed.parquet", records)
    table = pq.read_table(tmp_path / "feed.parquet")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize("encoding", ["ndjson", "arrow"])
def test_bulk_ingest_gives_the_events_of_the_venue_fed_the_same_records(encoding: str, tmp_path: Path) -> None:
    """The HTTP layer only parses and calls: records posted in bulk (NDJSON or Arrow IPC) give the same events and
    the same account figures (full, and as published after the last batch) as a Venue fed them directly;
    re-posting them changes nothing (idempotent)."""
    direct = start_venue()
    records = _walk(direct, 30)
    expected = direct.ingest(records[:15]) + direct.ingest(records[15:])
    served = start_venue()
    write_feed(tmp_path / "feed.ndjson", records)
    with TestClient(create_app(served, ring())) as client:
        got = []
        for part in (records[:15], records[15:], records):
            if encoding == "ndjson":
                write_feed(tmp_path / "part.ndjson", part)
                body, kind = (tmp_path / "part.ndjson").read_bytes(), NDJSON
            else:
                body, kind = _arrow(part, tmp_path), ARROW
            response = client.post("/records/bulk", content=body, headers={**headers("feeder"), "content-type": kind})
            assert response.status_code in (200, 422), response.text
            got += response.json()["events"]
        assert response.json()["applied"] == 0 and response.json()["skipped"] == len(records)
        account = client.get("/accounts/bob", headers=headers("read")).json()
        figures = client.get("/figures/bob", headers=headers("read")).json()
    assert got == [msgspec.to_builtins(e) for e in expected]
    row = direct.engine.store.row_of["bob"]
    assert account["im"] == pytest.approx(float(direct.engine.margin_now().im[row]), rel=1e-12)
    assert account["status"] == ("healthy", "margin_call", "liquidatable")[int(direct.engine.figures.status[row])]
    assert (figures["im"], figures["equity"]) == (
        float(direct.engine.figures.im[row]),
        float(direct.engine.figures.equity[row]),
    )
    assert (figures["status"], figures["last_input_seq"]) == (account["status"], records[-1].seq)


def _sse_ids(text: str) -> list[int]:
    return [int(line.removeprefix("id: ")) for line in text.splitlines() if line.startswith("id: ")]


def test_the_event_stream_resumes_after_a_sequence_number(service: tuple[TestClient[Any], VenueAccess]) -> None:
    """Server-sent events carry each event's sequence number as its id; ?after=N and Last-Event-ID: N both
    resume with event N+1, contiguous to the log's last."""
    client, venue = service
    everything = client.get("/events?follow=false", headers=headers("read"))
    logged = list(range(venue.view.next_event_seq))  # the log: every event from the first, none twice
    assert _sse_ids(everything.text) == logged
    middle = logged[len(logged) // 2]
    by_query = client.get(f"/events?after={middle}&follow=false", headers=headers("read"))
    by_header = client.get("/events?follow=false", headers={**headers("read"), "Last-Event-ID": str(middle)})
    assert _sse_ids(by_query.text) == _sse_ids(by_header.text) == [s for s in logged if s > middle]
    bad = client.get("/events?follow=false", headers={**headers("read"), "Last-Event-ID": "yesterday"})
    assert bad.status_code == 400


def test_the_metrics_count_what_was_ingested() -> None:
    """issue 15 item 5: records ingested and events by type match the venue's log; accounts by status sum to
    the book; the insurance fund is the engine's."""
    venue = start_venue()
    records = _walk(venue, 10)
    with TestClient(create_app(venue, ring())) as client:
        for record in records:
            client.post("/records", content=msgspec.json.encode(record), headers=headers("feeder"))
        text = client.get("/metrics").text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}
    quotes = sum(isinstance(r, Quote) for r in records)
    assert samples['solvent_records_ingested_total{type="quote"}'] == quotes
    assert samples['solvent_records_ingested_total{type="fill"}'] == len(records) - quotes
    assert samples["solvent_batch_seconds_count"] == len(records)
    opening = len(venue.events_after(-1)) - sum(v for k, v in samples.items() if k.startswith("solvent_events_total"))
    assert opening == len([e for e in venue.events_after(-1) if e.cause == -1])
    accounts = sum(v for k, v in samples.items() if k.startswith("solvent_accounts{"))
    assert accounts == venue.engine.store.n_accounts
    assert samples["solvent_insurance_fund_usd"] == pytest.approx(venue.engine.fund)
    assert samples['solvent_oracle_status{asset="BTC",status="OK"}'] == 1.0


def test_keys_add_stores_only_the_hash_and_the_key_authenticates(tmp_path: Path) -> None:
    """`solvent keys add` prints a key once; the file holds its SHA-256, never the key; the key opens its role."""
    path = tmp_path / "keys.json"
    runner = CliRunner()
    made = runner.invoke(
        main, ["keys", "add", "--file", str(path), "--name", "desk", "--role", "trader", "--account", "bob"]
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip()
    assert key not in path.read_text()
    assert read_keys(path).keys[0].sha256 == digest(key)
    with TestClient(create_app(start_venue(), KeyRing.load(path))) as client:
        assert client.get("/accounts/bob", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/accounts/alice", headers={"Authorization": f"Bearer {key}"}).status_code == 403
    bad = runner.invoke(main, ["keys", "add", "--file", str(path), "--name", "x", "--role", "trader"])
    assert bad.exit_code == 2 and "account" in bad.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_solvent_serve_answers_on_granian(tmp_path: Path) -> None:
    """`solvent serve` in one command: a keys file made on the way (its operator key printed once), the API up on
    granian, a margin query answered with the library's figure."""
    port = _free_port()
    keys = tmp_path / "keys.json"
    command = [sys.executable, "-m", "solvent", "serve", "--portfolio", str(ROOT / "examples" / "portfolio.json")]
    command += ["--market", str(ROOT / "examples" / "market.json"), "--keys", str(keys), "--port", str(port)]
    command += ["--store", f"sqlite:///{tmp_path / 'service.sqlite'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        key = server.stderr.readline().split()[-1] if server.stderr else ""
        assert key.startswith("sk_") and key not in keys.read_text()
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/accounts/alice", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            served = json.loads(response.read())
    finally:
        server.terminate()
        server.communicate(timeout=30)
    venue = start_venue()
    assert served["im"] == pytest.approx(float(venue.engine.margin_now().im[venue.engine.store.row_of["alice"]]))


def test_serve_needs_both_files_or_neither() -> None:
    result = CliRunner().invoke(main, ["serve", "--portfolio", str(ROOT / "examples" / "portfolio.json")])
    assert result.exit_code == 2 and "--market" in result.output


def test_a_store_url_opens_its_store() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    with pytest.raises(InputError, match="unknown store scheme 'redis'"):
        open_store("redis://localhost")


def test_serve_logs_one_json_object_a_line_with_the_call_fields() -> None:
    record = logging.makeLogRecord({"name": "solvent.service", "msg": "ingested", "levelname": "INFO"})
    record.who, record.records = "feed-desk", 3
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["logger"], line["who"], line["records"]) == (
        "ingested",
        "solvent.service",
        "feed-desk",
        3,
    )


def test_a_server_error_is_logged_with_its_traceback_and_a_client_error_is_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    venue = start_venue()

    def broken(*rows: object) -> None:
        raise RuntimeError("the margin broke")

    monkeypatch.setattr(venue.engine, "margin_now", broken)
    with TestClient(create_app(venue, ring())) as client, caplog.at_level(logging.INFO, logger="solvent.service"):
        assert client.get("/accounts/nobody", headers=headers("read")).status_code == 404
        assert client.get("/dashboard/data", headers=headers("read")).status_code == 500
    errors = [r for r in caplog.records if r.name == "solvent.service" and r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.path) for r in errors] == [("server error", "/dashboard/data")]  # type: ignore[attr-defined]
    assert errors[0].exc_info is not None and "the margin broke" in str(errors[0].exc_info[1])


def test_the_venue_answer_says_what_makes_its_figures(tmp_path: Path) -> None:
    """issue 14 item 10 on the wire: GET /venue carries the provenance (the engine, the digest of the parameters in
    force, which an operator's change moves at once, and each file the venue was started from with its SHA-256)."""
    from solvent.formats.provenance import canonical_sha256, engine_version
    from solvent.service.build import ServeOptions, build_venue

    portfolio, market = ROOT / "examples" / "portfolio.json", ROOT / "examples" / "market.json"
    options = ServeOptions(portfolio=str(portfolio), market=str(market), store=f"sqlite:///{tmp_path / 'v.db'}")
    venue = build_venue(options)
    with TestClient(create_app(venue, ring())) as client:
        first = client.get("/venue", headers=headers("read")).json()
        new = MarginParams(days_per_year=360.0)
        assert client.put("/params", content=msgspec.json.encode(new), headers=headers("operator")).status_code == 200
        after = client.get("/venue", headers=headers("read")).json()
    assert list(first)[:2] == ["schema", "provenance"]
    assert first["provenance"]["engine"] == engine_version()
    assert first["provenance"]["params"] == {"margin": canonical_sha256(MarginParams())}
    assert after["provenance"]["params"] == {"margin": canonical_sha256(new)}
    files = first["provenance"]["inputs"]
    assert sorted(files) == ["market", "portfolio"]
    assert files["portfolio"] == {
        "path": str(portfolio),
        "sha256": hashlib.sha256(portfolio.read_bytes()).hexdigest(),
        "bytes": portfolio.stat().st_size,
    }
