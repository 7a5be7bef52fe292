"""Issue 12 item 2: the pre-trade check and the stream never credit an off-market fill.

On the README's example, `what_if("erin", "BTC-PERP", 10, price)` was refused at the 95,000 mark but allowed at
50,000, at 1 and at -5 (equity_after 481k-981k): the instant gain q (mark - price) counted as equity. Now a
non-positive price is refused, a price outside `pretrade.price_band` x forward of the mark is refused (the price
band of Paradex and GRVT: aggressive orders execute only within a band around the mark price), and a fill's P&L
against the mark counts only when it is a loss. The stream rejects an off-market fill record with `FillRejected`.
Independent figures: each account's equity from `solvent.compute_margin` on the example files.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvent
from solvent.engine.whatif import INSUFFICIENT_MARGIN, NOT_FINITE, OFF_MARKET, PRICE_NOT_POSITIVE
from solvent.params import MarginParams, PretradeParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import Fill, Quote

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BOOK = solvent.load_portfolio(EXAMPLES / "portfolio.json")
MARKET = solvent.load_market(EXAMPLES / "market.json")
MARK = 95_000.0  # BTC in examples/market.json; rate 0, so a perpetual's forward and mark are the spot price
BAND = PretradeParams().price_band


def equity_of(account: str) -> float:
    """The account's equity from a full margin run on the example files (independent of the stream)."""
    result = solvent.compute_margin(BOOK, MARKET)
    row = list(BOOK.account_ids).index(account)
    return float(result.equity[row])


def engine(params: MarginParams | None = None, sink: list[ev.Event] | None = None) -> StreamEngine:
    """The example venue with an insurance fund that covers dave's opening deficit, so that no loss is socialised
    and every other account keeps the equity `compute_margin` gives it."""
    out: list[ev.Event] = [] if sink is None else sink
    return StreamEngine.start(BOOK, MARKET, params, sink=out.extend, insurance_fund=1e7)


README = StreamEngine.start(BOOK, MARKET)  # exactly as in README.md
ENGINE = engine()
ERIN = equity_of("erin")


def test_default_band_is_documented() -> None:
    assert BAND == 0.05


def test_readme_example_at_the_mark_is_the_answer_it_was() -> None:
    """At the mark the fill has no instant P&L: equity_after is erin's equity, and 10 BTC-PERP need more IM."""
    decision = ENGINE.what_if("erin", "BTC-PERP", 10, MARK)
    assert decision.reason == INSUFFICIENT_MARGIN and not decision.allowed
    assert decision.equity_after == pytest.approx(ERIN, rel=1e-12)
    assert decision.equity_after < decision.im_after


@pytest.mark.parametrize(("price", "reason"), [(50_000.0, OFF_MARKET), (1.0, OFF_MARKET), (-5.0, PRICE_NOT_POSITIVE)])
def test_readme_example_off_market_prices_are_refused(price: float, reason: str) -> None:
    """Issue 12 item 2: allowed on main (equity_after 481k, 981k, 981k), refused now."""
    decision = README.what_if("erin", "BTC-PERP", 10, price)
    assert not decision.allowed and decision.reason == reason
    assert math.isnan(decision.equity_after)  # refused before any number could credit the price
    assert README.what_if("erin", "BTC-PERP", 10, MARK).reason == INSUFFICIENT_MARGIN


@pytest.mark.parametrize("price", [0.0, -0.0, math.nan, math.inf, -math.inf])
def test_degenerate_prices_are_refused(price: float) -> None:
    decision = ENGINE.what_if("erin", "BTC-PERP", 1, price)
    assert not decision.allowed
    assert decision.reason == (NOT_FINITE if not math.isfinite(price) else PRICE_NOT_POSITIVE)


def test_a_better_than_mark_fill_is_not_credited_a_worse_one_is_charged() -> None:
    """Inside the band: buying 10 at 94,000 would book a 10,000 gain; it counts for nothing. At 96,000 the
    10,000 loss counts in full."""
    better = ENGINE.what_if("erin", "BTC-PERP", 10, MARK - 1_000.0)
    worse = ENGINE.what_if("erin", "BTC-PERP", 10, MARK + 1_000.0)
    assert better.reason == worse.reason == INSUFFICIENT_MARGIN
    assert better.equity_after == pytest.approx(ERIN, rel=1e-12)
    assert worse.equity_after == pytest.approx(ERIN - 10_000.0, rel=1e-12)
    sold_high = ENGINE.what_if("erin", "BTC-PERP", -10, MARK + 1_000.0)  # a seller's gain: not credited either
    assert sold_high.equity_after == pytest.approx(ERIN, rel=1e-12)


def test_the_band_edges() -> None:
    """|price - mark| <= band x forward passes the band; one dollar beyond does not; a wider band lets it pass."""
    edge = BAND * MARK
    for price in (MARK + edge - 1.0, MARK - edge + 1.0):
        assert ENGINE.what_if("carol", "BTC-PERP", 0.01, price).reason != OFF_MARKET
    for price in (MARK + edge + 1.0, MARK - edge - 1.0):
        assert ENGINE.what_if("carol", "BTC-PERP", 0.01, price).reason == OFF_MARKET
    wide = engine(msgspec.structs.replace(MarginParams(), pretrade=PretradeParams(price_band=0.10)))
    assert wide.what_if("carol", "BTC-PERP", 0.01, MARK + edge + 1.0).reason != OFF_MARKET


