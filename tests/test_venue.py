"""The service's venue (solvent.service.venue): one engine behind a lock, every batch logged with its events."""

from __future__ import annotations

import msgspec
from test_stream import market, price_walk, run, venue

from solvent.service.venue import Venue
from solvent.store import MemoryStore
from solvent.stream import events as ev


def test_the_log_holds_the_same_events_as_a_plain_replay_and_a_resent_record_changes_nothing() -> None:
    """issue 15 item 4: the venue's events (opening, then per batch) are those of the engine fed the same records
    one batch each, logged in order with contiguous sequence numbers; re-sending records already seen adds nothing."""
    records = price_walk(40, seed=11, step=0.03)
    _, expected = run(venue(), records)
    store = MemoryStore()
    service = Venue.start(venue(), market(), store=store, insurance_fund=50_000.0)
    got = []
    for k in range(0, len(records), 7):
        got += service.ingest(records[k : k + 7])
    assert service.ingest(records[:10]) == []  # seen: skipped
    logged = service.events_after(-1)
    assert [e.seq for e in logged] == list(range(len(logged)))
    assert [type(e).__name__ for e in logged[len(logged) - len(got) :]] == [type(e).__name__ for e in got]
    assert len(store.inputs_after(-1)) == len(records)
    single = Venue.start(venue(), market(), insurance_fund=50_000.0)
    for r in records:
        single.ingest([r])
    assert msgspec.json.encode(single.events_after(-1)) == msgspec.json.encode(expected)
    assert any(isinstance(e, ev.LiquidationExecuted | ev.MarginCallIssued) for e in expected)
