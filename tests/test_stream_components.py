"""The stream core's stages, each driven alone on the read model (`stream.pricing`), without the engine:
ingest, monitor, liquidator, backstop, pre-trade and the journal; and a digest that pins the engine's whole
event stream across refactors (issue 14 item 1: the same events byte for byte before and after the split).
"""

from __future__ import annotations

import ast
import hashlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from small_venue import NOW
from test_stream import crash, market, price_walk, run, venue

import solvent.stream
from solvent.baselines import BaselineParams
from solvent.engine.book import Book
from solvent.engine.margin import margin_accounts, risk_context
from solvent.liquidation.predictive import VelocityTracker
from solvent.params import MarginParams
from solvent.stream import events as ev
from solvent.stream.backstop import Backstop
from solvent.stream.feed import Fill, Quote
from solvent.stream.ingest import Ingest
from solvent.stream.ledger import LIQUIDATABLE, Figures, Journal, Totals
from solvent.stream.liquidator import Liquidator
from solvent.stream.market import LiveMarket
from solvent.stream.monitor import Monitor
from solvent.stream.pretrade import PreTrade
from solvent.stream.pricing import Pricing
from solvent.stream.store import AccountStore


def read_model(book: Book, params: MarginParams | None = None) -> Pricing:
    """The read model every stage works on, built as the engine builds it."""
    params = params or MarginParams()
    live = LiveMarket(book.instruments, market(), params, "<market>", "<portfolio>")
    store = AccountStore(book, live.state.asset_index, len(live.assets))
    return Pricing(
        store,
        live,
        params,
        risk_context(live.state, params, None),
        VelocityTracker.for_params(len(live.assets), params.predictive),
        history=None,
        model="multi",
        baselines=BaselineParams(),
        portfolio_source="<portfolio>",
    )


def everyone(pricing: Pricing) -> np.ndarray:
    return np.arange(pricing.store.n_accounts, dtype=np.int64)


def crashed(drop: float) -> tuple[Pricing, Monitor, Journal, Totals]:
    """The venue after one BTC quote `drop` below the snapshot, every account re-margined by the monitor."""
    pricing = read_model(venue(20, seed=4))
    out, totals = Journal(), Totals()
    quote = Quote(seq=0, time=NOW + timedelta(seconds=10), asset="BTC", price=95_000.0 * (1.0 - drop))
    pricing.refresh(Ingest(reflag=True).apply(pricing, [quote], out, totals))
    monitor = Monitor(Figures.empty(pricing.store.n_accounts), None, margin_calls=True, reflag=True)
    monitor.remargin(pricing, everyone(pricing), quote.time, 0, out, totals)
    return pricing, monitor, out, totals


def test_the_journal_numbers_events_over_the_run_and_hands_them_over_once() -> None:
    out = Journal(next_seq=7)
    out.emit(ev.LiquidationsResumed, NOW, 3, asset="BTC", reason="OK")
    out.emit(ev.LiquidationsResumed, NOW, 3, asset="ETH", reason="OK")
    assert [e.seq for e in out.take()] == [7, 8]
    assert out.take() == [] and out.next_seq == 9


def test_ingest_books_a_quote_as_a_change_and_refuses_an_unknown_account() -> None:
    pricing = read_model(venue())
    out, totals = Journal(), Totals()
    records = [
        Quote(seq=0, time=NOW, asset="ETH", price=3_300.0),
        Fill(seq=1, time=NOW, account="nobody", instrument="BTC-PERP", quantity=1.0, price=95_000.0),
    ]
    changes = Ingest(reflag=True).apply(pricing, records, out, totals)
    eth = pricing.market.base.asset_index["ETH"]
    assert changes.moved == {eth} and changes.dirty == {eth} and not changes.touched and not changes.new_epoch
    assert pricing.market.price[eth] == 3_300.0
    (rejected,) = out.take()
    assert isinstance(rejected, ev.InputRejected) and rejected.field == "account" and rejected.cause == 1
    assert totals.rejected == 1


def test_the_monitor_stores_what_margining_the_book_afresh_gives_and_publishes_each_breach() -> None:
    pricing, monitor, out, totals = crashed(0.3)
    fresh = margin_accounts(pricing.store.whole_book(), pricing.market.state, pricing.params, pricing.context)
    np.testing.assert_allclose(monitor.figures.im, fresh.im, rtol=1e-12)
    np.testing.assert_allclose(monitor.figures.equity, fresh.equity, rtol=1e-12)
    breached = {e.account for e in out.take() if isinstance(e, ev.AccountBecameLiquidatable)}
    below = {str(a) for a in pricing.store.account_ids[fresh.equity < fresh.mm].tolist()}
    assert breached and breached == below
    assert totals.remargined == pricing.store.n_accounts
    assert np.all(monitor.figures.in_liquidation == (monitor.figures.status == LIQUIDATABLE))


