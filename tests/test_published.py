"""What the venue publishes after each batch for lock-free reads (service/copies.py, stream/published.py): each
account's full figures as last margined, and the stream's state for the pre-trade check.

The twins: a fresh `margin_now` of the account (the copy of an account re-margined in the last batch, or exposed
to nothing that moved since, is its record to the bit), the stream's own stored figures (the copy of every account,
screened or not, holds exactly what the monitor stored), and the engine's what-if under the venue's lock on the
same state (the published what-if gives the same decision, and still does after the venue has moved on).
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from solvent.convert.results import account_document
from solvent.demo.run import DEMO_SEED, ORACLE_SOURCES, demo_history, demo_market, demo_params
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.service.app import create_app
from solvent.service.auth import KeyEntry, KeyRing, Role, digest
from solvent.service.venue import Venue
from solvent.service.view import VenueView
from solvent.stream.feed import Deposit, Quote

N_ACCOUNTS = 300


def demo_venue(screen: bool, model: str = "multi") -> Venue:
    """`solvent serve`'s demo venue at N_ACCOUNTS accounts (`model`: the stream's margin model)."""
    history = demo_history(DEMO_SEED)
    params = demo_params()
    market = demo_market(history, params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, N_ACCOUNTS, DEMO_SEED)
    return Venue.start(book, market, params, history=history, insurance_fund=1_000_000.0, screen=screen, model=model)


def tick(venue: Venue, k: int, rng: random.Random, asset: str = "") -> None:
    """One source's quote of BTC or ETH (alternating unless `asset` says which), a small random walk."""
    engine = venue.engine
    name = asset or ("BTC", "ETH")[k % 2]
    price = float(engine.market.price[engine.market.state.asset_index[name]]) * math.exp(rng.gauss(0.0, 0.002))
    when = engine.last_time + timedelta(milliseconds=100)
    source = ORACLE_SOURCES[k % len(ORACLE_SOURCES)]
    venue.ingest([Quote(seq=engine.last_input_seq + 1, time=when, asset=name, price=price, source=source)])


def without_standing(document: dict[str, Any]) -> dict[str, Any]:
    """A published record less what `account_document` does not give (the status, flag and `as_of_seq`)."""
    return {k: v for k, v in document.items() if k not in ("status", "predictive_flag", "as_of_seq")}


def test_the_copies_are_a_fresh_margin_of_every_account_without_the_screen() -> None:
    """Without the screen every account exposed to a move is re-margined: after any batch every account's copy
    is its fresh record, and `as_of_seq` is the last batch for the accounts exposed to its asset."""
    venue = demo_venue(screen=False)
    rng = random.Random(3)
    for k in range(6):
        tick(venue, k, rng, "BTC")
    view = VenueView.of(venue)
    engine = venue.engine
    fresh = engine.margin_now()
    btc = engine.market.state.asset_index["BTC"]
    exposed = engine.store.exposed[btc]
    for row, name in enumerate(engine.store.account_ids.tolist()):
        published = view.full_account(row, str(name))
        assert published is not None
        assert without_standing(published) == account_document(fresh, row), name
        assert (published["as_of_seq"] == engine.last_input_seq) == bool(exposed[row]), name


@pytest.mark.parametrize("model", ["dydx", "vol_only"])
def test_the_copies_under_a_venue_rule_are_its_fresh_records(model: str) -> None:
    """Under a venue rule (IM and MM of the rule, no per-asset terms) the copies are still every account's record."""
    venue = demo_venue(screen=False, model=model)
    for k in range(3):
        tick(venue, k, random.Random(k), "BTC")
    view = VenueView.of(venue)
    fresh = venue.engine.margin_now()
    for row, name in enumerate(venue.engine.store.account_ids.tolist()):
        published = view.full_account(row, str(name))
        assert published is not None
        assert without_standing(published) == account_document(fresh, row), name


