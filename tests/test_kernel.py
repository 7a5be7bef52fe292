"""The fused numba kernel against its numpy twin and against brute-force risk measures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvent.engine.book import Book
from solvent.engine.kernel import margins, margins_numpy, risk_measure_numpy
from solvent.engine.riskarrays import RiskArrays


def random_arrays(rng: np.random.Generator, n_inst: int, n_assets: int, n_scen: int, groups: int) -> RiskArrays:
    asset = rng.integers(0, n_assets, n_inst).astype(np.int32)
    linear = rng.random(n_inst) < 0.5
    weight = np.where(linear, rng.uniform(0.5, 2.0, n_inst), 0.0)
    sizes = np.full(groups, n_scen // groups)
    sizes[-1] += n_scen - sizes.sum()
    return RiskArrays(
        instrument_asset=asset,
        instrument_pnl=rng.normal(0, 100, (n_inst, n_scen)),
        asset_pnl=rng.normal(0, 50, (n_assets, n_scen)),
        linear_weight=weight,
        unit_greeks=rng.normal(0, 1, (n_inst, 3)),
        value=np.zeros(n_inst),
        group_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        n_assets=n_assets,
    )


def random_book(rng: np.random.Generator, n_acc: int, n_inst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = rng.integers(0, 9, n_acc)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    inst = rng.integers(0, n_inst, offsets[-1]).astype(np.int32)
    qty = rng.normal(0, 3, offsets[-1])
    return offsets, inst, qty


@pytest.mark.parametrize("measure", ["es", "var", "worst"])
@pytest.mark.parametrize(
    "n_scen,groups,confidence", [(256, 1, 0.99), (1000, 1, 0.975), (48, 3, 0.99), (7, 1, 0.5 + 1e-9)]
)
def test_fused_kernel_agrees_with_numpy_twin(measure: str, n_scen: int, groups: int, confidence: float) -> None:
    rng = np.random.default_rng(n_scen + groups)
    arrays = random_arrays(rng, 40, 4, n_scen, groups)
    offsets, inst, qty = random_book(rng, 500, 40)
    fast, fast_greeks = margins(offsets, inst, qty, arrays, confidence, measure)
    slow, slow_greeks = margins_numpy(offsets, inst, qty, arrays, confidence, measure, chunk=97)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(fast_greeks, slow_greeks, rtol=1e-12, atol=1e-10)
    assert np.all(fast >= 0.0)
    assert np.count_nonzero(fast) > 200  # the comparison is not between zeros (median VaR: about half)


@pytest.mark.parametrize("measure", ["es", "var", "worst"])
@pytest.mark.parametrize("groups", [1, 3])
def test_one_asset_linear_accounts_skip_the_scenarios_and_agree_with_the_twin(measure: str, groups: int) -> None:
    """Linear books netting to one asset (several positions on it, long or short, some netting to zero) take the
    homogeneous shortcut: |delta| x the unit measure of their side; the twin reduces their dense P&L. Books on
    two assets go the scenario way; both agree with the twin, and a book is margined the same alone or within
    the others."""
    rng = np.random.default_rng(groups)
    arrays = random_arrays(rng, 40, 4, 600, groups)
    linear = np.flatnonzero(arrays.linear_weight != 0.0)
    by_asset = [linear[arrays.instrument_asset[linear] == a] for a in range(4)]
    offsets, inst, qty = [0], [], []
    for k in range(300):
        pool = by_asset[k % 4] if k % 5 else linear  # four in five on one asset, the rest on any
        held = rng.choice(pool, rng.integers(1, 4))
        quantity = rng.normal(0.0, 3.0, held.size)
        if k % 17 == 0:  # two opposite positions netting to exactly zero
            held, quantity = np.array([held[0], held[0]]), np.array([2.0, -2.0])
        inst.extend(held.tolist())
        qty.extend(quantity.tolist())
        offsets.append(len(inst))
    book = (np.array(offsets, dtype=np.int64), np.array(inst, dtype=np.int32), np.array(qty))
    fast, _ = margins(*book, arrays, 0.99, measure)
    slow, _ = margins_numpy(*book, arrays, 0.99, measure, chunk=64)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-9)
    assert np.count_nonzero(fast) > 250 and np.all(fast[::17] == 0.0)
    for k in (1, 2, 3, 5):  # alone, the same figure to the bit
        alone, _ = margins(
            np.array([0, book[0][k + 1] - book[0][k]]),
            book[1][book[0][k] : book[0][k + 1]],
            book[2][book[0][k] : book[0][k + 1]],
            arrays,
            0.99,
            measure,
        )
        assert alone[0] == fast[k]


@pytest.mark.parametrize(
    "losses,confidence,expected_es,expected_var",
    [
        # 100 scenarios at 99%: m = 1, ES = worst loss, VaR = second worst.
        (np.arange(100.0), 0.99, 99.0, 98.0),
        # 200 at 99%: m = 2, ES = mean of the two worst, VaR = third worst.
        (np.arange(200.0), 0.99, 198.5, 197.0),
        # 250 at 99%: m = 2.5, ES = (249 + 248 + 0.5 * 247) / 2.5.
        (np.arange(250.0), 0.99, (249 + 248 + 0.5 * 247) / 2.5, 247.0),
        # 16 at 99%: m = 0.16 < 1, ES and VaR are the worst loss.
        (np.arange(16.0), 0.99, 15.0, 15.0),
        # issue 12 item 13: 10 at 90%: m = 10 x (1 - 0.9) = 1 (0.9999999999999998 in floating point), so VaR is the
        # second worst, L(2) = 9, the smallest loss exceeded by at most 10% of the scenarios (not L(1) = 10).
        (np.arange(1.0, 11.0), 0.9, 10.0, 9.0),
        # 100 at 90%: m = 10 (9.999999999999998), VaR = L(11) = 90 (not L(10) = 91), ES = mean of 100 .. 91.
        (np.arange(1.0, 101.0), 0.9, 95.5, 90.0),
        # 1000 at 99.7%: m = 3 (2.9999999999999973), VaR = L(4).
        (np.arange(1.0, 1001.0), 0.997, 999.0, 997.0),
    ],
)
def test_risk_measures_by_hand(losses: np.ndarray, confidence: float, expected_es: float, expected_var: float) -> None:
    shuffled = np.random.default_rng(1).permutation(losses)[np.newaxis, :]
    assert risk_measure_numpy(shuffled, confidence, "es")[0] == pytest.approx(expected_es, rel=1e-14)
    assert risk_measure_numpy(shuffled, confidence, "var")[0] == pytest.approx(expected_var, rel=1e-14)
    # The fused kernel on a single instrument of P&L = -loss gives the same numbers.
    arrays = RiskArrays(
        instrument_asset=np.zeros(1, dtype=np.int32),
        instrument_pnl=-shuffled,
        asset_pnl=np.zeros((1, losses.size)),
        linear_weight=np.zeros(1),
        unit_greeks=np.zeros((1, 3)),
        value=np.zeros(1),
        group_offsets=np.array([0, losses.size], dtype=np.int64),
        n_assets=1,
    )
    one = (np.array([0, 1], dtype=np.int64), np.zeros(1, dtype=np.int32), np.ones(1))
    assert margins(*one, arrays, confidence, "es")[0][0] == pytest.approx(expected_es, rel=1e-14)
    assert margins(*one, arrays, confidence, "var")[0][0] == pytest.approx(expected_var, rel=1e-14)


def test_var_is_the_empirical_quantile_counted_in_whole_observations() -> None:
    """issue 12 item 13: VaR at c of n losses is the smallest loss exceeded by at most n (1 - c) of them, counted
    exactly for every c whose n (1 - c) is a whole number t (the rounding of 1 - c must not drop an observation).
    Brute-force twin on shuffled losses: the smallest x among them with #{L > x} <= t (integer counting only).
    The kernel, the numpy twin and the Euler weights of `--explain` agree."""
    from solvent.engine.attribution import rank_weights

    rng = np.random.default_rng(12)
    for n in (10, 20, 100, 250, 1000):
        losses = rng.permutation(rng.normal(0.0, 1.0, n))
        for tail in sorted({1, 2, 3, n // 10, n // 4, n // 2 - 1} - {0}):
            confidence = 1.0 - tail / n
            expected = min(x for x in losses.tolist() if np.count_nonzero(losses > x) <= tail)
            assert risk_measure_numpy(losses[np.newaxis, :], confidence, "var")[0] == expected, (n, tail)
            weights = rank_weights(n, confidence, "var")
            assert weights.size == tail + 1 and weights[-1] == 1.0, (n, tail)
            arrays = RiskArrays(
                instrument_asset=np.zeros(1, dtype=np.int32),
                instrument_pnl=-losses[np.newaxis, :],
                asset_pnl=np.zeros((1, n)),
                linear_weight=np.zeros(1),
                unit_greeks=np.zeros((1, 3)),
                value=np.zeros(1),
                group_offsets=np.array([0, n], dtype=np.int64),
                n_assets=1,
            )
            one = (np.array([0, 1], dtype=np.int64), np.zeros(1, dtype=np.int32), np.ones(1))
            assert margins(*one, arrays, confidence, "var")[0][0] == max(expected, 0.0), (n, tail)


def test_es_matches_definition_by_brute_force() -> None:
    """ES as the integral of the empirical quantile function over the tail (brute force on a fine grid)."""
    rng = np.random.default_rng(3)
    losses = rng.normal(size=(1, 333))
    confidence = 0.97
    ordered = np.sort(losses[0])
    u = (np.arange(200_000) + 0.5) / 200_000 * (1 - confidence) + confidence
    quantiles = ordered[np.minimum((u * ordered.size).astype(int), ordered.size - 1)]
    assert risk_measure_numpy(losses, confidence, "es")[0] == pytest.approx(quantiles.mean(), rel=1e-4)
    assert math.isfinite(quantiles.mean())


def test_mcmillan_span_scanning_risk() -> None:
    """McMillan, Options as a Strategic Investment, Part V, p. 670: long 1 S&P future + short 1 Dec 410 call.

    Scenario P&L as published (cover fraction already applied to 15 and 16); the scanning risk is the
    largest loss of the combined position, 6,620 at scenario 13.
    """
    future = [0, 0, 3330, 3330, -3330, -3330, 6670, 6670, -6670, -6670, 10000, 10000, -10000, -10000, 7000, -7000]
    short_call = [-460, 610, -2640, -1730, 1270, 2340, -5210, -4540, 2540, 3430, -8060, -7640, 3380, 3990, -3130, 1500]
    arrays = RiskArrays(
        instrument_asset=np.zeros(2, dtype=np.int32),
        instrument_pnl=np.array([future, short_call], dtype=np.float64),
        asset_pnl=np.zeros((1, 16)),
        linear_weight=np.zeros(2),
        unit_greeks=np.zeros((2, 3)),
        value=np.zeros(2),
        group_offsets=np.array([0, 16], dtype=np.int64),
        n_assets=1,
    )
    book = (np.array([0, 2], dtype=np.int64), np.array([0, 1], dtype=np.int32), np.array([1.0, 1.0]))
    margin, _ = margins(*book, arrays, 0.99, "worst")
    assert margin[0] == 6620.0
    combined = np.array(future) + np.array(short_call)
    assert int(np.argmin(combined)) + 1 == 13


def test_reused_output_buffers_are_overwritten() -> None:
    rng = np.random.default_rng(11)
    arrays = random_arrays(rng, 30, 3, 64, 1)
    offsets, inst, qty = random_book(rng, 200, 30)
    fresh = margins(offsets, inst, qty, arrays, 0.99, "es")
    dirty = (np.full(200, 7.0), np.full((200, 3, 3), -5.0))
    reused = margins(offsets, inst, qty, arrays, 0.99, "es", out=dirty)
    assert reused[0] is dirty[0]
    np.testing.assert_array_equal(reused[0], fresh[0])
    np.testing.assert_array_equal(reused[1], fresh[1])
    with pytest.raises(ValueError, match="output buffers"):
        margins(offsets, inst, qty, arrays, 0.99, "es", out=(np.empty(3), np.empty((3, 3, 3))))


def test_parallel_kernels_and_their_serial_twins_agree_bit_for_bit() -> None:
    """A book of 6,000 accounts runs every kernel of margin_book in parallel; its two halves (3,000 each, below
    `SERIAL_BELOW`) run the serial twins: every account's figures are the same, bit for bit."""
    from solvent._numba import SERIAL_BELOW
    from solvent.demo.run import demo_history, demo_market, demo_params
    from solvent.demo.venue import synthetic_book, venue_instruments
    from solvent.engine.margin import margin_book
    from solvent.market.state import build_market_state

    params = demo_params()
    history = demo_history(3)
    market = demo_market(history, params, 3)
    prices = {name: quote.price for name, quote in market.assets.items()}
    instruments = venue_instruments(market.time, prices)
    book = synthetic_book(instruments, prices, 6_000, 3)
    assert book.n_accounts >= SERIAL_BELOW > book.n_accounts // 2
    state = build_market_state(list(instruments), market, params)
    whole = margin_book(book, state, params, history)
    halves = [margin_book(_rows(book, lo, hi), state, params, history) for lo, hi in ((0, 3_000), (3_000, 6_000))]
    for name in ("im", "mm", "equity", "breach_probability"):
        np.testing.assert_array_equal(getattr(whole, name), np.concatenate([getattr(h, name) for h in halves]))
    np.testing.assert_array_equal(whole.greeks, np.concatenate([h.greeks for h in halves]))


def _rows(book: Book, lo: int, hi: int) -> Book:
    """Accounts lo..hi of `book` as a book of their own."""
    import dataclasses

    p0, p1 = int(book.pos_offsets[lo]), int(book.pos_offsets[hi])
    c0, c1 = int(book.col_offsets[lo]), int(book.col_offsets[hi])
    return dataclasses.replace(
        book,
        account_ids=book.account_ids[lo:hi],
        pos_offsets=book.pos_offsets[lo : hi + 1] - p0,
        pos_instrument=book.pos_instrument[p0:p1],
        pos_quantity=book.pos_quantity[p0:p1],
        pos_entry=book.pos_entry[p0:p1],
        pos_venue=book.pos_venue[p0:p1],
        col_offsets=book.col_offsets[lo : hi + 1] - c0,
        col_asset=book.col_asset[c0:c1],
        col_amount=book.col_amount[c0:c1],
        risk_tier=book.risk_tier[lo:hi],
        mode=book.mode[lo:hi],
        parent=book.parent[lo:hi],
    )
