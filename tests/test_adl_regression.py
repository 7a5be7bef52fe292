"""Regression: ADL fills must never close more of a bankrupt position than it holds, and a fully matched
position must end at exactly 0.

The streaming engine crashed in the backstop with `ValueError: account row 556 holds no position in
instrument 0 of sign 1.0` (`AccountStore.find_signed`). `adl_fills` took what was left of the demand before
each fill as `cumsum(available) − available`: next to a large candidate the subtraction cancels, so a small
remainder was lost. One waterfall under-filled by a few ulps (the group still counted as fully matched, so no
market close), leaving a 5.6e-17 dust position on the bankrupt account; it went bankrupt again, and the next
waterfall's fills on that dust summed to twice the position, so the engine ran out of position to book.
The fix takes the remainders by subtracting one fill at a time (as a loop would, and as the store books
them), and closes exactly what the fills leave in the market.
"""

from __future__ import annotations

import math

import numpy as np
from adl_loop import slow_adl_fills
from crash_paths import crash_path, venue
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.engine.book import CROSS, Book
from solvent.formats.schemas import Instrument
from solvent.liquidation.waterfall import WaterfallResult, adl_fills, run_waterfall
from solvent.params import MarginParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.store import AccountStore

# ------------------------------------------------------------------------------------------- adl_fills


def fills_of(demand: float, quantities: list[float], equity: list[float], loss: float = 0.0) -> np.ndarray:
    """Fill `demand` (a long's) from shorts `quantities`, one account each, ranked in the given order."""
    n = len(quantities)
    gross = np.array([1000.0 * (n - i) for i in range(n)])  # leverage falls with i: rank = list order
    _, fill = adl_fills(
        demand,
        100.0 + loss,
        100.0,
        1.0,
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
        -np.array(quantities),
        np.full(n, 150.0),
        np.array(equity),
        gross,
    )
    return fill


def test_a_small_remainder_next_to_a_large_candidate_is_not_lost() -> None:
    """The crash's second waterfall: a 5.55e-17 long, four small shorts that nearly cover it and a large one.
    `cumsum − available` read the four small fills as 0 next to the large candidate, which then filled the
    whole demand again: 2 x the position."""
    demand = 5.551115123125783e-17
    small = [1.701479007339484e-17, 1.1962672328462745e-17, 4.976340878304928e-18, 2.1557347951095314e-17]
    fill = fills_of(demand, [*small, 26.0], [1e6] * 5)
    assert fill[:4].tolist() == small
    left = np.subtract.accumulate(np.concatenate(([demand], fill)))
    assert (left >= 0.0).all() and left[-1] == 0.0  # booked in order, the fills close the position exactly
    assert fill.sum() <= demand * (1.0 + 1e-15)


def test_the_last_fill_is_exactly_what_the_earlier_ones_left() -> None:
    """The crash's first waterfall: 0.3607 long, 0.1964 from the first short, the rest from a large one.
    The second fill was 0.16424560981173641 (6e-17 short of 0.3607 − 0.1964 = 0.16424560981173647), which
    left the dust position behind."""
    demand, first = 0.36069176890237964, 0.19644615909064317
    fill = fills_of(demand, [first, 5_000.0], [1e6, 1e6])
    assert fill.tolist() == [first, demand - first]


def test_a_small_accounts_room_is_exact_next_to_a_large_account() -> None:
    """An account's room is its capacity less its earlier fills, not a difference of prefix sums over every
    account: a large account ranked first must not blur a tiny account's room."""
    n = 3
    account = np.array([0, 1, 1], dtype=np.int64)
    quantity = -np.array([3e6, 1e-12, 1e-12])
    loss = 7.0
    equity = np.array([1e12, 1.5e-12 * loss, 1.5e-12 * loss])  # account 1 can absorb 1.5e-12 units
    gross = np.array([1e6, 1.0, 1.0])
    args = (5e6, 100.0 + loss, 100.0, 1.0, np.arange(n), account, quantity, np.full(n, 150.0), equity, gross)
    picked, fill = adl_fills(*args)
    assert [(int(i), float(f)) for i, f in zip(picked, fill, strict=True)] == slow_adl_fills(*args)
    taken = fill[account[picked] == 1].sum()
    assert taken * loss <= equity[1] * (1.0 + 1e-12)


