"""The fused numba kernel against its numpy twin and against brute-force risk measures."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from solvent.engine.book import Book
from solvent.engine.kernel import margins, margins_numpy, scenario_pnl_numpy
from solvent.engine.measures import risk_measure_numpy
from solvent.engine.riskarrays import RiskArrays


def random_arrays(rng: np.random.Generator, n_inst: int, n_assets: int, n_scen: int, groups: int) -> RiskArrays:
    asset = rng.integers(0, n_assets, n_inst).astype(np.int32)
    linear = rng.random(n_inst) < 0.5
    weight = np.where(linear, rng.uniform(0.5, 2.0, n_inst), 0.0)
    sizes = np.full(groups, n_scen // groups)
    sizes[-1] += n_scen - sizes.sum()
    return RiskArrays(
        instrument_asset=asset,
        pnl_rows=rng.normal(0, 100, (n_inst, n_scen)),
        asset_pnl=rng.normal(0, 50, (n_assets, n_scen)),
        linear_weight=weight,
        unit_greeks=rng.normal(0, 1, (n_inst, 3)),
        value=np.zeros(n_inst),
        group_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        n_assets=n_assets,
    )


def compacted(arrays: RiskArrays, dense: np.ndarray, **changes: object) -> RiskArrays:
    """`arrays` with `changes` (such as a group_asset), holding the (I, S) P&L `dense` in its compact rows
    (`RiskArrays.scenarios_by_asset`); dense must be 0 outside each instrument's columns."""
    from dataclasses import replace

    laid_out = replace(arrays, pnl_rows=dense, **changes)  # type: ignore[arg-type]
    by_asset = laid_out.scenarios_by_asset
    rows = np.zeros((dense.shape[0], max(columns.size for columns in by_asset)))
    for i, a in enumerate(arrays.instrument_asset.tolist()):
        rows[i, : by_asset[a].size] = dense[i, by_asset[a]]
    return replace(laid_out, pnl_rows=rows)


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
        pnl_rows=-shuffled,
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
                pnl_rows=-losses[np.newaxis, :],
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
        pnl_rows=np.array([future, short_call], dtype=np.float64),
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


# ------------------------------------------------------------------ per-asset scenario groups (issue 12, kernel)


def _many_asset_venue(n_assets: int = 7) -> tuple[list, object]:
    """Per asset: spot, perpetual, a future and 2 expiries x 3 strikes x call/put; USDC as an untraded column."""
    from datetime import UTC, datetime, timedelta

    from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot

    now = datetime(2026, 11, 25, tzinfo=UTC)
    instruments: list[Instrument] = []
    assets = {}
    for a in range(n_assets):
        name = f"A{a}"
        price = 10.0 ** (1 + a % 4)
        assets[name] = AssetQuote(price=price, vol=0.4 + 0.1 * (a % 5))
        instruments += [
            Instrument(id=f"{name}-SPOT", kind="spot", underlying=name),
            Instrument(id=f"{name}-PERP", kind="perp", underlying=name),
            Instrument(id=f"{name}-F", kind="future", underlying=name, expiry=now + timedelta(days=30)),
        ]
        for days in (7, 60):
            for k in (0.8, 1.0, 1.2):
                for kind in ("call", "put"):
                    instruments.append(
                        Instrument(
                            id=f"{name}-{days}-{k}-{kind}",
                            kind="option",
                            underlying=name,
                            expiry=now + timedelta(days=days),
                            strike=price * k,
                            option_type=kind,
                        )  # type: ignore[arg-type]
                    )
    assets["USDC"] = AssetQuote(price=1.0, vol=0.0)
    return instruments, MarketSnapshot(schema="solvent.market/1", time=now, assets=assets)


