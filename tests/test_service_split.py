"""`solvent serve`'s two processes (service/engine_process.py): the HTTP process's replica, built from the engine
process's messages, holds what the venue in one process publishes, to the bit: every account's full figures
(through more re-margins than a fold of the copies takes), its published figures, the venue's summary, and the
what-if's decisions; a refused batch and an unknown account answer as in one process."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from solvent.demo.run import ORACLE_SOURCES
from solvent.errors import InputError
from solvent.service.access import LocalVenue, VenueAccess
from solvent.service.build import ServeOptions, build_venue
from solvent.service.copies import MAX_LAYERS
from solvent.service.engine_process import VenueClient
from solvent.service.host import Refused
from solvent.stream.feed import Deposit, FeedRecord, Fill, Quote

OPTIONS = ServeOptions(demo_accounts=300, store="memory://", screen=True)


@pytest.fixture(scope="module")
def twins() -> Iterator[tuple[LocalVenue, VenueClient]]:
    """The demo venue twice: in this process, and in an engine process."""
    local, split = LocalVenue(build_venue(OPTIONS)), VenueClient.start(OPTIONS)
    try:
        yield local, split
    finally:
        split.close()


def _batches(local: LocalVenue, n: int) -> list[list[FeedRecord]]:
    """`n` batches after the venue's last: one source's quote of BTC or ETH each, a small random walk, with a fill
    and a deposit in between (the accounts change: the replica gets a new copy of them)."""
    view, rng = local.view, random.Random(11)
    prices = {name: float(price) for name, price in view.venue["prices"].items()}
    account = str(next(iter(view.row_of)))
    seq, when = view.last_input_seq, view.time
    batches: list[list[FeedRecord]] = []
    for k in range(n):
        seq, when = seq + 1, when + timedelta(milliseconds=100)
        name = ("BTC", "ETH")[k % 2]
        prices[name] *= math.exp(rng.gauss(0.0, 0.003))
        source = ORACLE_SOURCES[k % len(ORACLE_SOURCES)]
        batch: list[FeedRecord] = [Quote(seq=seq, time=when, asset=name, price=prices[name], source=source)]
        if k == 3:
            seq += 1
            batch.append(
                Fill(seq=seq, time=when, account=account, instrument="BTC-PERP", quantity=0.01, price=prices["BTC"])
            )
        if k == 5:
            seq += 1
            batch.append(Deposit(seq=seq, time=when, account=account, asset="USDC", amount=1_000.0))
        batches.append(batch)
    return batches


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The venue's summary less its timings (each process times its own batches)."""
    return {k: v for k, v in summary.items() if not k.startswith("batch_ms")}


def _same_view(local: VenueAccess, split: VenueAccess) -> None:
    a, b = local.view, split.view
    assert (b.last_input_seq, b.next_event_seq, b.time) == (a.last_input_seq, a.next_event_seq, a.time)
    assert _figures(b.venue) == _figures(a.venue)
    for account, row in a.row_of.items():
        assert b.full_account(row, account) == a.full_account(row, account)
        assert b.account(row) == a.account(row)
    btc = a.venue["prices"]["BTC"]
    for account in list(a.row_of)[:40]:
        for quantity in (0.05, -0.3, 4.0):
            assert b.what_if(account, "BTC-PERP", quantity, btc, 0.0) == a.what_if(
                account, "BTC-PERP", quantity, btc, 0.0
            )


def test_the_replica_holds_what_the_venue_in_one_process_publishes(twins: tuple[LocalVenue, VenueClient]) -> None:
    local, split = twins
    _same_view(local, split)
    for batch in _batches(local, 2 * MAX_LAYERS + 3):  # the replica's copies fold twice
        assert asyncio.run(split.ingest(batch, "<test>")).events == asyncio.run(local.ingest(batch, "<test>")).events
        _same_view(local, split)
    account = str(next(iter(local.view.row_of)))
    assert asyncio.run(split.fresh_account(account)) == asyncio.run(local.fresh_account(account))
    assert asyncio.run(split.events_after(-1, 10_000)) == asyncio.run(local.events_after(-1, 10_000))


def test_the_engine_process_refuses_as_the_venue_does(twins: tuple[LocalVenue, VenueClient]) -> None:
    _, split = twins
    view = split.view
    late = [Quote(seq=view.last_input_seq + 1, time=view.time - timedelta(days=1), asset="BTC", price=1.0)]
    with pytest.raises(Refused, match="time"):
        asyncio.run(split.ingest(late, "<test>"))
    assert split.alive and split.view.last_input_seq == view.last_input_seq
    assert asyncio.run(split.fresh_account("nobody")) is None


def test_bad_input_at_start_is_the_cli_s_one_line_error(tmp_path: Path) -> None:
    """A venue the engine process cannot build (a portfolio that is not one) fails `VenueClient.start` with the
    `InputError` that `solvent serve` prints (exit 2), as when the venue was built in the HTTP process."""
    bad = tmp_path / "portfolio.json"
    bad.write_text("{}")
    examples = Path(__file__).resolve().parents[1] / "examples"
    options = ServeOptions(portfolio=str(bad), market=str(examples / "market.json"), store="memory://")
    with pytest.raises(InputError, match=r"portfolio\.json"):
        VenueClient.start(options)
