"""The stressed-correlation Monte Carlo: determinism, target correlation, marginal widths."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs

from solvent.errors import InputError
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams, McParams
from solvent.scenarios import generate_scenarios
from solvent.scenarios.base import ScenarioSet
from solvent.scenarios.mc import (
    DEFAULT_CORRELATION,
    correlation_factor,
    monte_carlo,
    nearest_psd_correlation,
    target_correlation,
    target_factor,
)

NOW = datetime(2026, 1, 2, tzinfo=UTC)
VOLS = {"BTC": 0.6, "ETH": 0.8, "SOL": 1.1}
H = 2.0 / 365.0


def mc_params(**mc: object) -> MarginParams:
    params = MarginParams()
    scenarios = structs.replace(params.scenarios, method="mc", mc=structs.replace(McParams(), **mc))
    return structs.replace(params, scenarios=scenarios)


def market(params: MarginParams, vols: dict[str, float] = VOLS) -> MarketState:
    instruments = [Instrument(id=f"{a}-PERP", kind="perp", underlying=a) for a in vols]
    quotes = {a: AssetQuote(price=100.0, vol=v) for a, v in vols.items()}
    quotes["USDC"] = AssetQuote(price=1.0, vol=0.02)
    return build_market_state(instruments, MarketSnapshot(schema="solvent.market/1", time=NOW, assets=quotes), params)


def traded_log_moves(state: MarketState, moves: np.ndarray) -> np.ndarray:
    return np.log1p(moves[:, [state.asset_index[a] for a in VOLS]])


def joint(scenarios: ScenarioSet) -> ScenarioSet:
    """The joint draws (group 0): every asset moving."""
    rows = scenarios.group == 0
    return ScenarioSet(
        name=scenarios.name,
        price_move=scenarios.price_move[rows],
        vol_move=scenarios.vol_move[rows],
        pnl_weight=scenarios.pnl_weight[rows],
        group=scenarios.group[rows],
        horizon_years=scenarios.horizon_years,
        labels=tuple(label for label, keep in zip(scenarios.labels, rows.tolist(), strict=True) if keep),
    )


def test_same_params_bit_identical() -> None:
    params = mc_params()
    state = market(params)
    first, second = monte_carlo(state, params), generate_scenarios(state, params)
    assert np.array_equal(first.price_move, second.price_move)
    assert np.array_equal(first.vol_move, second.vol_move)
    assert first.labels == second.labels and first.labels[0] == "mc 0001"


def test_seed_changes_the_draws() -> None:
    state = market(mc_params())
    a, b = monte_carlo(state, mc_params(seed=1)), monte_carlo(state, mc_params(seed=2))
    assert not np.array_equal(a.price_move, b.price_move)


def test_shape_group_and_untraded_columns() -> None:
    params = mc_params(n_scenarios=64, stress_weight=0.0)
    state = market(params)
    scenarios = monte_carlo(state, params)
    assert scenarios.price_move.shape == (64, len(state.assets))
    assert scenarios.group.tolist() == [0] * 64 and scenarios.pnl_weight.tolist() == [1.0] * 64
    assert scenarios.group_asset is None
    assert scenarios.horizon_years == pytest.approx(H)
    for name in ("USD", "USDC"):
        assert not scenarios.price_move[:, state.asset_index[name]].any()
        assert not scenarios.vol_move[:, state.asset_index[name]].any()


@pytest.mark.parametrize(
    ("distribution", "dof", "stress_weight", "tolerance"),
    [("normal", 4.0, 0.25, 0.01), ("normal", 4.0, 0.0, 0.01), ("t", 8.0, 0.25, 0.02), ("t", 8.0, 0.6, 0.02)],
)
def test_sample_correlation_of_the_joint_draws_matches_the_target(
    distribution: str, dof: float, stress_weight: float, tolerance: float
) -> None:
    params = mc_params(n_scenarios=200_000, distribution=distribution, dof=dof, stress_weight=stress_weight)
    state = market(params)
    logs = traded_log_moves(state, joint(monte_carlo(state, params)).price_move)
    expected = DEFAULT_CORRELATION  # the stress is in the groups, not in the joint draws' correlation
    sample = np.corrcoef(logs, rowvar=False)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(sample, expected, atol=tolerance)


@pytest.mark.parametrize(("distribution", "dof"), [("normal", 4.0), ("t", 10.0), ("t", 5.0)])
def test_marginal_std_is_sigma_sqrt_h(distribution: str, dof: float) -> None:
    params = mc_params(n_scenarios=200_000, distribution=distribution, dof=dof)
    state = market(params)
    logs = traded_log_moves(state, joint(monte_carlo(state, params)).price_move)
    np.testing.assert_allclose(logs.std(axis=0), np.array(list(VOLS.values())) * math.sqrt(H), rtol=0.03)


def test_student_t_has_fatter_tails_than_normal() -> None:
    state = market(mc_params())
    kurtosis = {}
    for dist in ("normal", "t"):
        drawn = joint(monte_carlo(state, mc_params(n_scenarios=100_000, distribution=dist)))
        logs = traded_log_moves(state, drawn.price_move)
        z = logs[:, 0] / logs[:, 0].std()
        kurtosis[dist] = float(np.mean(z**4))
    assert kurtosis["normal"] == pytest.approx(3.0, abs=0.1)
    assert kurtosis["t"] > 5.0


def test_vol_moves_independent_lognormal() -> None:
    params = mc_params(n_scenarios=200_000, vol_of_vol=0.8)
    state = market(params)
    scenarios = joint(monte_carlo(state, params))
    log_vol = traded_log_moves(state, scenarios.vol_move)
    np.testing.assert_allclose(log_vol.std(axis=0), 0.8 * math.sqrt(H), rtol=0.01)
    both = np.column_stack([log_vol, traded_log_moves(state, scenarios.price_move)])
    off_diagonal = np.corrcoef(both, rowvar=False)[:3]
    np.testing.assert_allclose(off_diagonal[:, 3:], 0.0, atol=0.01)
    assert np.all(scenarios.vol_move > -1.0)


def test_stress_groups_hold_the_same_draws_one_asset_at_a_time() -> None:
    """issue 12 item 7: group 0 the joint draws at weight 1 - w; group 1 + k the same draws with the k-th traded
    asset alone moving, at weight w."""
    params = mc_params(n_scenarios=64, stress_weight=0.3)
    state = market(params)
    scenarios = monte_carlo(state, params)
    drawn = joint(scenarios)
    assert scenarios.n_scenarios == 64 * 4 and scenarios.group_offsets.tolist() == [0, 64, 128, 192, 256]
    assert scenarios.pnl_weight.tolist() == [0.7] * 64 + [0.3] * 192
    columns = [state.asset_index[a] for a in VOLS]
    assert scenarios.group_asset is not None and scenarios.group_asset.tolist() == [-2, *sorted(columns)]
    for k, a in enumerate(sorted(columns)):
        rows = slice(64 * (k + 1), 64 * (k + 2))
        assert np.array_equal(scenarios.price_move[rows, a], drawn.price_move[:, a])
        assert np.array_equal(scenarios.vol_move[rows, a], drawn.vol_move[:, a])
        others = [c for c in range(len(state.assets)) if c != a]
        assert not scenarios.price_move[rows][:, others].any() and not scenarios.vol_move[rows][:, others].any()


def test_stress_groups_are_stored_once_and_read_as_the_dense_set_reads() -> None:
    """issue 14 item 4: the stress groups are repeats of the joint draws (`ScenarioSet.repeats`), not stored; every
    way of reading them (the dense views, one asset's column, some scenarios' rows) and the transforms (oracle
    widening, the de-peg group) give what the same set held dense gives, to the bit."""
    from dataclasses import replace

    from solvent.scenarios.base import widen_price_moves, with_depeg_scenario

    params = mc_params(n_scenarios=64, stress_weight=0.3)
    state = market(params)
    implicit = monte_carlo(state, params)
    n_assets = len(state.assets)
    assert implicit.price_rows.shape == implicit.vol_rows.shape == (64, n_assets)
    assert implicit.repeats is not None and implicit.repeats.tolist() == [-1, 0, 0, 0]
    dense = replace(implicit, price_move=implicit.price_move.copy())
    assert dense.repeats is None and dense.price_rows.shape == (256, n_assets)
    assert np.array_equal(dense.vol_move, implicit.vol_move)
    picked = np.random.default_rng(3).choice(256, 40, replace=False)
    width = np.linspace(0.0, 0.02, n_assets)
    usdc = np.array([state.asset_index["USDC"]], dtype=np.int64)
    pairs = [
        (implicit, dense),
        (widen_price_moves(implicit, width), widen_price_moves(dense, width)),
        (with_depeg_scenario(implicit, usdc, 0.1), with_depeg_scenario(dense, usdc, 0.1)),
    ]
    for held, full in pairs:
        assert held.repeats is not None and held.n_scenarios == full.n_scenarios
        assert np.array_equal(held.price_move, full.price_move) and np.array_equal(held.vol_move, full.vol_move)
        assert np.array_equal(held.price_move_at(picked), full.price_move_at(picked))
        for a in range(n_assets):
            assert np.array_equal(held.price_column(a), full.price_move[:, a])
            assert np.array_equal(held.vol_column(a, picked), full.vol_move[picked, a])
    with pytest.raises(ValueError, match="repeat"):
        replace(implicit, repeats=np.array([-1, 0, 0, 5]))
    with pytest.raises(ValueError, match="stored"):
        replace(implicit, price_rows=implicit.price_rows[:32], vol_rows=implicit.vol_rows[:32])


def correlated_history(rho: float, n: int, seed: int) -> PriceHistory:
    rng = np.random.default_rng(seed)
    c = np.array([[1.0, rho, rho], [rho, 1.0, rho], [rho, rho, 1.0]])
    returns = 0.03 * rng.standard_normal((n, 3)) @ np.linalg.cholesky(c).T
    closes = 100.0 * np.exp(np.vstack([np.zeros(3), np.cumsum(returns, axis=0)]))
    timestamps = (np.datetime64("2010-01-01") + np.arange(n + 1) * np.timedelta64(1, "D")).astype("datetime64[s]")
    return PriceHistory(timestamps, ("BTC", "ETH", "SOL"), closes)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
def test_history_sets_the_correlation(rho: float) -> None:
    params = mc_params()
    params = structs.replace(
        params,
        scenarios=structs.replace(params.scenarios, fhs=structs.replace(params.scenarios.fhs, lookback_days=6000)),
    )
    target = target_correlation(market(params), params, correlated_history(rho, 6000, 3))
    np.testing.assert_allclose(target[np.triu_indices(3, 1)], rho, atol=0.04)
    assert np.diag(target).tolist() == [1.0, 1.0, 1.0]


def test_history_missing_an_asset_is_an_input_error() -> None:
    history = correlated_history(0.5, 100, 1).select(("BTC", "ETH"))
    with pytest.raises(InputError, match="'SOL'"):
        monte_carlo(market(mc_params()), mc_params(), history)


def test_nearest_psd_repairs_an_indefinite_matrix() -> None:
    c = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(c)[0] < 0.0
    repaired = nearest_psd_correlation(c)
    assert np.linalg.eigvalsh(repaired)[0] > -1e-12
    np.testing.assert_allclose(np.diag(repaired), 1.0, rtol=1e-12)
    factor = correlation_factor(repaired)
    np.testing.assert_allclose(factor @ factor.T, repaired, atol=1e-10)


def test_psd_matrix_is_left_alone() -> None:
    c = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert np.array_equal(nearest_psd_correlation(c), c)


# ------------------------------------------------------------------------------ stress is adverse (item 12.7)

STRESS_INSTRUMENTS = [
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
    Instrument(
        id="BTC-C", kind="option", underlying="BTC", expiry=datetime(2026, 2, 1, tzinfo=UTC), strike=100.0,
        option_type="call",
    ),
    Instrument(
        id="ETH-P", kind="option", underlying="ETH", expiry=datetime(2026, 2, 1, tzinfo=UTC), strike=95.0,
        option_type="put",
    ),
]  # fmt: skip


def stress_im(quantities: dict[str, float], weights: list[float], n_scenarios: int = 256, seed: int = 7) -> list[float]:
    """market_risk of one account holding `quantities` under each stress weight (the default seed)."""
    from solvent.api import compute_margin
    from solvent.convert.inputs import portfolio_to_book
    from solvent.formats.schemas import Account, Portfolio, Position

    positions = [
        Position(instrument=i, quantity=q, entry_price=None if "-PERP" not in i else 100.0)
        for i, q in quantities.items()
        if q != 0.0
    ]
    accounts = [Account(id="a", positions=positions)]
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=STRESS_INSTRUMENTS, accounts=accounts))
    quotes = {"BTC": AssetQuote(price=100.0, vol=0.6), "ETH": AssetQuote(price=100.0, vol=0.8)}
    snapshot = MarketSnapshot(schema="solvent.market/1", time=NOW, assets=quotes)
    results = [
        compute_margin(book, snapshot, mc_params(stress_weight=w, n_scenarios=n_scenarios, seed=seed)) for w in weights
    ]
    return [float(result.terms["market_risk"][0]) for result in results]


def test_stress_raises_a_spreads_margin_to_the_undiversified_sum() -> None:
    """issue 12 item 7: long 1 BTC / short ETH of the same notional. Blending the correlation toward +1 lowered
    its margin (on main: 7,324 -> 6,361 at w = 0.25, 0 at w = 1). Now market risk is (1 - w) ES(joint) +
    w (ES(BTC alone) + ES(ETH alone)), SPAN's inter-commodity credit at rate 1 - w: checked against the two legs
    margined alone and the spread unstressed (w = 0), on the same draws."""
    weights = [0.0, 0.25, 0.5, 1.0]
    spread = stress_im({"BTC-PERP": 1.0, "ETH-PERP": -1.0}, weights)
    btc = stress_im({"BTC-PERP": 1.0}, [0.0])[0]
    eth = stress_im({"ETH-PERP": -1.0}, [0.0])[0]
    assert spread == sorted(spread) and spread[-1] > 2.0 * spread[0]
    for w, im in zip(weights, spread, strict=True):
        assert im == pytest.approx((1.0 - w) * spread[0] + w * (btc + eth), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-10.0, 10.0, allow_nan=False).map(lambda q: round(q, 3)), min_size=4, max_size=4),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_raising_the_stress_weight_never_lowers_a_two_asset_books_margin(
    quantities: list[float], a: float, b: float
) -> None:
    """issue 12 item 7 (property): for any book on two assets (perpetuals and options on each), raising
    `mc.stress_weight` never lowers market risk (ES is subadditive, so the undiversified sum the stress moves
    toward is never below the joint ES), up to rounding."""
    book = dict(zip([i.id for i in STRESS_INSTRUMENTS], quantities, strict=True))
    low, high = sorted((a, b))
    im_low, im_high = stress_im(book, [low, high], n_scenarios=64)
    assert im_high >= im_low * (1.0 - 1e-12) - 1e-9


def test_a_single_perps_es99_varies_at_most_two_percent_from_seed_to_seed() -> None:
    """issue 12 item 11: with 256 plain draws a long BTC perp's IM over 40 seeds had mean 15.0%, standard
    deviation 3.6 points (range 9.7-25.2%). The defaults (4,096 draws, stratified marginals) hold the seed-to-seed
    relative standard deviation of ES99 at most 2%, and its mean within 2% of the exact ES of the unit-variance
    t(4) log move (scipy: the t's expected shortfall by numerical integration, mapped through expm1)."""
    from scipy import integrate, stats

    n = McParams().n_scenarios
    figures = [stress_im({"BTC-PERP": 1.0}, [McParams().stress_weight], n, seed)[0] for seed in range(40)]
    spread = np.std(figures) / np.mean(figures)
    assert spread <= 0.02
    s, scale = 0.6 * math.sqrt(H), math.sqrt(0.5)  # the perp's notional is 100
    q = float(stats.t.ppf(0.01, 4.0))
    tail, _ = integrate.quad(lambda x: -math.expm1(s * scale * x) * stats.t.pdf(x, 4.0), -np.inf, q)
    assert np.mean(figures) == pytest.approx(100.0 * tail / 0.01, rel=0.02)


def test_explain_reports_the_monte_carlo_standard_error_beside_the_figure() -> None:
    """issue 12 item 11: `explain_margin` (the CLI's --explain, table and JSON) reports the Monte Carlo standard
    error of market risk. On plain i.i.d. draws it matches the seed-to-seed standard deviation measured over 40
    seeds (within the sampling error of a 40-seed standard deviation and of the asymptotic formula); on the
    default stratified draws it is an upper bound."""
    from solvent.api import explain_margin
    from solvent.convert.inputs import portfolio_to_book
    from solvent.formats.schemas import Account, Portfolio, Position

    accounts = [Account(id="a", positions=[Position(instrument="BTC-PERP", quantity=1.0, entry_price=100.0)])]
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=STRESS_INSTRUMENTS, accounts=accounts))
    quotes = {"BTC": AssetQuote(price=100.0, vol=0.6), "ETH": AssetQuote(price=100.0, vol=0.8)}
    snapshot = MarketSnapshot(schema="solvent.market/1", time=NOW, assets=quotes)
    for stratified in (False, True):
        figures, errors = [], []
        for seed in range(40):
            params = mc_params(seed=seed, stratified=stratified, stress_weight=0.0)
            explained = explain_margin(book, snapshot, "a", params)
            assert explained.standard_error is not None
            figures.append(explained.market_risk)
            errors.append(explained.standard_error)
            assert explained.to_document("t")["standard_error"] == explained.standard_error
        observed, reported = float(np.std(figures, ddof=1)), float(np.mean(errors))
        if stratified:
            assert reported > observed
        else:
            assert 0.6 < reported / observed < 1.6
    grid = explain_margin(book, snapshot, "a", MarginParams())
    assert grid.standard_error is None