def _mixed_book(rng: np.random.Generator, arrays: RiskArrays, n_acc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accounts of every shape the kernel tells apart: flat; linear on one asset, on several; one option on each of
    several assets (alone in their groups); several options on one asset; options and linear on the same asset;
    options with linear on other assets; and random mixes."""
    linear = np.flatnonzero(arrays.linear_weight != 0.0)
    option = np.flatnonzero(arrays.linear_weight == 0.0)
    asset = arrays.instrument_asset
    traded = np.unique(asset)
    offsets, inst, qty = [0], [], []
    for k in range(n_acc):
        shape = k % 8
        if shape == 0:
            held = np.zeros(0, dtype=np.int64)
        elif shape == 1:
            held = rng.choice(linear[asset[linear] == rng.choice(traded)], rng.integers(1, 3))
        elif shape == 2:
            held = rng.choice(linear, rng.integers(2, 5))
        elif shape == 3:  # one option on each of several assets
            held = np.array([rng.choice(option[asset[option] == a]) for a in rng.choice(traded, 3, replace=False)])
        elif shape == 4:  # several options on one asset
            held = rng.choice(option[asset[option] == rng.choice(traded)], rng.integers(2, 5))
        elif shape == 5:  # options and linear on the same asset
            a = rng.choice(traded)
            held = np.concatenate(
                [rng.choice(option[asset[option] == a], 2), rng.choice(linear[asset[linear] == a], 1)]
            )
        elif shape == 6:  # an option with linear positions on other assets
            a, b, c = rng.choice(traded, 3, replace=False)
            held = np.array(
                [
                    rng.choice(option[asset[option] == a]),
                    rng.choice(linear[asset[linear] == b]),
                    rng.choice(linear[asset[linear] == c]),
                ]
            )
        else:
            held = rng.integers(0, asset.size, rng.integers(1, 10))
        inst.extend(held.tolist())
        qty.extend(rng.normal(0.0, 3.0, held.size).tolist())
        offsets.append(len(inst))
    return np.array(offsets, dtype=np.int64), np.array(inst, dtype=np.int32), np.array(qty)


@pytest.mark.parametrize(
    "method,stress,depeg",
    [
        ("grid", 0.25, False),
        ("grid", 0.25, True),
        ("mc", 0.25, False),
        ("mc", 0.25, True),
        ("mc", 0.0, False),
        ("deribit", 0.25, False),
    ],
)
@pytest.mark.parametrize("measure", ["es", "var", "worst"])
def test_kernel_skips_the_groups_of_assets_not_held_and_agrees_with_the_twin(
    method: str, stress: float, depeg: bool, measure: str
) -> None:
    """issue 12 (kernel cost of the per-asset groups): on scenario sets with one group per traded asset (the SPAN grid,
    Deribit's, the Monte Carlo's correlation stress groups, with and without the de-peg group), the fused kernel,
    which builds and reduces an account's P&L over the joint groups and the own groups of the assets it holds
    options on only (unit measures for one option or a net delta alone in its group, 0 for an asset not held),
    gives the numpy twin's figures (which reduces every group of the dense P&L), every account shape alike, with
    and without integrated-collateral deltas (on traded assets and the untraded USDC column)."""
    from solvent.engine.riskarrays import scenario_risk_arrays
    from solvent.engine.scenario_plan import group_plan
    from solvent.market.state import build_market_state
    from solvent.params import CollateralParams, MarginParams, McParams, ScenarioParams

    instruments, market = _many_asset_venue()
    params = MarginParams(
        scenarios=ScenarioParams(method=method, mc=McParams(n_scenarios=128, stress_weight=stress)),  # type: ignore[arg-type]
        collateral=CollateralParams(mode="integrated", depeg_scenario=depeg),
    )
    state = build_market_state(instruments, market, params)
    _, arrays = scenario_risk_arrays(state, params)
    joint, own = group_plan(arrays)
    n_groups = arrays.group_offsets.size - 1
    traded = np.unique(arrays.instrument_asset)
    if method == "mc" and stress == 0.0:
        assert joint.tolist() == list(range(n_groups)) and np.all(own == -1)
    else:
        assert np.all(own[traded] >= 0) and n_groups == traded.size + (method == "mc") + depeg
        assert sorted(joint.tolist() + own[traded].tolist()) == list(range(n_groups))
    rng = np.random.default_rng(len(method) + int(depeg) + int(10 * stress))
    book = _mixed_book(rng, arrays, 400)
    fast, fast_greeks = margins(*book, arrays, 0.99, measure)
    slow, slow_greeks = margins_numpy(*book, arrays, 0.99, measure, chunk=97)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(fast_greeks, slow_greeks, rtol=1e-12, atol=1e-10)
    assert np.count_nonzero(fast) > 300 and np.all(fast[::8] == 0.0)
    extra = rng.normal(0.0, 2.0, (400, arrays.n_assets)) * (rng.random((400, arrays.n_assets)) < 0.3)
    fast, _ = margins(*book, arrays, 0.99, measure, extra_delta=extra)
    slow, _ = margins_numpy(*book, arrays, 0.99, measure, chunk=97, extra_delta=extra)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-7)
    # An account alone (a small book: options' rows read in place) and within the book (a compact copy): the same
    # figure to the bit.
    offsets, inst, qty = book
    for k in range(0, 400, 37):
        alone, _ = margins(
            np.array([0, offsets[k + 1] - offsets[k]]),
            inst[offsets[k] : offsets[k + 1]],
            qty[offsets[k] : offsets[k + 1]],
            arrays,
            0.99,
            measure,
            extra_delta=extra[k : k + 1],
        )
        assert alone[0] == fast[k]


def test_group_plan_falls_back_to_scanning_a_group_it_cannot_prove_single_asset() -> None:
    """A group named for one asset in which another asset's risk array moves, or an asset named by two groups, is
    scanned as a joint group (the figures then stay the twin's); random risk arrays masked as per-asset groups."""
    from dataclasses import replace

    from solvent.engine.scenario_plan import group_plan
    from solvent.scenarios.base import ALL_ASSETS

    rng = np.random.default_rng(5)
    n_assets, per = 4, 40
    owner = np.array([ALL_ASSETS, 0, 1, 2, 3, -1], dtype=np.int64)
    arrays = random_arrays(rng, 60, n_assets, per * owner.size, owner.size)
    group = np.repeat(np.arange(owner.size), per)
    g_owner = owner[group]
    inst_in = (g_owner[np.newaxis, :] == arrays.instrument_asset[:, np.newaxis].astype(np.int64)) | (
        g_owner == ALL_ASSETS
    )
    asset_in = (g_owner[np.newaxis, :] == np.arange(n_assets)[:, np.newaxis]) | (g_owner == ALL_ASSETS)
    asset_in[3] |= g_owner == -1  # asset 3 moves in the "de-peg" group, as a stablecoin column would
    dense = arrays.instrument_pnl * inst_in
    arrays = compacted(arrays, dense, asset_pnl=arrays.asset_pnl * asset_in, group_asset=owner)
    np.testing.assert_array_equal(arrays.instrument_pnl, dense)
    joint, own = group_plan(arrays)
    assert joint.tolist() == [0, 5] and own.tolist() == [1, 2, 3, 4]
    broken = arrays.asset_pnl.copy()
    broken[0, 2 * per : 3 * per] = 1.0  # asset 0 moves in asset 1's group
    twice = owner.copy()
    twice[4] = 2  # asset 2 names two groups
    for case in (replace(arrays, asset_pnl=broken), compacted(arrays, dense, group_asset=twice)):
        joint, own = group_plan(case)
        assert 2 in joint.tolist() or 3 in joint.tolist()
        offsets, inst, qty = random_book(rng, 300, 60)
        extra = rng.normal(0.0, 1.0, (300, n_assets))
        for measure in ("es", "var", "worst"):
            fast, _ = margins(offsets, inst, qty, case, 0.99, measure, extra_delta=extra)
            slow, _ = margins_numpy(offsets, inst, qty, case, 0.99, measure, extra_delta=extra)
            np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-7)
    offsets, inst, qty = random_book(rng, 300, 60)
    for measure in ("es", "var", "worst"):
        fast, _ = margins(offsets, inst, qty, arrays, 0.99, measure)
        slow, _ = margins_numpy(offsets, inst, qty, arrays, 0.99, measure)
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-7)