SCALES = st.sampled_from([1e-17, 3e-16, 1e-9, 0.37, 1.0, 3.0, 1234.5, 1e6])


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 10),
    demand=SCALES,
    loss=st.sampled_from([0.0, 0.5, 25.0]),
    side=st.sampled_from([1.0, -1.0]),
)
def test_adl_fills_are_a_loop_bit_for_bit_at_every_scale(
    data: st.DataObject, n: int, demand: float, loss: float, side: float
) -> None:
    """Quantities from 1e-17 to 1e6 side by side (where prefix sums cancel): the vectorised fill equals the
    loop bit for bit, and subtracting the fills in order from the demand never goes below 0."""
    jitter = st.floats(0.5, 2.0)
    quantity = -side * np.array([data.draw(SCALES) * data.draw(jitter) for _ in range(n)])
    account = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.int64)
    equity = np.array(data.draw(st.lists(st.sampled_from([1e-12, 5.0, 1e3, 1e9]), min_size=4, max_size=4)))[account]
    gross = np.array(data.draw(st.lists(st.sampled_from([100.0, 400.0]), min_size=4, max_size=4)))[account]
    entry = np.array(data.draw(st.lists(st.sampled_from([80.0, 100.0, 150.0]), min_size=n, max_size=n)))
    rows = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    args = (demand, 100.0 + side * loss, 100.0, 1.0, rows, account, quantity, entry, equity, gross)
    picked, fill = adl_fills(*args)
    assert [(int(i), float(f)) for i, f in zip(picked, fill, strict=True)] == slow_adl_fills(*args)
    left = np.subtract.accumulate(np.concatenate(([demand], fill)))
    assert (left >= 0.0).all()


# --------------------------------------------------------------------------------------- run_waterfall


