"""Fair populations (issue 13 item 1; `solvent.lab.populations`): each model's venue opens the same intents within
its own IM, so no account starts below its own model's MM unless the run asks for the intents as drawn."""

from __future__ import annotations

import numpy as np
import pytest

from solvent.lab.cascade import CascadeConfig, PopulationSpec
from solvent.lab.episodes import load_episode
from solvent.lab.populations import collateral_value, fit_to_margin
from solvent.lab.stress import episode_venue, run_episode
from solvent.params import MarginParams
from solvent.stream.engine import StreamEngine

SPEC = PopulationSpec(n_accounts=300, leverage_median=20.0)


@pytest.fixture(scope="module")
def venue():  # type: ignore[no-untyped-def]
    return episode_venue(load_episode("2020-03-12"), spec=SPEC, step_seconds=600.0, seed=3)


@pytest.mark.parametrize("model", ["static", "dydx", "multi"])
def test_no_account_starts_below_its_own_models_margin(venue, model: str) -> None:  # type: ignore[no-untyped-def]
    """Checked by the streaming engine the simulator runs (not by the fitting's own margin call): at the opening
    snapshot every account's equity covers its IM, hence its MM, under the model that opened it."""
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
    equity = collateral_value(venue.book, venue.market)
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