@settings(max_examples=80, deadline=None)
@given(
    account=st.sampled_from(["alice", "bob", "carol", "erin"]),
    instrument=st.sampled_from(["BTC-PERP", "ETH-PERP", "BTC-26DEC26-110000-C", "ETH-26DEC26-3500-C"]),
    quantity=st.floats(-20.0, 20.0).filter(lambda q: abs(q) > 1e-6),
    offset=st.floats(-1.0, 1.0),
)
def test_no_price_is_better_for_the_check_than_the_mark(
    account: str, instrument: str, quantity: float, offset: float
) -> None:
    """Property: whatever the price, the check is never more lenient than at the mark: equity_after is at most
    the mark's, and an order refused at the mark is refused at any price (offset: a fraction of the band)."""
    inst = ENGINE.store.instrument_row[instrument]
    state = ENGINE.market.state
    size = float(state.instruments.contract_size[inst])
    forward = float(state.forward[inst])
    is_option = instrument.endswith("-C")
    mark = float(ENGINE.context.arrays.value[inst]) / size if is_option else forward
    price = mark + offset * 1.5 * BAND * forward
    if price <= 0.0:
        return
    at_mark = ENGINE.what_if(account, instrument, quantity, mark)
    at_price = ENGINE.what_if(account, instrument, quantity, price)
    assert at_price.allowed <= at_mark.allowed
    if at_price.reason == OFF_MARKET:
        assert abs(offset) * 1.5 > 1.0 - 1e-9
        return
    assert abs(offset) * 1.5 <= 1.0 + 1e-9
    assert at_price.equity_after <= at_mark.equity_after + 1e-9 * abs(at_mark.equity_after)
    loss = max(quantity * size * (price - mark), 0.0)
    assert at_price.equity_after == pytest.approx(at_mark.equity_after - loss, rel=1e-12, abs=1e-6)


# ------------------------------------------------------------------------------------------------- the stream

NOW = MARKET.time


def positions(engine: StreamEngine) -> np.ndarray:
    return np.array(engine.store.arrays()["pos_quantity"], copy=True)


@pytest.mark.parametrize(("instrument", "price"), [("BTC-PERP", 50_000.0), ("BTC-PERP", 1.0), ("ETH-PERP", 4_000.0)])
def test_the_stream_rejects_an_off_market_fill_and_names_it(instrument: str, price: float) -> None:
    """Issue 12 item 2: on main the fill was booked at that price (its gain credited); now a FillRejected event
    names it and the positions are untouched."""
    out: list[ev.Event] = []
    stream = engine(sink=out)
    before = positions(stream)
    rejected = stream.totals.rejected
    start = len(out)
    stream.process([Fill(seq=1, time=NOW, account="erin", instrument=instrument, quantity=10.0, price=price)])
    np.testing.assert_array_equal(positions(stream), before)
    assert stream.totals.rejected == rejected + 1
    published = [e for e in out[start:] if isinstance(e, ev.FillRejected)]
    assert len(published) == 1
    event = published[0]
    mark = {"BTC-PERP": MARK, "ETH-PERP": 3_400.0}[instrument]
    assert (event.account, event.instrument, event.quantity, event.price) == ("erin", instrument, 10.0, price)
    assert event.mark == pytest.approx(mark, rel=1e-12) and event.band == BAND and event.cause == 1
    assert "band" in event.reason
    assert ev.decode_events(ev.encode_events([event])) == [event]


def test_the_stream_books_a_fill_inside_the_band() -> None:
    stream = engine()
    row, inst = stream.store.row_of["erin"], stream.store.instrument_row["BTC-PERP"]
    stream.process([Fill(seq=1, time=NOW, account="erin", instrument="BTC-PERP", quantity=0.1, price=MARK * 1.04)])
    assert stream.store.quantity(row, inst) == 0.1
    assert stream.totals.rejected == 0


def test_the_stream_judges_a_fill_against_the_mark_of_its_moment() -> None:
    """A quote earlier in the same batch moves the mark: BTC at 80,000, a fill at 80,000 is booked and one at the
    old mark of 95,000 (18.75% away) is rejected."""
    stream = engine()
    row, inst = stream.store.row_of["erin"], stream.store.instrument_row["BTC-PERP"]
    later = NOW + timedelta(seconds=1)
    stream.process(
        [
            Quote(seq=1, time=later, asset="BTC", price=80_000.0),
            Fill(seq=2, time=later, account="erin", instrument="BTC-PERP", quantity=0.1, price=80_000.0),
            Fill(seq=3, time=later, account="erin", instrument="BTC-PERP", quantity=0.1, price=MARK),
        ],
        block_ms=10_000,
    )
    assert stream.store.quantity(row, inst) == 0.1
    assert stream.totals.rejected == 1


def test_the_stream_rejects_an_off_market_option_fill_against_its_premium() -> None:
    """An option's mark is its premium per unit; the band is in units of its forward (|delta| <= 1)."""
    out: list[ev.Event] = []
    stream = engine(sink=out)
    inst = stream.store.instrument_row["ETH-26DEC26-3500-C"]
    premium = float(stream.context.arrays.value[inst])  # contract_size 1
    forward = float(stream.market.state.forward[inst])
    far = premium + 1.01 * BAND * forward
    near = premium + 0.99 * BAND * forward
    stream.process(
        [
            Fill(seq=1, time=NOW, account="erin", instrument="ETH-26DEC26-3500-C", quantity=1.0, price=far),
            Fill(seq=2, time=NOW, account="erin", instrument="ETH-26DEC26-3500-C", quantity=1.0, price=near),
        ]
    )
    rejected = [e for e in out if isinstance(e, ev.FillRejected)]
    assert [e.cause for e in rejected] == [1]
    assert rejected[0].mark == pytest.approx(premium, rel=1e-12)
    assert stream.store.quantity(stream.store.row_of["erin"], inst) == 21.0