def test_default_correlation_factor_is_computed_once_read_only_and_the_same() -> None:
    """Without a history the factor is memoised per asset count (a LAPACK call after a parallel kernel is slow on a
    busy machine): the same matrix to the bit as computing it afresh, shared between runs, and read-only."""
    params = mc_params()
    state = market(params)
    first = target_factor(state, params, None)
    assert target_factor(state, params, None) is first
    assert np.array_equal(first, correlation_factor(target_correlation(state, params, None)))
    assert not first.flags.writeable


def test_a_stream_state_keeps_the_stress_groups_as_repeats() -> None:
    """issue 14 item 4: a saved stream state holds the stored draws and the repeats, and reads back the same set."""
    from solvent.stream.state import _scenario_arrays, _scenarios

    params = mc_params(n_scenarios=32, stress_weight=0.25)
    scenarios = monte_carlo(market(params), params)
    saved = _scenario_arrays("s", scenarios)
    assert saved["s.price_move"].shape[0] == 32 and "s.repeats" in saved
    back = _scenarios("s", saved)
    assert back.repeats is not None and np.array_equal(back.repeats, scenarios.repeats)
    assert np.array_equal(back.price_move, scenarios.price_move) and np.array_equal(back.vol_move, scenarios.vol_move)
    assert back.labels == scenarios.labels and np.array_equal(back.group_asset, scenarios.group_asset)  # type: ignore[arg-type]