def test_single_group_fhs_is_scanned_whole_and_agrees_with_the_twin() -> None:
    """Filtered historical simulation (one joint group, no group_asset): every account's P&L is built and reduced
    over the whole set, as before the per-asset skip; the twin agrees on the demo venue."""
    from solvent.demo.run import demo_history, demo_market, demo_params
    from solvent.demo.venue import synthetic_book, venue_instruments
    from solvent.engine.riskarrays import scenario_risk_arrays
    from solvent.engine.scenario_plan import group_plan
    from solvent.market.state import build_market_state

    params = demo_params()
    history = demo_history(3)
    market = demo_market(history, params, 3)
    prices = {name: quote.price for name, quote in market.assets.items()}
    instruments = venue_instruments(market.time, prices)
    book = synthetic_book(instruments, prices, 500, 3)
    state = build_market_state(list(instruments), market, params)
    _, arrays = scenario_risk_arrays(state, params, history)
    joint, own = group_plan(arrays)
    assert arrays.group_asset is None and joint.tolist() == [0] and np.all(own == -1)
    csr = (book.pos_offsets, book.pos_instrument, book.pos_quantity)
    fast, _ = margins(*csr, arrays, params.confidence, params.measure)
    slow, _ = margins_numpy(*csr, arrays, params.confidence, params.measure)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-7)
    assert np.count_nonzero(fast) > 400