def test_with_the_screen_the_copies_hold_what_the_stream_stored() -> None:
    """With the screen a screened account's copy dates from its last re-margin (`as_of_seq` earlier), and every
    copy holds the figures the monitor stored; those re-margined in the last batch are their fresh record."""
    venue = demo_venue(screen=True)
    rng = random.Random(4)
    for k in range(12):
        tick(venue, k, rng)
    view = VenueView.of(venue)
    engine = venue.engine
    fresh = engine.margin_now()
    f = engine.figures
    older = 0
    for row, name in enumerate(engine.store.account_ids.tolist()):
        published = view.full_account(row, str(name))
        assert published is not None
        assert (published["im"], published["mm"], published["equity"]) == (f.im[row], f.mm[row], f.equity[row])
        if published["as_of_seq"] == engine.last_input_seq:
            assert without_standing(published) == account_document(fresh, row), name
        else:
            older += 1
    assert older > 0  # the screen kept some accounts' figures from an earlier batch
    assert view.full.as_of.max() >= 0  # layers were folded into the base (the opening copy is as of seq -1)


@pytest.mark.parametrize("screen", [False, True])
def test_the_published_what_if_is_the_locked_one_and_does_not_move_with_the_venue(screen: bool) -> None:
    venue = demo_venue(screen)
    rng = random.Random(5)
    for k in range(8):
        tick(venue, k, rng)
    engine = venue.engine
    view = VenueView.of(venue)
    orders = []
    for row in range(0, N_ACCOUNTS, 7):
        account = str(engine.store.account_ids[row])
        for instrument, quantity in (("BTC-PERP", 0.05), ("ETH-PERP", -2.0), ("BTC-SPOT", 0.5)):
            index = engine.market.state.asset_index[instrument.split("-")[0]]
            orders.append((account, instrument, quantity, float(engine.market.price[index]), 1.0))
    orders += [("nobody", "BTC-PERP", 1.0, 1.0, 0.0), (orders[0][0], "NOPE", 1.0, 1.0, 0.0)]
    locked = [engine.what_if(*order) for order in orders]
    assert [view.what_if(*order) for order in orders] == locked
    assert len(view.stream.standings) == len(range(0, N_ACCOUNTS, 7))  # asked three times each, margined once
    assert any(d.allowed for d in locked) and any(not d.allowed for d in locked)
    for k in range(8, 12):
        tick(venue, k, rng)  # the venue moves on; the view does not
    assert [view.what_if(*order) for order in orders] == locked
    assert [engine.what_if(*order) for order in orders] != locked


def test_the_http_query_reads_the_copy_and_margins_afresh_when_asked() -> None:
    venue = demo_venue(screen=True)
    rng = random.Random(6)
    for k in range(4):
        tick(venue, k, rng)
    ring = KeyRing((KeyEntry(name="desk", role=Role.READ, sha256=digest("k-read"), account=None),))
    engine = venue.engine
    account = str(engine.store.account_ids[10])
    with TestClient(create_app(venue, ring)) as client:
        access = client.app.state.venue
        tick(venue, 4, rng)  # after the app's first view: the copy it serves is the one published after this
        access.view = VenueView.of(venue, access.view)
        headers = {"Authorization": "Bearer k-read"}
        copy = client.get(f"/accounts/{account}", headers=headers).json()
        fresh = client.get(f"/accounts/{account}?fresh=true", headers=headers).json()
    view = access.view
    assert copy == view.full_account(10, account)
    assert fresh["as_of_seq"] == engine.last_input_seq
    assert without_standing(fresh) == account_document(engine.margin_now(np.array([10])), 0)


def test_a_frozen_store_keeps_its_collateral_columns_when_the_venue_adds_one() -> None:
    """A deposit of an asset no account held adds a balance column to the live store; a copy made before keeps its
    own columns (names and balances agree) and answers the what-if it answered before."""
    venue = demo_venue(screen=False)
    engine = venue.engine
    view = VenueView.of(venue)
    account = str(engine.store.account_ids[3])
    order = (account, "BTC-PERP", 0.01, float(engine.market.price[engine.market.state.asset_index["BTC"]]), 0.0)
    before = view.what_if(*order)
    assert "SOL" not in engine.store.collateral_assets
    when = engine.last_time + timedelta(seconds=1)
    venue.ingest([Deposit(seq=engine.last_input_seq + 1, time=when, account=account, asset="SOL", amount=2.0)])
    assert "SOL" in engine.store.collateral_assets
    frozen = view.stream.pricing.store
    assert len(frozen.collateral_assets) == frozen.balance.shape[1] < engine.store.balance.shape[1]
    assert view.what_if(*order) == before