@st.composite
def one_row_books(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float, dict[str, np.ndarray]]:
    """The engine's shape: at most one row per (account, instrument); quantities from 1e-17 to 1e6, so a
    bankrupt position can be dust next to large counterparties."""
    n = draw(st.integers(2, 7))
    pairs = sorted(draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, 1)), min_size=2, max_size=2 * n)))
    account = np.array([a for a, _ in pairs], dtype=np.int64)
    instrument = np.array([i for _, i in pairs], dtype=np.int64)
    m = account.size
    sign = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=m, max_size=m)))
    quantity = sign * np.array([draw(SCALES) * draw(st.floats(0.5, 2.0)) for _ in range(m)])
    mark = np.array([100.0, 2500.0])[instrument]
    entry = mark * np.array(draw(st.lists(st.floats(0.5, 1.8), min_size=m, max_size=m)))
    cost = np.abs(quantity) * mark * np.array(draw(st.lists(st.floats(0.0, 0.05), min_size=m, max_size=m)))
    equity = np.array(draw(st.lists(st.floats(1.0, 1e7), min_size=n, max_size=n)))
    bankrupt = np.array(sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=max(1, n // 2)))))
    close_out = np.bincount(account, weights=cost, minlength=n)
    deficit = np.array(draw(st.lists(st.floats(1e-6, 1e4), min_size=bankrupt.size, max_size=bankrupt.size)))
    equity[bankrupt] = -deficit
    keep = close_out[bankrupt] - equity[bankrupt] > 0.0
    bankrupt = bankrupt[keep]
    if bankrupt.size == 0:
        bankrupt = np.array([int(account[0])])
        equity[bankrupt] = -1.0
    positions = {
        "pos_account": account,
        "pos_instrument": instrument,
        "pos_quantity": quantity,
        "pos_entry": entry,
        "pos_mark": mark,
        "contract_size": np.ones(m),
        "is_linear": np.ones(m, dtype=np.bool_),
        "pos_close_cost": cost,
    }
    fund = draw(st.sampled_from([0.0, 1.0, 1e3]))
    return bankrupt, equity, fund, positions


def booked_exactly(result: WaterfallResult, positions: dict[str, np.ndarray]) -> None:
    """Subtracting each bankrupt position's ADL fills in order, then its market close, from it (what the
    store does) never passes 0 and ends at exactly 0. One row per (account, instrument): a row's fills are
    its account's on its instrument with the opposite sign."""
    quantity = positions["pos_quantity"]
    theirs = np.flatnonzero(np.isin(positions["pos_account"], result.accounts) & (quantity != 0.0))
    for row in theirs.tolist():
        q = float(quantity[row])
        mine = (
            (result.adl_bankrupt == positions["pos_account"][row])
            & (result.adl_instrument == positions["pos_instrument"][row])
            & (np.sign(result.adl_quantity) == -np.sign(q))
        )
        left = abs(q)
        for f in np.abs(result.adl_quantity[mine]).tolist():
            assert 0.0 < f <= left, (row, f, left)
            left -= f
        close = result.close_quantity[result.close_row == row]
        assert close.size <= 1
        if close.size:
            assert math.copysign(1.0, float(close[0])) == math.copysign(1.0, q)
            left -= abs(float(close[0]))
        assert left == 0.0, (row, q, left)


@settings(max_examples=300, deadline=None)
@given(book=one_row_books())
def test_every_bankrupt_position_is_closed_exactly_and_value_is_conserved(
    book: tuple[np.ndarray, np.ndarray, float, dict[str, np.ndarray]],
) -> None:
    bankrupt, equity, fund, positions = book
    result = run_waterfall(bankrupt, equity, fund, **positions)
    booked_exactly(result, positions)
    quantity = positions["pos_quantity"]  # counterparties: never more than they hold, on their own side
    taken = np.bincount(result.adl_row, weights=np.abs(result.adl_quantity), minlength=quantity.size)
    assert (taken <= np.abs(quantity)).all()
    assert (np.sign(result.adl_quantity) == np.sign(quantity[result.adl_row])).all()
    scale = float(np.abs(equity).sum() + fund + positions["pos_close_cost"].sum() + 1.0)
    balance = result.equity_change.sum() + (result.fund_after - fund) + result.market_cost.sum()
    assert abs(balance) <= 1e-9 * scale
    final = equity[result.accounts] + result.equity_change[result.accounts]
    assert (final[result.unresolved == 0.0] == 0.0).all()
    assert result.fund_after >= 0.0


# ------------------------------------------------------------------------------------- the store level

PERP = Instrument(id="BTC-PERP", kind="perp", underlying="BTC")


def store_of(quantity: list[float], entry: list[float], cash: list[float]) -> AccountStore:
    """One perpetual, one position per account, USD collateral."""
    n = len(quantity)
    book = Book(
        instruments=(PERP,),
        account_ids=np.array([f"a{i}" for i in range(n)], dtype=object),
        pos_offsets=np.arange(n + 1, dtype=np.int64),
        pos_instrument=np.zeros(n, dtype=np.int32),
        pos_quantity=np.array(quantity),
        pos_entry=np.array(entry),
        collateral_assets=("USD",),
        col_offsets=np.arange(n + 1, dtype=np.int64),
        col_asset=np.zeros(n, dtype=np.int32),
        col_amount=np.array(cash),
        risk_tier=np.full(n, np.nan),
        mode=np.full(n, CROSS, dtype=np.int8),
        parent=np.full(n, None, dtype=object),
    )
    return AccountStore(book, {"BTC": 0}, 1)


def book_into(store: AccountStore, result: WaterfallResult, mark: float) -> None:
    """The store calls `Backstop._apply` (stream/backstop.py) makes for ADL fills and market closes (input row p is
    store slot p here: one slot per account, no spare slot in between is used)."""
    slot = store.used_slots(np.arange(store.n_accounts, dtype=np.int64))
    for f in range(result.adl_quantity.size):
        q, price = float(result.adl_quantity[f]), float(result.adl_price[f])
        store.trade(int(result.adl_counterparty[f]), 0, -q, price, slot=int(slot[result.adl_row[f]]))
        bankrupt = int(result.adl_bankrupt[f])
        store.trade(bankrupt, 0, q, price, slot=store.find_signed(bankrupt, 0, -math.copysign(1.0, q)))
    for c in range(result.close_row.size):
        p = int(slot[result.close_row[c]])
        q = float(result.close_quantity[c])
        store.trade(int(np.searchsorted(store.start, p, side="right") - 1), 0, -q, mark, slot=p)


def waterfall_on(store: AccountStore, equity: list[float], mark: float, cost: float) -> WaterfallResult:
    slot = store.used_slots(np.arange(store.n_accounts, dtype=np.int64))
    m = slot.size
    quantity = store.pos_quantity[slot].copy()
    return run_waterfall(
        np.array([0]),
        np.array(equity),
        0.0,
        pos_account=np.arange(m, dtype=np.int64),
        pos_instrument=np.zeros(m, dtype=np.int64),
        pos_quantity=quantity,
        pos_entry=store.pos_entry[slot].copy(),
        pos_mark=np.full(m, mark),
        contract_size=np.ones(m),
        is_linear=np.ones(m, dtype=np.bool_),
        pos_close_cost=np.where(np.arange(m) == 0, cost, 0.0),
    )


def test_dust_position_is_deleveraged_without_running_out_of_position() -> None:
    """The crash in small: bankrupt account 0 is long 5.55e-17 (dust); five shorts qualify, four tiny and a
    large one. Before the fix the large one was filled for the whole 5.55e-17 again and booking its fill
    raised `holds no position in instrument 0 of sign 1.0`."""
    small = [1.701479007339484e-17, 1.1962672328462745e-17, 4.976340878304928e-18, 2.1557347951095314e-17]
    shorts = [-s for s in small] + [-26.0]
    equity = [0.0, 1e-20, 2e-20, 3e-20, 4e-20, 1e3]  # E = 0: ADL at mark; the tiny shorts rank first (leverage)
    store = store_of([5.551115123125783e-17, *shorts], [150.0] * 6, equity)
    result = waterfall_on(store, equity, 100.0, 1e-17)
    assert sorted(result.adl_counterparty.tolist()[:4]) == [1, 2, 3, 4]
    book_into(store, result, 100.0)  # raised ValueError before the fix
    assert np.abs(result.adl_quantity).sum() <= 5.551115123125783e-17
    assert store.is_flat(np.array([0]))[0]


def test_a_fully_matched_position_leaves_no_dust() -> None:
    """The crash's first step in small: long 0.3607 matched by a 0.1964 short and a large one. Before the fix
    the fills came to 6e-17 less than the position, the group still counted as fully matched (no market
    close), and the account was left holding 5.55e-17 of the perpetual."""
    q, first = 0.36069176890237964, 0.19644615909064317
    store = store_of([q, -first, -5_000.0], [150.0, 150.0, 150.0], [0.0, 1e3, 1e9])
    result = waterfall_on(store, [-5.0, 1e3, 1e9], 100.0, 1.0)
    assert result.close_row.size == 0  # fully matched by ADL
    book_into(store, result, 100.0)
    assert store.pos_quantity[store.used_slots(np.array([0]))].tolist() == [0.0]
    assert store.quantity(1, 0) + store.quantity(2, 0) == -first - 5_000.0 + q  # open interest kept


# -------------------------------------------------------------------------------- the streaming engine


def test_the_crash_replay_runs_and_leaves_no_dust() -> None:
    """The reported stream: 600 traders at median leverage 15 under the synthetix model, a 25% crash over
    240 s. It raised in the ADL step; now it runs, with ADL fills, and every bankrupt account is settled flat
    (no dust position left to go bankrupt again), and nothing is unresolved."""
    book, market = venue(600, 3, leverage_median=15.0)
    published: list[ev.Event] = []
    engine = StreamEngine.start(
        book, market, MarginParams(), insurance_fund=50_000.0, sink=published.extend, model="synthetix"
    )
    for batch in crash_path(240, 4, -0.25):
        engine.run_batch(batch)
    assert engine.totals.adl_fills > 0
    store = engine.store
    slots = store.used_slots(np.arange(store.n_accounts, dtype=np.int64))
    held = np.abs(store.pos_quantity[slots])
    assert not ((held > 0.0) & (held < 1e-9)).any()  # no dust position anywhere
    bankrupt = {e.account for e in published if isinstance(e, ev.AutoDeleveraged)}
    bankrupt |= {e.account for e in published if isinstance(e, ev.LiquidationExecuted) and e.reason == "bankruptcy"}
    rows = np.array(sorted(store.row_of[a] for a in bankrupt), dtype=np.int64)
    assert rows.size and store.is_flat(rows).all()  # quotes only: a settled account stays flat
    assert engine.totals.unresolved == 0.0
