"""The backstop waterfall: worked examples by hand, the slow twin of the ADL fill, and invariants over random books."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pytest
from adl_loop import slow_adl_fills
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.liquidation import waterfall
from solvent.liquidation.waterfall import WaterfallResult, adl_fills, run_waterfall

PERP, OPTION = 0, 1  # instrument 0: a linear perpetual (mark 100, size 1); 1: an option (mark 5 per contract)


@dataclass(frozen=True)
class Book:
    """Positions of every account as the flat arrays `run_waterfall` takes."""

    account: list[int]
    instrument: list[int]
    quantity: list[float]
    entry: list[float]
    cost: list[float]

    def arrays(self, marks: dict[int, float] | None = None) -> dict[str, Any]:
        marks = {PERP: 100.0, OPTION: 5.0} if marks is None else marks
        n = len(self.account)
        return {
            "pos_account": np.array(self.account, dtype=np.int64),
            "pos_instrument": np.array(self.instrument, dtype=np.int64),
            "pos_quantity": np.array(self.quantity, dtype=np.float64),
            "pos_entry": np.array(self.entry, dtype=np.float64),
            "pos_mark": np.array([marks[i] for i in self.instrument], dtype=np.float64),
            "contract_size": np.ones(n),
            "is_linear": np.array([i == PERP for i in self.instrument], dtype=np.bool_),
            "pos_close_cost": np.array(self.cost, dtype=np.float64),
        }


def run(bankrupt: list[int], equity: list[float], fund: float, book: Book) -> WaterfallResult:
    return run_waterfall(np.array(bankrupt), np.array(equity), fund, **book.arrays())


def test_fund_covers_the_whole_deficit() -> None:
    """Account 0: long 10 at mark 100, E = -20, close-out cost 15, so D = 35 <= fund 50: the fund pays 35,
    everything is closed in the market, account 0 ends at 0 (+20), the fund keeps 15, nobody else is touched."""
    book = Book([0, 1], [PERP, PERP], [10.0, -10.0], [110.0, 120.0], [15.0, 0.0])
    result = run([0], [-20.0, 200.0], 50.0, book)
    assert result.fund_after == 15.0
    assert result.fund_paid.tolist() == [35.0]
    assert result.market_cost.tolist() == [15.0]
    assert result.adl_loss.tolist() == result.socialised.tolist() == result.unresolved.tolist() == [0.0]
    assert result.close_row.tolist() == [0] and result.close_quantity.tolist() == [10.0]
    assert result.adl_row.size == 0
    assert result.equity_change.tolist() == [20.0, 0.0]


def test_fund_partly_covers_then_one_counterparty_takes_the_rest() -> None:
    """E = -30, cost 20 (D = 50), fund 10: the fund pays 10 of the mark loss, L = 20 is left. Bankruptcy
    price 100 + 20 / 10 = 102. Account 1 (short 10 from 120, equity 500) buys the 10 back at 102 instead of
    100: it loses 10 x 2 = 20, the bankrupt gains 20 and ends at 0; no market close, no cost."""
    book = Book([0, 1], [PERP, PERP], [10.0, -10.0], [110.0, 120.0], [20.0, 0.0])
    result = run([0], [-30.0, 500.0], 10.0, book)
    assert result.fund_after == 0.0
    assert result.fund_paid.tolist() == [10.0]
    assert result.adl_loss.tolist() == [20.0]
    assert result.market_cost.tolist() == [0.0]
    assert result.adl_counterparty.tolist() == [1] and result.adl_row.tolist() == [1]
    assert result.adl_quantity.tolist() == [-10.0]  # signed as the counterparty's short
    assert result.adl_price.tolist() == [102.0]
    assert result.close_row.size == 0
    assert result.equity_change.tolist() == [30.0, -20.0]


def test_partial_adl_then_market_then_socialised() -> None:
    """As above but the counterparty is short only 4: it takes 4 at 102 (loses 8); the other 6 are closed in
    the market at 0.6 x 20 = 12. Residual R = -(-30 + 10 + 8 - 12) = 24, the fund is empty, so 24 is charged
    to the solvent accounts pro rata to equity: account 1 (500 - 8 = 492) and account 2 (308), 3% each."""
    book = Book([0, 1, 2], [PERP, PERP, PERP], [10.0, -4.0, 5.0], [110.0, 120.0, 90.0], [20.0, 0.0, 0.0])
    result = run([0], [-30.0, 500.0, 308.0], 10.0, book)
    assert result.adl_quantity.tolist() == [-4.0]
    assert result.adl_loss.tolist() == [8.0]
    assert result.close_row.tolist() == [0]
    np.testing.assert_allclose(result.close_quantity, [6.0], rtol=1e-15)
    np.testing.assert_allclose(result.market_cost, [12.0], rtol=1e-15)
    np.testing.assert_allclose(result.socialised, [24.0], rtol=1e-15)
    np.testing.assert_allclose(result.charges, [0.0, 0.03 * 492.0, 0.03 * 308.0], rtol=1e-14)
    np.testing.assert_allclose(result.equity_change, [30.0, -8.0 - 14.76, -9.24], rtol=1e-14)
    assert result.unresolved.tolist() == [0.0]


def test_adl_ranks_counterparties_by_pnl_times_leverage() -> None:
    """E = -50, fund 0: L = 50, p_b = 100 + 50 / 10 = 105. Four shorts on the perpetual; the scores,
    sign(q) (p_b - entry) / entry x gross / equity, are computed here. Account 4's short from 104 is in profit
    at mark but not at p_b, so it does not qualify. Fill 10 in rank order: 4, 5, 1."""
    entries = {1: 140.0, 2: 125.0, 3: 210.0, 4: 104.0}
    shorts = {1: 4.0, 2: 5.0, 3: 6.0, 4: 8.0}
    equities = {1: 100.0, 2: 250.0, 3: 1200.0, 4: 900.0}
    book = Book(
        [0, 1, 2, 3, 4],
        [PERP] * 5,
        [10.0] + [-shorts[a] for a in (1, 2, 3, 4)],
        [110.0] + [entries[a] for a in (1, 2, 3, 4)],
        [30.0, 0.0, 0.0, 0.0, 0.0],
    )
    score = {a: (entries[a] - 105.0) / entries[a] * (shorts[a] * 100.0 / equities[a]) for a in entries}
    assert [round(score[a], 12) for a in (1, 2, 3)] == [1.0, 0.32, 0.25] and score[4] < 0.0
    result = run([0], [-50.0, *equities.values()], 0.0, book)
    assert result.adl_counterparty.tolist() == sorted(entries, key=lambda a: -score[a])[:3] == [1, 2, 3]
    assert result.adl_quantity.tolist() == [-4.0, -5.0, -1.0]
    assert result.adl_price.tolist() == [105.0] * 3
    assert result.adl_loss.tolist() == [50.0]
    assert result.equity_change.tolist() == [50.0, -20.0, -25.0, -5.0, 0.0]
    assert result.market_cost.tolist() == [0.0] and result.fund_after == 0.0


def test_ties_go_to_the_lower_account_then_the_lower_row() -> None:
    """Accounts 2 and 1 hold identical shorts (same score): account 1 is filled first, and of account 2's two
    identical rows the lower row first: 6 + 3 + 1 = 10 at p_b = 102."""
    book = Book([0, 2, 2, 1], [PERP] * 4, [10.0, -3.0, -3.0, -6.0], [110.0, 120.0, 120.0, 120.0], [5.0, 0, 0, 0])
    result = run([0], [-20.0, 600.0, 600.0], 0.0, book)
    assert result.adl_counterparty.tolist() == [1, 2, 2]
    assert result.adl_row.tolist() == [3, 1, 2]
    assert result.adl_quantity.tolist() == [-6.0, -3.0, -1.0]
    assert result.close_row.size == 0


def test_adl_never_takes_more_than_a_counterpartys_equity() -> None:
    """p_b = 105 (L = 50), so each unit costs a counterparty 5. Account 1 ranks first (leverage 50) but has
    equity 20: it gives 4 units and ends at 0; account 2 gives the other 6."""
    book = Book([0, 1, 2], [PERP] * 3, [10.0, -10.0, -10.0], [110.0, 200.0, 150.0], [30.0, 0.0, 0.0])
    result = run([0], [-50.0, 20.0, 1000.0], 0.0, book)
    assert result.adl_counterparty.tolist() == [1, 2]
    assert result.adl_quantity.tolist() == [-4.0, -6.0]
    assert result.equity_change.tolist() == [50.0, -20.0, -30.0]


def test_no_counterparty_everything_is_socialised() -> None:
    """Account 0: long 10 perpetual (cost 10) and 2 options (cost 6), E = -40, fund 5: C = 16, D = 56. The fund
    pays 5; nobody is short the perpetual, so all is closed in the market (16) and R = -(-40 + 5 - 16) = 51 is
    charged to accounts 1 and 2 (equity 300 and 210, 10% each). Account 3 (negative equity) pays nothing."""
    book = Book([0, 0, 1], [PERP, OPTION, PERP], [10.0, 2.0, 1.0], [120.0, math.nan, 90.0], [10.0, 6.0, 0.0])
    result = run([0], [-40.0, 300.0, 210.0, -5.0], 5.0, book)
    assert result.fund_paid.tolist() == [5.0] and result.fund_after == 0.0
    assert result.close_row.tolist() == [0, 1] and result.close_quantity.tolist() == [10.0, 2.0]
    assert result.market_cost.tolist() == [16.0]
    np.testing.assert_allclose(result.socialised, [51.0], rtol=1e-15)
    np.testing.assert_allclose(result.charges, [0.0, 30.0, 21.0, 0.0], rtol=1e-15)
    assert result.unresolved.tolist() == [0.0]
    np.testing.assert_allclose(result.equity_change, [40.0, -30.0, -21.0, 0.0], rtol=1e-15)


def test_capped_socialisation_leaves_the_rest_unresolved() -> None:
    """As above with solvent equities 20 and 10: each is charged all of it (30), and 51 - 30 = 21 is unresolved;
    account 0 ends at -21 (a change of 40 - 21 = 19)."""
    book = Book([0, 0, 1], [PERP, OPTION, PERP], [10.0, 2.0, 1.0], [120.0, math.nan, 90.0], [10.0, 6.0, 0.0])
    result = run([0], [-40.0, 20.0, 10.0, -5.0], 5.0, book)
    assert result.charges.tolist() == [0.0, 20.0, 10.0, 0.0]
    assert result.socialised.tolist() == [30.0]
    assert result.unresolved.tolist() == [21.0] and result.total_unresolved == 21.0
    assert result.equity_change.tolist() == [19.0, -20.0, -10.0, 0.0]


def test_positive_equity_surplus_goes_to_the_fund() -> None:
    """E = +10 but closing in the market costs 50 (D = 40 > fund 0). L = 0, so ADL is at mark: account 1 takes
    the 10 units at 100 and loses nothing; nothing is left to close, and the 10 of equity goes to the fund."""
    book = Book([0, 1], [PERP, PERP], [10.0, -10.0], [95.0, 120.0], [50.0, 0.0])
    result = run([0], [10.0, 100.0], 0.0, book)
    assert result.adl_price.tolist() == [100.0] and result.adl_quantity.tolist() == [-10.0]
    assert result.fund_received.tolist() == [10.0] and result.fund_after == 10.0
    assert result.market_cost.tolist() == [0.0]
    assert result.equity_change.tolist() == [-10.0, 0.0]


def test_the_fund_is_shared_in_ascending_account_order() -> None:
    """Two bankrupt accounts each short of 30 and a fund of 40, passed in descending order: account 1 is
    resolved first and gets 30; account 3 gets the last 10 and the other 20 is socialised onto account 2."""
    book = Book([1, 3], [PERP, PERP], [1.0, 1.0], [130.0, 130.0], [0.0, 0.0])
    result = run([3, 1], [0.0, -30.0, 1000.0, -30.0], 40.0, book)
    assert result.accounts.tolist() == [1, 3]
    assert result.fund_paid.tolist() == [30.0, 10.0]
    assert result.socialised.tolist() == [0.0, 20.0]
    assert result.equity_change.tolist() == [0.0, 30.0, -20.0, 30.0]


def test_the_result_is_read_only() -> None:
    book = Book([0, 1], [PERP, PERP], [10.0, -10.0], [110.0, 120.0], [15.0, 0.0])
    result = run([0], [-20.0, 200.0], 50.0, book)
    with pytest.raises(ValueError, match="read-only"):
        result.equity_change[0] = 1.0


_GOOD = Book([0, 1], [PERP, PERP], [10.0, -10.0], [110.0, 120.0], [15.0, 0.0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bankrupt": [0, 0]}, "distinct account rows, got 0 twice"),
        ({"bankrupt": [2]}, r"bankrupt\[0\] must be an account row in \[0, 2\), got 2"),
        ({"equity": [math.nan, 1.0]}, r"equity\[0\] must be finite"),
        ({"fund": -1.0}, "fund must be finite and >= 0, got -1.0"),
        ({"equity": [20.0, 1.0]}, "bankrupt account 0 has no deficit: close-out cost 15.0 - equity 20.0"),
        ({"pos_close_cost": [-1.0, 0.0]}, r"pos_close_cost\[0\] of a bankrupt account must be >= 0, got -1.0"),
        ({"pos_entry": [110.0, math.nan]}, r"pos_entry\[1\] of a linear position must be > 0, got nan"),
        ({"pos_mark": [100.0, 101.0]}, r"pos_mark\[1\] must be the same for every position of instrument 0"),
        ({"contract_size": [1.0, 0.0]}, r"contract_size\[1\] must be finite and > 0, got 0.0"),
        ({"pos_quantity": [10.0]}, r"pos_quantity must have one value per position \(2\), got shape \(1,\)"),
        ({"is_linear": [1, 1]}, "is_linear must be a one-dimensional bool array"),
        ({"pos_account": [0.0, 1.0]}, "pos_account must hold integers, got dtype float64"),
    ],
)
def test_bad_input_names_the_offending_value(change: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {"bankrupt": [0], "equity": [-20.0, 200.0], "fund": 1.0, **_GOOD.arrays()}
    kwargs.update({key: np.asarray(value) if isinstance(value, list) else value for key, value in change.items()})
    with pytest.raises(ValueError, match=message):
        run_waterfall(**kwargs)


def test_a_flat_position_cannot_cost_anything() -> None:
    book = Book([0, 0, 1], [PERP, PERP, PERP], [10.0, 0.0, -10.0], [110.0, 100.0, 120.0], [15.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"pos_close_cost\[1\] of a flat position must be 0, got 1.0"):
        run([0], [-20.0, 200.0], 0.0, book)


# ------------------------------------------------------------------------------- the slow twin of adl_fills


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 12),
    demand=st.sampled_from([0.5, 3.0, 10.0, 40.0]),
    loss=st.sampled_from([0.0, 2.0, 25.0]),
    side=st.sampled_from([1.0, -1.0]),
)
def test_adl_fills_agrees_with_its_slow_twin(
    data: st.DataObject, n: int, demand: float, loss: float, side: float
) -> None:
    small = st.sampled_from([1.0, 2.0, 3.0, 5.0, 8.0])
    account = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.int64)
    equity_by_account = np.array(data.draw(st.lists(st.sampled_from([5.0, 20.0, 100.0]), min_size=5, max_size=5)))
    gross_by_account = np.array(data.draw(st.lists(st.sampled_from([100.0, 400.0]), min_size=5, max_size=5)))
    quantity = -side * np.array(data.draw(st.lists(small, min_size=n, max_size=n)))
    entry = np.array(data.draw(st.lists(st.sampled_from([80.0, 95.0, 100.0, 110.0, 150.0]), min_size=n, max_size=n)))
    rows = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    price = 100.0 + side * loss
    args = (
        demand,
        price,
        100.0,
        1.0,
        rows,
        account,
        quantity,
        entry,
        equity_by_account[account],
        gross_by_account[account],
    )
    picked, fill = adl_fills(*args)
    expected = slow_adl_fills(*args)
    assert picked.tolist() == [i for i, _ in expected]
    np.testing.assert_allclose(fill, [f for _, f in expected], rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), first=st.sampled_from([1, 2, 5]), demand=st.sampled_from([0.5, 30.0, 900.0]))
def test_ranking_a_prefix_of_the_candidates_fills_as_ranking_them_all(seed: int, first: int, demand: float) -> None:
    """The partial ranking (the best `_FIRST_RANKED`, then four times more) gives the full ranking's fills bit for
    bit, ties at the cut included (scores repeat: a few entries, equities and grosses)."""
    rng = np.random.default_rng(seed)
    n = 300
    account = rng.integers(0, 120, n)
    equity = rng.choice([5.0, 20.0, 100.0], 120)[account]
    gross = rng.choice([100.0, 400.0], 120)[account]
    args = (
        demand, 90.0, 100.0, 1.0, rng.permutation(n), account, -rng.choice([1.0, 2.0, 3.0], n),
        rng.choice([95.0, 100.0, 110.0, 150.0], n), equity, gross,
    )  # fmt: skip
    default = waterfall._FIRST_RANKED
    try:
        waterfall._FIRST_RANKED = n
        everything = adl_fills(*args)
        waterfall._FIRST_RANKED = first
        prefix = adl_fills(*args)
    finally:
        waterfall._FIRST_RANKED = default
    assert prefix[0].tolist() == everything[0].tolist() and prefix[1].tolist() == everything[1].tolist()


# ------------------------------------------------------------------------------------ invariants over books


@dataclass(frozen=True)
class Case:
    bankrupt: np.ndarray
    equity: np.ndarray
    fund: float
    positions: dict[str, np.ndarray]

    def run(self) -> WaterfallResult:
        return run_waterfall(self.bankrupt, self.equity, self.fund, **self.positions)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """2-8 accounts, up to 24 positions on two perpetuals and an option; up to half are bankrupt, each with a
    random deficit D_k > 0 (their equity is set to C_k - D_k, so it may be positive or negative)."""
    n = draw(st.integers(2, 8))
    m = draw(st.integers(1, 24))
    marks = [draw(st.sampled_from([50.0, 100.0, 2500.0])), draw(st.floats(1.0, 500.0)), draw(st.floats(0.5, 40.0))]
    sizes = [1.0, draw(st.sampled_from([0.1, 1.0, 10.0])), 1.0]
    account = np.array(draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), dtype=np.int64)
    instrument = np.array(draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=m, max_size=m)), dtype=np.int64)
    quantity_values = st.one_of(st.sampled_from([-2.0, -1.0, 0.0, 1.0, 3.0]), st.floats(-20.0, 20.0))
    quantity = np.array(draw(st.lists(quantity_values, min_size=m, max_size=m)))
    entry_factor = np.array(draw(st.lists(st.floats(0.3, 2.0), min_size=m, max_size=m)))
    linear = instrument < 2
    mark = np.array(marks)[instrument]
    entry = np.where(linear, mark * entry_factor, np.nan)
    cost = np.where(quantity != 0.0, np.array(draw(st.lists(st.floats(0.0, 60.0), min_size=m, max_size=m))), 0.0)
    equity = np.array(draw(st.lists(st.floats(-300.0, 3000.0), min_size=n, max_size=n)))
    bankrupt = np.array(
        sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=max(1, n // 2)))), dtype=np.int64
    )
    deficit = np.array(draw(st.lists(st.floats(0.01, 800.0), min_size=bankrupt.size, max_size=bankrupt.size)))
    close_out = np.bincount(account, weights=cost, minlength=n)
    equity[bankrupt] = close_out[bankrupt] - deficit
    equity[bankrupt] = np.where(close_out[bankrupt] - equity[bankrupt] > 0.0, equity[bankrupt], -deficit)
    positions = {
        "pos_account": account,
        "pos_instrument": instrument,
        "pos_quantity": quantity,
        "pos_entry": entry,
        "pos_mark": mark,
        "contract_size": np.array(sizes)[instrument],
        "is_linear": linear,
        "pos_close_cost": cost,
    }
    fund = draw(st.sampled_from([0.0, 0.0, 50.0, 1e4]) | st.floats(0.0, 300.0))
    return Case(np.array(draw(st.permutations(bankrupt.tolist())), dtype=np.int64), equity, fund, positions)


def _scale(case: Case) -> float:
    return float(np.abs(case.equity).sum() + case.fund + case.positions["pos_close_cost"].sum() + 1.0)


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_nothing_is_created_and_nothing_is_lost(case: Case) -> None:
    """sum(equity_change) + (fund_after - fund) + market_cost == 0: every dollar is accounted for."""
    result = case.run()
    balance = result.equity_change.sum() + (result.fund_after - case.fund) + result.market_cost.sum()
    assert abs(balance) <= 1e-9 * _scale(case)
    assert result.close_cost.sum() == pytest.approx(result.market_cost.sum(), rel=1e-12, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_bankrupt_accounts_end_at_zero_unless_unresolved(case: Case) -> None:
    result = case.run()
    final = case.equity[result.accounts] + result.equity_change[result.accounts]
    covered = result.unresolved == 0.0
    assert (final[covered] == 0.0).all()
    np.testing.assert_allclose(final[~covered], -result.unresolved[~covered], rtol=1e-12, atol=1e-9 * _scale(case))
    assert (result.unresolved >= 0.0).all()


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_fund_charges_and_solvent_accounts_stay_non_negative(case: Case) -> None:
    """The fund never goes negative; a solvent account is never charged or deleveraged below 0; an account
    that is neither bankrupt nor solvent (equity <= 0) is never touched."""
    result = case.run()
    tolerance = 1e-9 * _scale(case)
    assert result.fund_after >= 0.0
    for name in ("fund_paid", "fund_received", "adl_loss", "market_cost", "socialised", "unresolved", "charges"):
        assert (getattr(result, name) >= 0.0).all(), name
    others = np.ones(case.equity.size, dtype=bool)
    others[result.accounts] = False
    assert (result.charges[~others] == 0.0).all()
    final = case.equity + result.equity_change
    assert (final[others & (case.equity > 0.0)] >= -tolerance).all()
    assert (result.charges <= np.maximum(case.equity, 0.0) + tolerance).all()
    assert (result.equity_change[others & (case.equity <= 0.0)] == 0.0).all()


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_adl_fills_respect_quantities_and_sides(case: Case) -> None:
    result = case.run()
    p = case.positions
    quantity = p["pos_quantity"]
    taken = np.bincount(result.adl_row, weights=np.abs(result.adl_quantity), minlength=quantity.size)
    assert (taken <= np.abs(quantity) * (1.0 + 1e-12)).all()
    rows = result.adl_row
    assert (np.sign(result.adl_quantity) == np.sign(quantity[rows])).all()
    assert not np.isin(result.adl_counterparty, result.accounts).any()
    assert (p["pos_account"][rows] == result.adl_counterparty).all()
    assert (p["pos_instrument"][rows] == result.adl_instrument).all()
    assert p["is_linear"][rows].all()
    # The bankrupt side is opposite: a short counterparty buys back above (or at) mark, a long sells below.
    assert (np.sign(result.adl_quantity) * (result.adl_price - p["pos_mark"][rows]) <= 0.0).all()
    for k, instrument, q in zip(result.adl_bankrupt, result.adl_instrument, result.adl_quantity, strict=True):
        own = (p["pos_account"] == k) & (p["pos_instrument"] == instrument)
        assert (np.sign(quantity[own]) == -np.sign(q)).any()
    # A bankrupt position is closed once: by ADL and the market together, never more than it holds.
    closed = np.bincount(result.close_row, weights=np.abs(result.close_quantity), minlength=quantity.size)
    assert (closed <= np.abs(quantity) * (1.0 + 1e-12)).all()
    assert np.isin(p["pos_account"][result.close_row], result.accounts).all()


def _transfers(result: WaterfallResult, row_of: np.ndarray) -> dict[str, Any]:
    """Everything the result says, with input rows renamed by `row_of` and fills summed per (bankrupt,
    counterparty, instrument, side), so two runs on reordered books can be compared."""
    fills: dict[tuple[int, int, int, float], list[float]] = {}
    for k, c, i, q, price in zip(
        result.adl_bankrupt,
        result.adl_counterparty,
        result.adl_instrument,
        result.adl_quantity,
        result.adl_price,
        strict=True,
    ):
        entry = fills.setdefault((int(k), int(c), int(i), float(np.sign(q))), [0.0, price])
        entry[0] += float(q)
    closes = dict(zip(row_of[result.close_row].tolist(), result.close_quantity.tolist(), strict=True))
    per_account = {f.name: getattr(result, f.name) for f in fields(result) if f.name not in _TRANSFER_ARRAYS}
    return {"fills": fills, "closes": closes, **per_account}


_TRANSFER_ARRAYS = {"adl_bankrupt", "adl_counterparty", "adl_row", "adl_instrument", "adl_quantity", "adl_price"} | {
    "close_row",
    "close_quantity",
    "close_cost",
}


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data())
def test_reordering_positions_changes_nothing(case: Case, data: st.DataObject) -> None:
    m = case.positions["pos_account"].size
    order = np.array(data.draw(st.permutations(range(m))), dtype=np.int64)
    shuffled = replace(case, positions={key: value[order] for key, value in case.positions.items()})
    first = _transfers(case.run(), np.arange(m))
    second = _transfers(shuffled.run(), order)
    assert first.keys() == second.keys()
    assert first["fills"].keys() == second["fills"].keys()
    for key, (quantity, price) in first["fills"].items():
        assert second["fills"][key][0] == pytest.approx(quantity, rel=1e-12, abs=1e-12)
        assert second["fills"][key][1] == price
    assert first["closes"].keys() == second["closes"].keys()
    for row, quantity in first["closes"].items():
        assert second["closes"][row] == pytest.approx(quantity, rel=1e-12, abs=1e-12)
    scale = _scale(case)
    for name in first.keys() - {"fills", "closes"}:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-12, atol=1e-12 * scale, err_msg=name)


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_same_input_same_output_and_inputs_untouched(case: Case) -> None:
    before = {key: value.copy() for key, value in case.positions.items()}
    equity, bankrupt = case.equity.copy(), case.bankrupt.copy()
    first, second = case.run(), case.run()
    for f in fields(first):
        a, b = getattr(first, f.name), getattr(second, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f.name
        else:
            assert a == b, f.name
    for key, value in before.items():
        np.testing.assert_array_equal(case.positions[key], value, err_msg=key)
    np.testing.assert_array_equal(case.equity, equity)
    np.testing.assert_array_equal(case.bankrupt, bankrupt)


@settings(max_examples=100, deadline=None)
@given(case=cases())
def test_only_the_positions_it_can_touch_with_the_gross_given_change_nothing(case: Case) -> None:
    """What the streaming engine passes: the bankrupt accounts' positions and, on their linear instruments,
    everyone's, with every account's linear gross notional given; the transfers are those of the full input."""
    p = case.positions
    full = case.run()
    notional = np.where(p["is_linear"], np.abs(p["pos_quantity"]) * p["contract_size"] * p["pos_mark"], 0.0)
    gross = np.bincount(p["pos_account"], weights=notional, minlength=case.equity.size)
    theirs = np.isin(p["pos_account"], case.bankrupt)
    instruments = np.unique(p["pos_instrument"][theirs & p["is_linear"]])
    keep = np.flatnonzero(theirs | (np.isin(p["pos_instrument"], instruments) & p["is_linear"]))
    part = run_waterfall(
        case.bankrupt, case.equity, case.fund, account_gross=gross, **{k: v[keep] for k, v in p.items()}
    )
    np.testing.assert_allclose(part.equity_change, full.equity_change, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(part.charges, full.charges, rtol=1e-12, atol=1e-9)
    assert part.fund_after == pytest.approx(full.fund_after, rel=1e-12, abs=1e-9)
    np.testing.assert_array_equal(keep[part.adl_row], full.adl_row)
    np.testing.assert_allclose(part.adl_quantity, full.adl_quantity, rtol=1e-12)
