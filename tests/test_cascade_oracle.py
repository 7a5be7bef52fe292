"""Oracle sources in the cascade simulator (`CascadeConfig.oracle_sources`, `solvent stress --oracle-sources`).

Issue 5: an episode's oracle behaviour (dispersion between sources, a pump on every source, a one-venue de-peg)
reaches the margin engine in the stress lab. Off (0, the default) the simulator is exactly today's; with N >= 2
every path asset is priced from N sources shaped by the episode, and `multi`'s IM carries the `oracle` term.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from solvent.cli import main
from solvent.lab.cascade import CascadeConfig, CascadeResult, PopulationSpec, PricePath, simulate
from solvent.lab.episodes import SOURCE_NOISE, load_episode
from solvent.lab.stress import START, episode_venue, run_episode
from solvent.params import MarginParams
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import DepthChange, FeedRecord, Quote

SPEC = PopulationSpec(n_accounts=200)
STEP = 600.0
SEED = 7
#: Black Thursday: BTC and ETH fall over 24 h, the exchanges' lows 10.8% apart at the extreme.
DISPERSION = "2020-03-12"
#: Mango: MNGO pumped on every source the oracle read.
PUMP = "2022-10-mango"


def _config(n: int = 0) -> CascadeConfig:
    return CascadeConfig(block_seconds=STEP, oracle_sources=n)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FeedRecord]]:
    """Every record the simulator sends the engine (`StreamEngine.run_batch` wrapped)."""
    records: list[FeedRecord] = []
    original = StreamEngine.run_batch

    def run_batch(self: StreamEngine, batch: Sequence[FeedRecord]) -> Any:
        records.extend(batch)
        return original(self, batch)

    monkeypatch.setattr(StreamEngine, "run_batch", run_batch)
    yield records


def _series(result: CascadeResult) -> list[np.ndarray]:
    return [
        result.seconds,
        result.traded,
        result.exogenous,
        result.liquidated,
        result.fund,
        result.bad_debt,
        result.im_seconds,
        result.im_share,
        result.factor_seconds,
        *result.factors.values(),
    ]


def _quotes_at(records: Sequence[FeedRecord], seconds: float) -> dict[str, list[float]]:
    """Per asset, the prices of the sourced quotes sent for the path point `seconds` after the start."""
    when = START + timedelta(seconds=seconds)
    out: dict[str, list[float]] = {}
    for r in records:
        if isinstance(r, Quote) and r.source is not None and r.time == when:
            out.setdefault(r.asset, []).append(r.price)
    return out


#: 2025-10-10: BTC's and ETH's books thin to 5% (depth changes between the quotes).
THINNED = "2025-10-10"


@pytest.mark.parametrize("episode_id", [DISPERSION, THINNED])
def test_without_sources_the_run_is_todays(sent: list[FeedRecord], episode_id: str) -> None:
    episode = load_episode(episode_id)
    params = MarginParams()
    # Built the old way: the venue without the option, the default config (no oracle_sources given).
    venue = episode_venue(episode, spec=SPEC, step_seconds=STEP, seed=SEED)
    assert venue.path.sources == () and venue.path.source_ratio is None
    assert all(not q.sources for q in venue.market.assets.values())
    old = simulate(venue.book, venue.market, params, venue.path, CascadeConfig(block_seconds=STEP))
    old_records = len(sent)
    assert all(r.source is None for r in sent if isinstance(r, Quote))
    new = run_episode(
        episode, ("multi",), params, spec=SPEC, config=_config(0), step_seconds=STEP, seed=SEED, fair=False
    )
    result = new.results["multi"]
    assert result.totals == old.totals
    assert list(result.factors) == list(old.factors)
    assert not np.any(result.factors["oracle"])  # reported, 0: the market has one price per asset
    for a, b in zip(_series(result), _series(old), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sent[old_records:] == sent[:old_records]  # the same records, one by one


def test_sources_leave_the_depth_changes_as_they_were(sent: list[FeedRecord]) -> None:
    episode = load_episode(THINNED)
    changes = {}
    for n in (0, 2):
        sent.clear()
        run_episode(episode, ("static",), MarginParams(), spec=SPEC, config=_config(n), step_seconds=STEP, seed=SEED)
        changes[n] = [(r.time, r.asset, r.scale) for r in sent if isinstance(r, DepthChange)]
        quotes = [r for r in sent if isinstance(r, Quote)]
        assert {r.source for r in quotes} == ({None} if n == 0 else {"oracle-1", "oracle-2"})
    assert changes[0] and changes[2] == changes[0]


def test_sources_put_the_oracle_term_into_multis_im() -> None:
    episode = load_episode(DISPERSION)
    runs = {
        n: run_episode(episode, ("multi",), MarginParams(), spec=SPEC, config=_config(n), step_seconds=STEP, seed=SEED)
        for n in (0, 3)
    }
    without, with_sources = runs[0].results["multi"], runs[3].results["multi"]
    assert not np.any(without.factors["oracle"])
    oracle = with_sources.factors["oracle"]
    # The sources open within noise and spread to the episode's dispersion at the extreme (the last cycle):
    # the term grows with them.
    assert oracle[0] < 0.005 and oracle[-1] > 10 * oracle[0]
    assert np.all(np.diff(oracle[oracle.size // 2 :]) > -0.005)
    # At the extreme the three sources sit at exp(-h), 1, exp(h) of the middle one, 2h = ln(1.108): U = 1.4826 x
    # MAD = 1.4826 (1 - exp(-h)) of the price (fresh quotes, no band), and the oracle term is |delta| x U, so
    # its share of the notional is that ratio (the notional is at the aggregate, the middle source). Each
    # source's SOURCE_NOISE moves it by about 1.4826 x 0.0005; 0.003 is four times that.
    h = math.log1p(0.108) / 2.0
    assert oracle[-1] == pytest.approx(1.4826 * (1.0 - math.exp(-h)), abs=0.003)
    assert with_sources.totals["capital_locked"] > without.totals["capital_locked"]


def test_the_sources_reproduce_the_episodes_dispersion_at_its_extreme(sent: list[FeedRecord]) -> None:
    episode = load_episode(DISPERSION)
    run = run_episode(episode, ("static",), MarginParams(), spec=SPEC, config=_config(3), step_seconds=STEP, seed=SEED)
    assert episode.oracle is not None and episode.oracle.dispersion == pytest.approx(0.108)
    extreme = 24 * 3600.0  # both moves reach their extreme after 24 h: the path's last point
    assert float(run.path.seconds[-1]) == extreme
    quotes = _quotes_at(sent, extreme)
    assert sorted(quotes) == ["BTC", "ETH"]
    # max/min - 1 = 1.108 (1 + e_max) / (1 + e_min) - 1, each e ~ N(0, SOURCE_NOISE); the traded price (path x
    # impact) multiplies an asset's sources alike and cancels. Its sd is 1.108 x sqrt(2) x 0.0005 = 0.0008:
    # 0.005 is over six of them.
    for prices in quotes.values():
        assert len(prices) == 3
        assert max(prices) / min(prices) - 1.0 == pytest.approx(0.108, abs=0.005)
    # The sources are centred on the traded price: the middle one is it, to noise.
    traded = run.results["static"].traded[-1]
    for j, asset in enumerate(run.assets):
        assert float(np.median(quotes[asset])) == pytest.approx(traded[j], rel=5 * SOURCE_NOISE)
    # One step in, the trend has gone 1/144 of the way: the sources agree to noise.
    first = _quotes_at(sent, STEP)
    assert all(max(p) / min(p) - 1.0 < 0.005 for p in first.values())


def test_a_pump_on_every_source_is_quoted_by_every_source(sent: list[FeedRecord]) -> None:
    episode = load_episode(PUMP)
    run = run_episode(episode, ("multi",), MarginParams(), spec=SPEC, config=_config(3), step_seconds=STEP, seed=SEED)
    move = episode.move("MNGO")
    assert move is not None
    peak = round(move.hours * 3600.0 / STEP) * STEP  # the peak's knot, rounded to the step
    prices = _quotes_at(sent, peak)["MNGO"]
    start = run.path.prices[0, 0]
    assert len(prices) == 3 and max(prices) / min(prices) - 1.0 < 0.005
    assert min(prices) > 20.0 * start  # the 22.9x pump reaches the engine on every source
    # The engine aggregates them and its TWAP guard clamps the pump: the oracle term (the gap it closed) shows.
    assert "oracle" in run.results["multi"].factors and float(np.max(run.results["multi"].factors["oracle"])) > 0.0


def test_the_oracle_sources_are_checked() -> None:
    with pytest.raises(ValueError, match="oracle_sources"):
        CascadeConfig(oracle_sources=1)
    episode = load_episode(PUMP)
    venue = episode_venue(episode, spec=SPEC, step_seconds=STEP, seed=SEED, oracle_sources=2)
    assert venue.path.sources == ("oracle-1", "oracle-2")
    assert [s.name for s in venue.market.assets["MNGO"].sources] == ["oracle-1", "oracle-2"]
    with pytest.raises(ValueError, match="oracle_sources"):
        simulate(venue.book, venue.market, MarginParams(), venue.path, _config(0))
    plain = episode_venue(episode, spec=SPEC, step_seconds=STEP, seed=SEED)
    with pytest.raises(ValueError, match="must declare"):
        simulate(plain.book, plain.market, MarginParams(), venue.path, _config(2))
    p = venue.path
    with pytest.raises(ValueError, match="source_ratio"):
        PricePath(
            seconds=p.seconds,
            assets=p.assets,
            prices=p.prices,
            depth=p.depth,
            sources=("a", "b", "c"),
            source_ratio=p.source_ratio,
        )
    with pytest.raises(ValueError, match="together"):
        PricePath(seconds=p.seconds, assets=p.assets, prices=p.prices, depth=p.depth, sources=p.sources)


ARGS = ["stress", "--episode", PUMP, "--compare", "static,multi", "--accounts", "200", "--step", "600"]


def test_same_seed_same_summary_bytes_with_sources(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = CliRunner().invoke(main, [*ARGS, "--oracle-sources", "3", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    summary = (tmp_path / "a" / "summary.json").read_bytes()
    assert summary == (tmp_path / "b" / "summary.json").read_bytes()
    assert json.loads(summary)["settings"]["oracle_sources"] == 3


@pytest.mark.parametrize("value", ["1", "-2"])
def test_one_oracle_source_exits_2_with_one_line(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [*ARGS, "--oracle-sources", value, "--out", str(out)])
    assert result.exit_code == 2
    assert result.output == f"error: --oracle-sources: {value}: 0 (a direct quote per asset) or 2 or more sources\n"
    assert not out.exists()
