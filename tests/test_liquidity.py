"""The liquidity add-on: book walk, square-root impact and vega close-out by hand, properties, bad depth input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import solvent
from solvent.cli import main
from solvent.factors.liquidity import sqrt_impact_cost, vega_cost, walk_cost
from solvent.formats.schemas import Depth
from solvent.market.depth import book_side, depth_curves, parametric_side
from solvent.params import LiquidityParams, MarginParams

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Two levels: 10 units at 0.1% from mid, 30 units cumulative at 0.3%.
TWO_LEVELS = [(0.001, 10.0), (0.003, 30.0)]


def cost(q: float, points: list[tuple[float, float]] = TWO_LEVELS, price: float = 100.0, stress: float = 1.0) -> float:
    return float(walk_cost(np.array([q]), book_side(points, bid=False), price, stress)[0])


# ------------------------------------------------------------------------------- the walk by hand


@pytest.mark.parametrize(
    ("q", "stress", "want"),
    [
        # inside the touch: 5 units at 0.1% of 100
        (5.0, 1.0, 5 * 0.001 * 100),
        # 10 at 0.1%, then 10 more along the line 0.1% -> 0.3% over 20 units: mean distance 0.15%
        (20.0, 1.0, (10 * 0.001 + 10 * 0.0015) * 100),
        # the whole curve: 10 at 0.1% + 20 at mean 0.2%
        (30.0, 1.0, (10 * 0.001 + 20 * 0.002) * 100),
        # 10 beyond the last point, the last slope (0.01% per unit) continued: mean distance 0.35%
        (40.0, 1.0, (10 * 0.001 + 20 * 0.002 + 10 * 0.0035) * 100),
        # stress 2: 10 units fill like 20 of the book, at half the size each -> half of cost(20) at stress 1
        (10.0, 2.0, (10 * 0.001 + 10 * 0.0015) * 100 / 2),
        (0.0, 3.0, 0.0),
    ],
)
def test_walk_matches_hand_computation(q: float, stress: float, want: float) -> None:
    assert cost(q, stress=stress) == pytest.approx(want, rel=1e-12)
    assert cost(-q, stress=stress) == pytest.approx(want, rel=1e-12)  # the walk takes |q|; the side picks the curve


def test_parametric_curve_knots() -> None:
    curve = parametric_side(0.0004, 100.0, 300.0, bid=False)
    np.testing.assert_array_equal(curve.size, [0.0, 100.0, 300.0])
    np.testing.assert_array_equal(curve.distance, [0.0002, 0.01, 0.02])
    # 100 units: mean distance (0.02% + 1%) / 2
    got = walk_cost(np.array([100.0]), curve, 50.0, 1.0)[0]
    assert got == pytest.approx(50.0 * 100 * (0.0002 + 0.01) / 2, rel=1e-12)


def test_bid_distance_is_capped_at_one() -> None:
    bid = book_side([(0.1, 1.0), (0.5, 2.0)], bid=True)  # slope 0.4 / unit: reaches 1 at 3.25 units
    assert walk_cost(np.array([1e6]), bid, 10.0, 1.0)[0] <= 10.0 * 1e6
    area_to_cap = 1 * 0.1 + 1 * 0.3 + 1.25 * 0.75
    assert walk_cost(np.array([5.0]), bid, 10.0, 1.0)[0] == pytest.approx(10.0 * (area_to_cap + 1.75 * 1.0))


def test_long_sells_into_the_bid_short_buys_from_the_ask() -> None:
    bid, ask = depth_curves(Depth(bid=[(0.001, 1.0), (0.002, 2.0)], ask=[(0.01, 1.0), (0.02, 2.0)]))
    assert walk_cost(np.array([1.0]), bid, 1.0, 1.0)[0] == pytest.approx(0.001)
    assert walk_cost(np.array([1.0]), ask, 1.0, 1.0)[0] == pytest.approx(0.01)


# ------------------------------------------------------------------------- square root and vega


def test_sqrt_impact_by_hand() -> None:
    # 1,000 units of a 2,000-USD asset, ADV 100,000, daily vol 4%, Y 1, half-spread 5 bp, stress 2:
    # impact 0.04 * sqrt(1000 * 2 / 100000) = 0.04 * sqrt(0.02)
    want = 2000 * 1000 * (0.0005 + 0.04 * math.sqrt(0.02))
    got = sqrt_impact_cost(np.array([-1000.0]), 2000.0, 0.04, 100_000.0, 0.0005, 1.0, 2.0)[0]
    assert got == pytest.approx(want, rel=1e-12)


def test_vega_cost_by_hand() -> None:
    # -300 USD per vol point, a 2-vol-point bid-ask: half of it is 1 point, x stress 1.5
    assert vega_cost(np.array([-300.0]), 0.02, 1.5)[0] == pytest.approx(300 * 1 * 1.5, rel=1e-12)


# --------------------------------------------------------------------------------- properties

sizes = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
stresses = st.floats(min_value=1.0, max_value=20.0, allow_nan=False)
curves = st.lists(st.tuples(st.floats(1e-4, 0.5), st.floats(1e-3, 1e4)), min_size=2, max_size=6).map(
    lambda pts: list(zip(sorted({d for d, _ in pts}), sorted({q for _, q in pts}), strict=False))
)


def _cost_all(q: float, stress: float, points: list[tuple[float, float]]) -> list[float]:
    """Book walk on both sides, and the square-root law, for one size."""
    out = [float(walk_cost(np.array([q]), book_side(points, bid=side), 100.0, stress)[0]) for side in (True, False)]
    out.append(float(sqrt_impact_cost(np.array([q]), 100.0, 0.03, 5_000.0, 0.0005, 1.0, stress)[0]))
    return out


@given(sizes, sizes, stresses, curves)
def test_nonnegative_and_nondecreasing_in_size(a: float, b: float, stress: float, points: list[Any]) -> None:
    if len(points) < 2:
        return
    small, large = sorted((a, b))
    for lo, hi in zip(_cost_all(small, stress, points), _cost_all(large, stress, points), strict=True):
        assert 0.0 <= lo <= hi * (1 + 1e-12) + 1e-12


@given(sizes, stresses, stresses, curves)
def test_nondecreasing_in_stress(q: float, s1: float, s2: float, points: list[Any]) -> None:
    if len(points) < 2:
        return
    low, high = sorted((s1, s2))
    for lo, hi in zip(_cost_all(q, low, points), _cost_all(q, high, points), strict=True):
        assert lo <= hi * (1 + 1e-12) + 1e-12


@given(sizes, stresses, curves)
def test_convex_in_size(q: float, stress: float, points: list[Any]) -> None:
    if len(points) < 2:
        return
    for once, twice in zip(_cost_all(q, stress, points), _cost_all(2 * q, stress, points), strict=True):
        assert twice >= 2 * once * (1 - 1e-12) - 1e-12


# ------------------------------------------------------------------------------- in the engine


def _result(params: MarginParams | None = None, market: Path = EXAMPLES / "market.json") -> solvent.MarginResult:
    book = solvent.load_portfolio(EXAMPLES / "portfolio.json")
    return solvent.compute_margin(book, solvent.load_market(market), params)


def test_terms_sum_exactly_to_im() -> None:
    res = _result()
    assert "liquidity" in res.terms and res.terms["liquidity"].max() > 0.0
    total = np.zeros(res.n_accounts)
    for values in res.terms.values():
        total = total + values
    np.testing.assert_array_equal(res.im, total)


def test_liquidity_term_is_the_sum_of_its_assets() -> None:
    res = _result()
    by_asset = res.term_by_asset["liquidity"]
    assert by_asset.shape == (res.n_accounts, len(res.assets))
    np.testing.assert_allclose(res.terms["liquidity"], by_asset.sum(axis=1), rtol=1e-15, atol=0.0)
    table = res.to_arrow()
    for asset in res.traded_assets:
        np.testing.assert_array_equal(
            table.column(f"liquidity_{asset}").to_numpy(), by_asset[:, res.assets.index(asset)]
        )


def test_a_flat_net_delta_on_two_books_pays_both_close_outs() -> None:
    """bob (spot +1 / perp -1) nets to no delta but holds two books to close: sell 1 BTC into the bid and buy
    1 BTC from the ask, each 2.5 units inside the touch at 1 bp on the 2x-thinned book: 2 x 9.5 USD
    (issue 12 item 1: the close-out is charged per book; 0 on main)."""
    res = _result()
    flat = np.all(res.greeks[:, :, [0, 2]] == 0.0, axis=(1, 2))
    assert list(res.account_ids[flat]) == ["bob"]
    assert res.terms["liquidity"][flat][0] == pytest.approx(2 * 95_000 * 0.0001, rel=1e-12)


def test_disabled_zeroes_the_term() -> None:
    """Disabled, the term is still reported (issue 12 item 18: every declared term always present), at 0."""
    res = _result(MarginParams(liquidity=LiquidityParams(enabled=False)))
    assert not np.any(res.terms["liquidity"]) and not np.any(res.term_by_asset["liquidity"])


def test_more_stress_never_lowers_im() -> None:
    low = _result(MarginParams(liquidity=LiquidityParams(stress=1.0)))
    high = _result(MarginParams(liquidity=LiquidityParams(stress=5.0)))
    assert np.all(high.terms["liquidity"] >= low.terms["liquidity"])
    assert np.all(high.im >= low.im)


def test_require_depth_fails_closed(tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "market.json").read_text())
    del doc["assets"]["ETH"]["depth"]
    path = tmp_path / "market.json"
    path.write_text(json.dumps(doc))
    _result(market=path)  # off by default: ETH simply adds no delta cost
    with pytest.raises(solvent.InputError, match=r"assets\.ETH\.depth"):
        _result(MarginParams(liquidity=LiquidityParams(require_depth=True)), market=path)


# ------------------------------------------------------------------------------- bad depth input

BAD_DEPTH = [
    ("non-monotone", {"bid": [[0.001, 1], [0.002, 5], [0.0015, 9]], "ask": [[0.001, 1], [0.002, 2]]}, "depth.bid[2]"),
    ("crossed", {"bid": [[-0.001, 1], [0.002, 5]], "ask": [[0.001, 1], [0.002, 2]]}, "depth.bid[0]"),
    ("size-decreasing", {"bid": [[0.001, 1], [0.002, 5]], "ask": [[0.001, 3], [0.002, 2]]}, "depth.ask[1]"),
    ("negative-size", {"bid": [[0.001, -1], [0.002, 5]], "ask": [[0.001, 1], [0.002, 2]]}, "depth.bid[0]"),
    ("non-finite", {"bid": [[0.001, 1], [0.002, 1e999]], "ask": [[0.001, 1], [0.002, 2]]}, "depth.bid"),
    ("one-side", {"bid": [[0.001, 1], [0.002, 5]]}, "depth.ask"),
    ("one-point", {"bid": [[0.001, 1]], "ask": [[0.001, 1], [0.002, 2]]}, "depth.bid"),
    ("both-forms", {"bid": [[0.001, 1], [0.002, 5]], "ask": [[0.001, 1], [0.002, 2]], "spread": 0.001}, "depth.spread"),
    ("half-parametric", {"spread": 0.001, "depth_1pct": 10}, "depth.depth_2pct"),
    ("parametric-2pct-shallower", {"spread": 0.001, "depth_1pct": 10, "depth_2pct": 5}, "depth.depth_2pct"),
    ("negative-spread", {"spread": -0.001, "depth_1pct": 10, "depth_2pct": 20}, "depth.spread"),
]


@pytest.mark.parametrize(("depth", "field"), [case[1:] for case in BAD_DEPTH], ids=[case[0] for case in BAD_DEPTH])
def test_bad_depth_is_exit_2_naming_the_field(depth: dict[str, Any], field: str, tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "market.json").read_text())
    doc["assets"]["BTC"]["depth"] = depth
    path = tmp_path / "market.json"
    path.write_text(json.dumps(doc).replace("Infinity", "1e999"))
    args = ["margin", "--portfolio", str(EXAMPLES / "portfolio.json"), "--market", str(path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"assets.BTC.{field}" in lines[0]


@pytest.mark.parametrize("field", ["adv", "vol_spread"])
def test_negative_adv_or_vol_spread_is_input_error(field: str, tmp_path: Path) -> None:
    doc = json.loads((EXAMPLES / "market.json").read_text())
    doc["assets"]["BTC"][field] = -1.0
    path = tmp_path / "market.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(solvent.InputError, match=rf"assets\.BTC\.{field}"):
        solvent.load_market(path)
