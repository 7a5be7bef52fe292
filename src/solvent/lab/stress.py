"""Crash episodes replayed through the cascade simulator under several margin models: `solvent stress`.

For an episode of the crash library the venue is a population of perpetual traders on the assets the episode
moves (BTC and ETH besides for the de-pegs, whose stablecoin is then the traders' collateral: a de-peg hits
every account's equity at once). Every model faces the same population, the same seeded path and the same
books: each asset's book holds, within 1% of mid, `DEPTH_SHARE` of the population's open interest on it
(a scale-free assumption, so that a small simulated venue meets a book of its own size), thinned as the
episode thins it. The comparison reports, per model: bad debt, liquidations (accounts, trades, notional),
capital locked (mean IM / notional), procyclicality of the total requirement along the path, the predictive
flag's hit rate, false alarms and lead time.

With a price history (`solvent stress --history F`), the compared models are also backtested on it
(`lab.margin_backtest.run_backtest`, its defaults) and `comparison` puts both halves side by side, one record
per model: the episodes' totals aggregated over the runs, next to the history's coverage tests and
procyclicality aggregated over the backtest's reference portfolios (docs/model.md, "Stress comparison").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BASELINE_NAMES, BaselineParams
from solvent.engine.book import Book
from solvent.engine.vol_limit import VOL_ONLY
from solvent.formats.schemas import Depth, MarketSnapshot
from solvent.lab.cascade import (
    CascadeConfig,
    CascadeResult,
    PopulationSpec,
    PricePath,
    market_for,
    population,
    simulate,
    source_names,
    with_sources,
)
from solvent.lab.episodes import SOURCE_NOISE, CrashLibrary, Episode, episode_path, load_crashes, source_prices
from solvent.lab.markets import fit
from solvent.lab.markets import simulate as simulate_market
from solvent.lab.models import MODEL_NAMES
from solvent.lab.populations import fit_to_margin
from solvent.lab.procyclicality import procyclicality
from solvent.market.history import PriceHistory
from solvent.params import MarginParams

#: Start prices of the assets an episode gives no price for (USD; their level does not change the results).
DEFAULT_PRICES: dict[str, float] = {"BTC": 60_000.0, "ETH": 3_000.0}
#: Units within 1% of mid on each side, as a share of the population's open interest on the asset.
DEPTH_SHARE = 0.5
#: Market assets added to a de-peg episode (whose stablecoin becomes the collateral).
DEPEG_MARKET = ("BTC", "ETH")
START = datetime(2026, 1, 1, tzinfo=UTC)
FloatArray = NDArray[np.float64]
#: The models the cascade simulator (the streaming engine) runs: every model of `lab.models`.
STREAM_MODELS: tuple[str, ...] = ("multi", *BASELINE_NAMES, VOL_ONLY)
#: Every model `solvent stress --compare` takes: those the streaming engine runs, then any history-only one.
COMPARED_MODELS: tuple[str, ...] = (*STREAM_MODELS, *(m for m in MODEL_NAMES if m not in STREAM_MODELS))
#: The book mix of the population `solvent stress` meets (its other fields set per run): a quarter of the accounts
#: hold a second perpetual, a tenth options (put spreads and short calls), a fifth their collateral in spot (stETH
#: in its episode). Placeholders, as the leverage is (docs/model.md, "Cascade simulator").
VENUE_MIX = PopulationSpec(multi_asset_share=0.25, option_share=0.1, spot_collateral_share=0.2)


def venue_population(n_accounts: int, leverage_median: float = 10.0, *, perps_only: bool = False) -> PopulationSpec:
    """The population `solvent stress` meets: `n_accounts` traders at that median leverage, `VENUE_MIX` (with
    `perps_only`, one perpetual each and USD collateral: `solvent stress --perps-only`)."""
    mix = PopulationSpec() if perps_only else VENUE_MIX
    return dataclasses.replace(mix, n_accounts=n_accounts, leverage_median=leverage_median)


#: Relative difference below which the comparison's findings call two models' figures a tie (rounding).
RELATIVE_TIE = 1e-9


@dataclass(frozen=True, eq=False)
class StressRun:
    """One episode (of the crash library, or a synthetic market's day) under several models."""

    episode: str
    name: str
    assets: tuple[str, ...]
    collateral: str
    path: PricePath
    results: dict[str, CascadeResult]
    populations: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the episode, and per model the totals, the population it opened (`populations`) and the
        procyclicality of IM / notional as charged (`procyclicality`) and without the anti-procyclicality
        buffer (`procyclicality_without_apc`): `episode_procyclicality`."""
        models = {}
        for model, result in self.results.items():
            record = dict(result.totals)
            record["population"] = self.populations.get(model)
            record["procyclicality"] = episode_procyclicality(result.im_seconds, result.im_share)
            record["procyclicality_without_apc"] = episode_procyclicality(
                result.im_seconds, result.im_share_without_apc
            )
            models[model] = record
        return {
            "episode": self.episode,
            "name": self.name,
            "assets": list(self.assets),
            "collateral": self.collateral,
            "seconds": float(self.path.seconds[-1]),
            "models": models,
        }


def episode_procyclicality(seconds: FloatArray, share: FloatArray) -> dict[str, Any] | None:
    """Procyclicality of a requirement series (IM / notional at `seconds`): peak-to-trough, the largest rise
    over one sample (`max_increase["1"]`: one margin cycle when IM is sampled every cycle) and over the samples
    spanning one hour (`hour_samples`, its key in `max_increase`), Murphy, Vasios and Vause (2014); None when
    fewer than two valid samples."""
    ok = np.isfinite(share) & (share > 0.0)
    series, times = share[ok], seconds[ok]
    if series.size < 2:
        return None
    spacing = float(np.median(np.diff(times)))
    hour = max(1, round(3600.0 / spacing)) if spacing > 0.0 else 1
    horizons = tuple(dict.fromkeys(n for n in (1, hour) if n < series.size))
    record = procyclicality(series, horizons=horizons).to_dict()
    record["hour_samples"] = hour if hour < series.size else None
    return record


def venue_assets(episode: Episode, library: CrashLibrary) -> tuple[tuple[str, ...], str]:
    """(the perpetuals' assets, the collateral asset) of the population facing `episode`."""
    pegged = set(library.conventions.usd_pegged)
    moved = [m.asset for m in episode.moves]
    traded = [a for a in moved if a not in pegged and m_unit(episode, a) == "USD"]
    stable = [a for a in moved if a in pegged]
    if episode.market_asset and episode.market_asset not in traded:
        traded.insert(0, episode.market_asset)
    traded += [d.asset for d in episode.depth if d.asset not in pegged and d.asset not in traded]  # FTX: BTC's book
    if not traded:
        traded = list(DEPEG_MARKET)
    return tuple(dict.fromkeys(traded)), (stable[0] if stable else "USD")


def m_unit(episode: Episode, asset: str) -> str:
    """The price unit of `asset`'s move in `episode` (stETH moves in ETH)."""
    return next((m.price_unit for m in episode.moves if m.asset == asset), "USD")


@dataclass(frozen=True, eq=False)
class EpisodeVenue:
    """What an episode meets: the traded assets and collateral, the seeded population, the opening market and
    the exogenous path (traded assets, then the collateral if it is not USD)."""

    assets: tuple[str, ...]
    collateral: str
    book: Book
    market: MarketSnapshot
    path: PricePath


def episode_venue(
    episode: Episode,
    *,
    spec: PopulationSpec,
    step_seconds: float,
    seed: int,
    library: CrashLibrary | None = None,
    oracle_sources: int = 0,
) -> EpisodeVenue:
    """The episode's venue and seeded path, as every model of `run_episode` meets them. With `oracle_sources`
    N >= 2, every asset of the path (the perpetuals' and a stablecoin collateral) is priced from N sources
    (`source_names(N)`), whose ratios to the path are `source_prices` of the episode's path (its dispersion,
    pump or one-venue de-peg, plus SOURCE_NOISE), declared in the opening snapshot (`with_sources`)."""
    if oracle_sources < 0 or oracle_sources == 1:
        raise ValueError(f"oracle_sources: 0 or 2 or more, got {oracle_sources}")
    library = load_crashes() if library is None else library
    assets, collateral = venue_assets(episode, library)
    moved_assets = tuple(dict.fromkeys((*assets, *(m.asset for m in episode.moves))))
    start_prices = {a: _start_price(episode, a) for a in moved_assets}
    path = episode_path(episode, moved_assets, start_prices, step_seconds, seed, library.conventions)
    columns = [moved_assets.index(a) for a in assets]
    prices = [start_prices[a] for a in assets]
    spot = spot_collateral(episode, assets, library)
    spec = dataclasses.replace(spec, spot_asset=spot)
    spot_price = float(path.prices[0, moved_assets.index(spot)])
    book = population(assets, prices, spec, seed, start=START, spot_price=spot_price)
    if collateral != "USD":
        book = _collateral_in(book, collateral)
    depth = _books(book, assets)
    # The venue starts calibrated to calm markets; the simulator re-estimates vols from the path as it goes.
    conventions = library.conventions
    vols = [conventions.pegged_calm_vol if a in conventions.usd_pegged else conventions.calm_vol for a in assets]
    market = market_for(assets, prices, vols, depth, START)
    columns_all, names = list(columns), assets
    held = [a for a in book.collateral_assets if a != "USD" and a not in assets]  # collateral off the perpetuals
    for asset in held:
        c = moved_assets.index(asset)
        vol = conventions.pegged_calm_vol if asset in conventions.usd_pegged else conventions.calm_vol
        market = _with_asset(market, asset, float(path.prices[0, c]), vol)
        columns_all.append(c)
        names = (*names, asset)
    sources = source_names(oracle_sources) if oracle_sources else ()
    ratio = None
    if sources:
        ratio = (source_prices(path, sources, SOURCE_NOISE) / path.prices[:, :, None])[:, columns_all, :]
    sim_path = PricePath(
        seconds=path.times,
        assets=names,
        prices=path.prices[:, columns_all],
        depth=path.depth[:, columns_all],
        sources=sources,
        source_ratio=ratio,
    )
    market = with_sources(market, sim_path)
    return EpisodeVenue(assets=assets, collateral=collateral, book=book, market=market, path=sim_path)


def run_episode(
    episode: Episode,
    models: Sequence[str],
    params: MarginParams,
    *,
    spec: PopulationSpec,
    config: CascadeConfig,
    step_seconds: float,
    seed: int,
    library: CrashLibrary | None = None,
    progress: Callable[[str], None] | None = None,
    baselines: BaselineParams | None = None,
    fair: bool = True,
) -> StressRun:
    """The episode's seeded path and population, simulated under every model of `models` (the venue rules with
    `baselines`, default `BaselineParams()`). `fair`: each model's venue opens the population's intents within
    its own IM (`lab.populations.fit_to_margin`); False: every model meets the intents as drawn, and the
    accounts they start below MM are counted apart (`liquidatable_at_start`)."""
    venue = episode_venue(
        episode,
        spec=spec,
        step_seconds=step_seconds,
        seed=seed,
        library=library,
        oracle_sources=config.oracle_sources,
    )
    results, populations = _run_models(
        venue.book, venue.market, venue.path, models, params, config, baselines, fair=fair, progress=progress
    )
    return StressRun(
        episode=episode.id,
        name=episode.name,
        assets=venue.assets,
        collateral=venue.collateral,
        path=venue.path,
        results=results,
        populations=populations,
    )


def run_synthetic(
    history: PriceHistory,
    models: Sequence[str],
    params: MarginParams,
    *,
    spec: PopulationSpec,
    config: CascadeConfig,
    step_seconds: float,
    hours: float,
    seed: int,
    progress: Callable[[str], None] | None = None,
    baselines: BaselineParams | None = None,
    fair: bool = True,
) -> StressRun:
    """A synthetic market fitted to `history` (`lab.markets.fit`), simulated for `hours` from its last closes,
    as an episode: the population trades every asset of the history, the book thins as the fitted model says.
    It has no oracle behaviour to quote: `config.oracle_sources` must be 0 (ValueError otherwise). `baselines`:
    the venue rules' parameters (default `BaselineParams()`)."""
    if config.oracle_sources:
        raise ValueError("oracle_sources: a synthetic market has no oracle behaviour; oracle sources are per episode")
    model = fit(history)
    assets = tuple(a.name for a in model.assets)
    closes = history.closes[-1, [history.assets.index(a) for a in assets]]
    n_steps = max(1, round(hours * 3600.0 / step_seconds))
    market_path = simulate_market(model, n_steps, step_seconds, seed, closes)
    path = PricePath(seconds=market_path.times, assets=assets, prices=market_path.prices, depth=market_path.depth_scale)
    book = population(assets, closes.tolist(), spec, seed, start=START)
    depth = _books(book, assets)
    market = market_for(assets, closes.tolist(), market_path.vol[0].tolist(), depth, START)
    results, populations = _run_models(
        book, market, path, models, params, config, baselines, fair=fair, progress=progress
    )
    label = f"synthetic market fitted to {', '.join(assets)}, {hours:g} h, seed {seed}"
    return StressRun(
        episode="synthetic",
        name=label,
        assets=assets,
        collateral="USD",
        path=path,
        results=results,
        populations=populations,
    )


def _run_models(
    book: Book,
    market: MarketSnapshot,
    path: PricePath,
    models: Sequence[str],
    params: MarginParams,
    config: CascadeConfig,
    baselines: BaselineParams | None,
    *,
    fair: bool,
    progress: Callable[[str], None] | None,
) -> tuple[dict[str, CascadeResult], dict[str, dict[str, Any]]]:
    """Each model simulated on the population (with `fair`, the intents it would open: `fit_to_margin`); the
    results and, with `fair`, each model's population summary."""
    results, populations = {}, {}
    for model in models:
        if progress is not None:
            progress(model)
        opened = book
        if fair:
            fitted = fit_to_margin(book, market, params, model, baselines)
            opened, populations[model] = fitted.book, fitted.summary()
        results[model] = simulate(opened, market, params, path, config, model=model, baselines=baselines)
    return results, populations


def _books(book: Book, assets: Sequence[str]) -> list[Depth | None]:
    """Each asset's parametric book: within 1% (2%) of mid, DEPTH_SHARE (2.5 x it) times the population's open
    interest in the asset's perpetual, in units; spread 0.05%."""
    perp_asset = np.array(
        [assets.index(i.underlying) if i.kind == "perp" else -1 for i in book.instruments], dtype=np.int64
    )[book.pos_instrument]
    on_perp = perp_asset >= 0
    open_units = np.bincount(perp_asset[on_perp], weights=np.abs(book.pos_quantity[on_perp]), minlength=len(assets))
    return [
        Depth(spread=0.0005, depth_1pct=max(DEPTH_SHARE * u, 1e-9), depth_2pct=max(2.5 * DEPTH_SHARE * u, 2e-9))
        for u in open_units.tolist()
    ]


def _start_price(episode: Episode, asset: str) -> float:
    """The asset's USD price at the start: its move's `from_price` in USD; in ETH (stETH), times ETH's price."""
    for move in episode.moves:
        if move.asset == asset and move.from_price is not None:
            unit = 1.0 if move.price_unit == "USD" else _start_price(episode, move.price_unit)
            return float(move.from_price) * unit
    return DEFAULT_PRICES.get(asset, 1.0)


def spot_collateral(episode: Episode, traded: Sequence[str], library: CrashLibrary) -> str:
    """The asset the spot-collateral accounts hold (`PopulationSpec.spot_collateral_share`): an asset the
    episode moves against another crypto asset (stETH, priced in ETH: the episode reaches the venue through its
    collateral), else the first traded asset (BTC: a long perpetual on BTC collateral doubles its exposure)."""
    pegged = set(library.conventions.usd_pegged)
    for move in episode.moves:
        if move.price_unit != "USD" and move.asset not in pegged:
            return move.asset
    return traded[0]


def _collateral_in(book: Book, asset: str) -> Book:
    """The same book with every USD balance held in `asset` (a stablecoin worth 1 at the start)."""
    return dataclasses.replace(
        book, collateral_assets=tuple(asset if a == "USD" else a for a in book.collateral_assets)
    )


def _with_asset(market: Any, asset: str, price: float, vol: float) -> Any:
    import msgspec

    from solvent.formats.schemas import AssetQuote

    assets = dict(market.assets)
    assets[asset] = AssetQuote(price=price, vol=max(vol, 1e-6))
    return msgspec.structs.replace(market, assets=assets)


def stress_findings(summary: dict[str, Any]) -> list[str]:
    """Plain sentences comparing the models on one episode, `multi`'s losses said as such."""
    models = summary["models"]
    if not models:
        return []
    least_debt = min(models, key=lambda m: models[m]["bad_debt"])
    least_capital = min(models, key=lambda m: models[m]["capital_locked"])
    out = [
        f"{summary['episode']}: least bad debt under {least_debt} (${models[least_debt]['bad_debt']:,.0f}); "
        f"least capital locked under {least_capital} ({models[least_capital]['capital_locked']:.1%} of notional)."
    ]
    if "multi" in models:
        multi = models["multi"]
        worse = [
            f"{m} had less bad debt (${r['bad_debt']:,.0f} vs ${multi['bad_debt']:,.0f})"
            for m, r in models.items()
            if m != "multi" and r["bad_debt"] < multi["bad_debt"] - 1e-6
        ]
        cheaper = [
            f"{m} locked less capital ({r['capital_locked']:.1%} vs {multi['capital_locked']:.1%})"
            for m, r in models.items()
            if m != "multi" and r["capital_locked"] < multi["capital_locked"]
        ]
        fewer = [
            f"{m} liquidated fewer accounts ({r['accounts_liquidated']} vs {multi['accounts_liquidated']})"
            for m, r in models.items()
            if m != "multi" and r["accounts_liquidated"] < multi["accounts_liquidated"]
        ]
        losses = worse + cheaper + fewer
        out.append("Where multi loses: " + "; ".join(losses) + "." if losses else "multi is not beaten here.")
    return out


def episode_ids(library: CrashLibrary | None = None) -> tuple[str, ...]:
    """Every episode of the library, in its order."""
    library = load_crashes() if library is None else library
    return tuple(e.id for e in library.episodes)
