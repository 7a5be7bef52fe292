"""Fair populations (issue 13 item 1; `solvent.lab.populations`): each model's venue opens the same intents within
its own IM, so no account starts below its own model's MM unless the run asks for the intents as drawn."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from solvent.lab.cascade import OPTION_STRIKES, CascadeConfig, PopulationSpec, population
from solvent.lab.episodes import load_episode
from solvent.lab.populations import fit_to_margin
from solvent.lab.stress import episode_venue, run_episode, venue_population
from solvent.params import MarginParams
from solvent.stream.engine import StreamEngine

SPEC = PopulationSpec(n_accounts=300, leverage_median=20.0)


@pytest.fixture(scope="module")
def venue():  # type: ignore[no-untyped-def]
    return episode_venue(load_episode("2020-03-12"), spec=SPEC, step_seconds=600.0, seed=3)


@pytest.mark.parametrize(
    ("episode", "model"),
    [("2020-03-12", "static"), ("2020-03-12", "dydx"), ("2020-03-12", "multi"), ("2022-06-steth", "multi")],
)
def test_no_account_starts_below_its_own_models_margin(episode: str, model: str) -> None:
    """Checked by the streaming engine the simulator runs (not by the fitting's own margin call): at the opening
    snapshot every account's equity covers its IM, hence its MM, under the model that opened it; with the venue's
    mix (second perpetuals, options, spot collateral: stETH in its episode)."""
    venue = episode_venue(load_episode(episode), spec=venue_population(200, 20.0), step_seconds=600.0, seed=3)
    fitted = fit_to_margin(venue.book, venue.market, MarginParams(), model)
    engine = StreamEngine.start(fitted.book, venue.market, MarginParams(), model=model)
    figures = engine.margin_now()
    assert np.all(figures.equity >= figures.mm)
    assert np.all(figures.im <= figures.equity * (1.0 + 1e-9))
    assert not figures.liquidatable.any()


def test_the_model_caps_leverage_and_never_raises_it(venue) -> None:  # type: ignore[no-untyped-def]
    """Same collateral; each account's positions scaled by one factor in (0, 1]; the intents that fit kept whole;
    the capped accounts opened right at their IM (to the rescaling's slack)."""
    params = MarginParams()
    fitted = fit_to_margin(venue.book, venue.market, params, "static")
    np.testing.assert_array_equal(fitted.book.col_amount, venue.book.col_amount)
    assert np.all((fitted.scale > 0.0) & (fitted.scale <= 1.0))
    ratio = fitted.book.pos_quantity / venue.book.pos_quantity  # one position per account here
    np.testing.assert_allclose(ratio, fitted.scale, rtol=1e-12)
    # static: IM = notional / max leverage, so an intent above the cap is opened at exactly that leverage
    equity = venue.book.col_amount  # USD collateral, one balance per account
    notional = np.abs(fitted.book.pos_quantity * fitted.book.pos_entry)
    capped = fitted.scale < 1.0
    assert capped.any() and (~capped).any()
    cap = notional[capped] / equity[capped]
    np.testing.assert_allclose(cap, cap[0], rtol=1e-5)
    assert np.all(notional[~capped] / equity[~capped] <= cap[0] * (1.0 + 1e-9))
    summary = fitted.summary()
    assert summary["capped_accounts"] == int(capped.sum()) and 0.0 < summary["opened_notional_share"] < 1.0


def test_intents_as_drawn_start_accounts_below_mm_and_count_them_apart() -> None:
    """`fair=False`: the placeholder leverage puts some accounts below MM at the opening; the run reports them
    (`liquidatable_at_start`) beside the accounts liquidated later. Fair: none."""
    common = {
        "spec": SPEC,
        "config": CascadeConfig(block_seconds=600.0),
        "step_seconds": 600.0,
        "seed": 3,
    }
    drawn = run_episode(load_episode("2020-03-12"), ["multi"], MarginParams(), fair=False, **common)  # type: ignore[arg-type]
    fair = run_episode(load_episode("2020-03-12"), ["multi"], MarginParams(), **common)  # type: ignore[arg-type]
    assert drawn.summary()["models"]["multi"]["liquidatable_at_start"] > 0
    assert fair.summary()["models"]["multi"]["liquidatable_at_start"] == 0
    assert drawn.summary()["models"]["multi"]["population"] is None
    assert fair.summary()["models"]["multi"]["population"]["capped_accounts"] > 0


def test_the_mix_leaves_the_single_perpetual_draws_as_they_were() -> None:
    """The mix draws from its own stream: every account's first perpetual and collateral value are those of the
    population without the mix, and the shares come out near their targets (binomial, 5 sigma)."""
    n, start = 4_000, datetime(2026, 1, 1, tzinfo=UTC)
    mix = PopulationSpec(n_accounts=n, multi_asset_share=0.25, option_share=0.1, spot_collateral_share=0.2)
    plain = population(("BTC", "ETH"), (60_000.0, 3_000.0), PopulationSpec(n_accounts=n), seed=5)
    mixed = population(("BTC", "ETH"), (60_000.0, 3_000.0), mix, seed=5, start=start)
    first = mixed.pos_offsets[:-1]
    np.testing.assert_array_equal(mixed.pos_instrument[first], plain.pos_instrument)
    np.testing.assert_array_equal(mixed.pos_quantity[first], plain.pos_quantity)
    spot = mixed.col_asset == 1
    price = np.where(spot, 60_000.0, 1.0)  # spot collateral is BTC (the first asset), at its start price
    np.testing.assert_allclose(mixed.col_amount * price, plain.col_amount, rtol=1e-12)
    legs = np.diff(mixed.pos_offsets)
    kinds = np.array([i.kind for i in mixed.instruments])[mixed.pos_instrument]
    perps = np.bincount(mixed.position_account(), weights=kinds == "perp", minlength=n)
    options = np.bincount(mixed.position_account(), weights=kinds == "option", minlength=n)
    for share, count in ((0.25, (perps == 2).sum()), (0.1, (options > 0).sum()), (0.2, spot.sum())):
        assert abs(count - share * n) < 5.0 * math.sqrt(n * share * (1.0 - share))
    assert set(legs.tolist()) <= {1, 2, 3, 4}
    # a put spread: long the 90% put, short the 80% put, the same units; a short option: the 110% call
    strikes = {i.id: i.strike / (60_000.0 if i.underlying == "BTC" else 3_000.0) for i in mixed.instruments[2:]}
    assert sorted({round(v, 6) for v in strikes.values()}) == sorted(OPTION_STRIKES)
    option_rows = np.flatnonzero(kinds == "option")
    for row in option_rows[:20].tolist():
        inst = mixed.instruments[mixed.pos_instrument[row]]
        ratio = strikes[inst.id]
        assert (mixed.pos_quantity[row] > 0.0) == (ratio == pytest.approx(0.9))
        assert math.isnan(mixed.pos_entry[row])


def test_the_steth_episode_reaches_the_venue_through_its_collateral() -> None:
    """stETH is held as collateral (worth ETH's price at par at the start), quoted and on the path: its discount
    lowers the equity of the accounts holding it."""
    venue = episode_venue(load_episode("2022-06-steth"), spec=venue_population(200), step_seconds=900.0, seed=1)
    assert venue.book.collateral_assets == ("USD", "STETH")
    assert "STETH" in venue.path.assets and venue.market.assets["STETH"].price == venue.market.assets["ETH"].price
    column = venue.path.assets.index("STETH")
    assert venue.path.prices[:, column].min() < 0.95 * venue.path.prices[0, column]
    assert np.count_nonzero(venue.book.col_asset == 1) > 0