@pytest.mark.parametrize("measure", ["es", "var", "worst"])
def test_mirrored_stress_groups_are_read_from_the_joint_rows(measure: str) -> None:
    """issue 12 (the bench): the Monte Carlo's per-asset stress groups are its joint draws with one asset moving, so
    `mirrored_groups` finds each one's joint group and the weight ratio w / (1 - w); the kernel then builds them from
    the joint rows (scaled) and gives the figures of reading their own rows (mirrors switched off) to rounding. A
    group whose moves differ from the joint draws' by one scenario is not a mirror."""
    from dataclasses import replace

    from solvent.engine.riskarrays import refresh_risk_arrays, scenario_risk_arrays
    from solvent.market.state import build_market_state
    from solvent.params import MarginParams, McParams, ScenarioParams
    from solvent.scenarios.base import mirrored_groups

    instruments, market = _many_asset_venue()
    w = 0.3
    params = MarginParams(scenarios=ScenarioParams(method="mc", mc=McParams(n_scenarios=128, stress_weight=w)))
    state = build_market_state(instruments, market, params)
    scenarios, arrays = scenario_risk_arrays(state, params)
    n_groups = arrays.group_offsets.size - 1
    assert arrays.group_mirror is not None and arrays.group_scale is not None
    assert arrays.group_mirror.tolist() == [-1] + [0] * (n_groups - 1)
    np.testing.assert_allclose(arrays.group_scale[1:], w / (1 - w), rtol=1e-15)
    # The options' P&L in a mirrored group is copied from the joint draws': the figures of revaluing it, to the bit.
    revalued = replace(arrays, pnl_rows=np.zeros_like(arrays.pnl_rows), group_mirror=None)
    floor = params.volatility.time_floor_days / params.days_per_year
    refresh_risk_arrays(revalued, state, scenarios, floor, np.arange(arrays.n_assets), params.volatility.vol_floor)
    np.testing.assert_array_equal(revalued.pnl_rows, arrays.pnl_rows)
    book = _mixed_book(np.random.default_rng(7), arrays, 400)
    mirrored, _ = margins(*book, arrays, 0.99, measure)
    plain, _ = margins(*book, replace(arrays, group_mirror=None, group_scale=None), 0.99, measure)
    np.testing.assert_allclose(mirrored, plain, rtol=1e-12, atol=1e-9)
    assert np.count_nonzero(mirrored) > 300

    moved = scenarios.price_move.copy()
    second = int(arrays.group_offsets[2])  # the second stress group's first scenario
    moved[second, arrays.group_asset[2]] *= 1.5  # type: ignore[index]
    mirror, _ = mirrored_groups(replace(scenarios, price_move=moved))
    assert mirror[2] == -1 and mirror[1] == 0 and mirror[3] == 0


@pytest.mark.parametrize(
    "n,lanes", [(64, 32), (65, 32), (95, 32), (256, 32), (1000, 32), (4096, 32), (256, 128), (4096, 128)]
)
@pytest.mark.parametrize("k", [1, 3, 4, 5, 32])  # 4: the last kept in registers
@pytest.mark.parametrize("layout", ["normal", "ties", "one_lane", "ascending"])
def testtop_losses_by_lanes_are_the_k_largest_exactly(n: int, lanes: int, k: int, layout: str) -> None:
    """`top_losses` (lane maxima, then only the lanes that reach the k-th of them) returns exactly the k largest
    losses, descending, wherever they lie: ties, every large loss in one lane, a sorted run, an offset start."""
    from solvent.engine.measures import top_losses

    rng = np.random.default_rng(n * 100 + k)
    start = 5
    pnl = np.full(start + n + 3, 1e9)  # values outside [start, start + n) must not be read
    body = {
        "normal": rng.normal(0, 100, n),
        "ties": rng.integers(-3, 3, n).astype(np.float64),
        "one_lane": np.where(np.arange(n) % lanes == 7, -1000.0 - np.arange(n), rng.normal(0, 1, n)),
        "ascending": np.arange(n, dtype=np.float64),
    }[layout]
    pnl[start : start + n] = body
    top = np.full(n + 1, np.nan)
    top_losses(pnl, start, start + n, k, lanes, top)
    np.testing.assert_array_equal(top[:k], np.sort(-body)[::-1][:k])