def test_the_liquidator_slices_each_due_account_once_then_waits_out_its_cooldown() -> None:
    pricing, monitor, out, totals = crashed(0.05)
    out.take()
    gross_before = float(np.abs(pricing.store.whole_book().pos_quantity).sum())
    sliced = Liquidator().slice(pricing, monitor.figures, NOW + timedelta(seconds=10), 0, out, totals)
    assert sliced is not None and sliced.rows.size > 0 and sliced.bankrupt.size == 0
    trades = [e for e in out.take() if isinstance(e, ev.LiquidationExecuted)]
    assert len(trades) == len(sliced.fees) == totals.liquidations > 0
    assert {t.account for t in trades} <= {str(a) for a in pricing.store.account_ids[sliced.rows].tolist()}
    assert float(np.abs(pricing.store.whole_book().pos_quantity).sum()) < gross_before  # closes only reduce
    assert np.all(monitor.figures.cooldown_until[sliced.rows] > (NOW + timedelta(seconds=11)).timestamp())
    assert Liquidator().slice(pricing, monitor.figures, NOW + timedelta(seconds=11), 1, out, totals) is None


def test_the_backstop_takes_fees_in_order_and_a_rich_fund_settles_a_bankrupt_account_to_zero() -> None:
    fees = [0.1, 1e16, -1e16]
    backstop = Backstop(1.0)
    backstop.collect(fees)
    assert backstop.fund == ((1.0 + 0.1) + 1e16) - 1e16  # one by one, as the trades were made
    pricing, monitor, out, totals = crashed(0.6)
    bankrupt = np.flatnonzero(monitor.figures.equity < 0.0).astype(np.int64)
    assert bankrupt.size
    backstop = Backstop(1e9)
    claim = backstop.claim(pricing, monitor.figures.equity, bankrupt)
    assert not claim.needs_every_equity  # the fund alone pays
    touched = backstop.resolve(pricing, claim, monitor.figures.equity, NOW, 0, out, totals)
    assert set(bankrupt.tolist()) <= touched
    paid = sum(e.amount for e in out.take() if isinstance(e, ev.InsuranceFundPaid))
    assert backstop.fund == pytest.approx(1e9 - paid, rel=1e-12)
    _, result = pricing.margin(bankrupt)
    np.testing.assert_allclose(result.equity, 0.0, atol=1e-6)
    assert np.all(pricing.store.is_flat(bankrupt))


def test_pre_trade_is_the_margin_after_the_fill_and_forgets_its_vectors_when_the_market_moves() -> None:
    pricing = read_model(venue())
    row, inst = 0, pricing.store.instrument_row["ETH-PERP"]
    pretrade = PreTrade()
    decision = pretrade.check(pricing, row, inst, 2.0, 3_400.0, 0.0, (1e9, False, False))
    pricing.store.trade(row, inst, 2.0, 3_400.0)
    after = margin_accounts(
        pricing.store.book_of(np.array([row])), pricing.market.state, pricing.params, pricing.context
    )
    assert decision.im_after == pytest.approx(float(after.im[0]), rel=1e-9)
    assert row in pricing.memo.vectors and pricing.memo.checker is not None
    pricing.market_moved()
    assert not pricing.memo.vectors and pricing.memo.checker is None


# The engine's events on two fixed feeds, SHA-256 of `encode_events`: measured on the engine before the split
# into stages (commit 27a96a8) and unchanged by it. A change here changes what a venue is told: say why.
PINNED = [
    ("walk", "6ba7c25af74bf43821cbb1b23238b08f8879325d3ef4ef67279cfaa707dd5395", 83),
    ("crash", "414c9f1e60462928e81e0af4a5e1be455402b1e6a9ac317e17e75f686610d95f", 97),
]


@pytest.mark.parametrize(("feed", "digest", "count"), PINNED)
def test_the_event_stream_is_pinned(feed: str, digest: str, count: int) -> None:
    if feed == "walk":
        _, out = run(venue(), price_walk(60, seed=1))
    else:  # with the screen, through the insurance fund
        _, out = run(venue(20, seed=4), crash(20, 5, 0.03), screen=True)
        assert any(isinstance(e, ev.InsuranceFundPaid) for e in out)
    assert len(out) == count
    assert hashlib.sha256(ev.encode_events(out)).hexdigest() == digest


STAGES = ("ingest", "monitor", "liquidator", "backstop", "pretrade")


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage_nor_the_engine(stage: str) -> None:
    """The seams: a stage sees the read model and the ledger, never another stage or the loop; and the state
    file knows no engine (no import circle)."""
    source = Path(solvent.stream.__file__).parent / f"{stage}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    forbidden = {f"solvent.stream.{name}" for name in (*STAGES, "engine", "state") if name != stage}
    assert not imported & forbidden
    state = ast.parse((source.parent / "state.py").read_text())
    assert not any(isinstance(n, ast.ImportFrom) and n.module == "solvent.stream.engine" for n in ast.walk(state))