@pytest.mark.parametrize("measure", ["es", "var", "worst"])
@pytest.mark.parametrize("n,confidence", [(63, 0.99), (64, 0.99), (256, 0.99), (4096, 0.99), (4096, 0.975)])
def testreduce_group_agrees_with_the_full_sort(measure: str, n: int, confidence: float) -> None:
    """The measure of one group, by whichever top-k path its size and tail take (lanes of 32 or more, or the block
    scan below 2 x lanes scenarios), is the full sort's to the bit (the tail summed largest first, as the kernel
    adds it)."""
    from solvent.engine.measures import MEASURE_CODES, reduce_group, tail_mass

    rng = np.random.default_rng(n)
    pnl = rng.standard_t(4, n) * 100
    top = np.empty(n + 1)
    got = reduce_group(pnl, 0, n, confidence, MEASURE_CODES[measure], top)
    ordered = np.sort(-pnl)[::-1].tolist()
    m = tail_mass(n, confidence)
    whole = math.floor(m)
    tail = 0.0
    for loss in ordered[:whole]:
        tail += loss
    expected = {
        "worst": ordered[0],
        "var": ordered[whole],
        "es": (tail + (m - whole) * ordered[whole]) / m if m >= 1.0 else ordered[0],
    }[measure]
    assert got == expected


@pytest.mark.parametrize("n_accounts", [3, 400])
def test_option_rows_in_place_or_packed_give_the_same_figures_to_the_bit(
    n_accounts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel reads its options' rows from a packed copy of the needed ones (rows narrower than a page) or from
    pnl_rows in place (wider): the same margins and Greeks to the bit either way, for a small book (the options it
    holds only) and a large one, with the Monte Carlo's mirrored stress groups."""
    from solvent.engine import scenario_plan
    from solvent.engine.riskarrays import scenario_risk_arrays
    from solvent.market.state import build_market_state
    from solvent.params import MarginParams, McParams, ScenarioParams

    instruments, market = _many_asset_venue()
    params = MarginParams(scenarios=ScenarioParams(method="mc", mc=McParams(n_scenarios=128, stress_weight=0.3)))
    _, arrays = scenario_risk_arrays(build_market_state(instruments, market, params), params)
    book = _mixed_book(np.random.default_rng(11), arrays, n_accounts)
    assert 128 < scenario_plan.PAGE_COLUMNS
    packed = margins(*book, arrays, 0.99, "es")
    monkeypatch.setattr(scenario_plan, "PAGE_COLUMNS", 1)
    in_place = margins(*book, arrays, 0.99, "es")
    np.testing.assert_array_equal(packed[0], in_place[0])
    np.testing.assert_array_equal(packed[1], in_place[1])
    assert np.count_nonzero(packed[0]) >= n_accounts // 2


@pytest.mark.parametrize("measure", ["es", "var", "worst"])
def test_mirrored_groups_sum_the_joint_pnl_asset_by_asset_within_1e12_of_the_twin(measure: str) -> None:
    """issue 12 (the bench): with mirrored stress groups the kernel builds each held asset's vector once (its own
    group's P&L) and sums the joint P&L from them, and an account on one asset takes the joint measure from its own
    group's (the same vector, exactly). Only the order of the joint sum differs from the twin's (a sparse product),
    so the figures agree within 1e-12 relative; an account on one asset pays (1 + w / (1 - w)) x its joint measure."""
    from solvent.engine.riskarrays import scenario_risk_arrays
    from solvent.market.state import build_market_state
    from solvent.params import MarginParams, McParams, ScenarioParams

    instruments, market = _many_asset_venue()
    w = 0.25
    params = MarginParams(scenarios=ScenarioParams(method="mc", mc=McParams(n_scenarios=128, stress_weight=w)))
    state = build_market_state(instruments, market, params)
    _, arrays = scenario_risk_arrays(state, params)
    book = _mixed_book(np.random.default_rng(11), arrays, 800)
    fast, _ = margins(*book, arrays, 0.99, measure)
    slow, _ = margins_numpy(*book, arrays, 0.99, measure)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-9)
    offsets, inst, _ = book
    asset = arrays.instrument_asset[inst]
    one = np.array([hi - lo > 1 and np.unique(asset[lo:hi]).size == 1 for lo, hi in itertools.pairwise(offsets)])
    assert np.count_nonzero(one) > 100
    pnl = scenario_pnl_numpy(*book, arrays)[one]
    joint = slice(int(arrays.group_offsets[0]), int(arrays.group_offsets[1]))
    alone = np.maximum(risk_measure_numpy(-pnl[:, joint], 0.99, measure), 0.0) * (1.0 + w / (1.0 - w))
    np.testing.assert_allclose(fast[one], alone, rtol=1e-12, atol=1e-9)
