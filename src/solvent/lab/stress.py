"""Crash episodes replayed through the cascade simulator under several margin models: `solvent stress`.

For an episode of the crash library the venue is a population of perpetual traders on the assets the episode
moves (BTC and ETH besides for the de-pegs, whose stablecoin is then the traders' collateral: a de-peg hits
every account's equity at once). Every model faces the same population, the same seeded path and the same
books: each asset's book holds, within 1% of mid, `DEPTH_SHARE` of the population's open interest on it
(a scale-free assumption, so that a small simulated venue meets a book of its own size), thinned as the
episode thins it. The comparison reports, per model: bad debt, liquidations (accounts, trades, notional),
capital locked (mean IM / notional), procyclicality of the total requirement along the path, the predictive
flag's hit rate, false alarms and lead time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from solvent.engine.book import Book
from solvent.formats.schemas import Depth, MarketSnapshot
from solvent.lab.cascade import (
    CascadeConfig,
    CascadeResult,
    PopulationSpec,
    PricePath,
    market_for,
    population,
    simulate,
)
from solvent.lab.episodes import CrashLibrary, Episode, episode_path, load_crashes
from solvent.lab.markets import fit
from solvent.lab.markets import simulate as simulate_market
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


@dataclass(frozen=True, eq=False)
class StressRun:
    """One episode (of the crash library, or a synthetic market's day) under several models."""

    episode: str
    name: str
    assets: tuple[str, ...]
    collateral: str
    path: PricePath
    results: dict[str, CascadeResult]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the episode, and per model the totals and the procyclicality of IM / notional."""
        models = {}
        for model, result in self.results.items():
            record = dict(result.totals)
            series = result.im_share[np.isfinite(result.im_share) & (result.im_share > 0.0)]
            horizons = tuple(n for n in (1, 5, 30) if n < series.size)
            record["procyclicality"] = procyclicality(series, horizons=horizons).to_dict() if horizons else None
            models[model] = record
        return {
            "episode": self.episode,
            "name": self.name,
            "assets": list(self.assets),
            "collateral": self.collateral,
            "seconds": float(self.path.seconds[-1]),
            "models": models,
        }


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
    episode: Episode, *, spec: PopulationSpec, step_seconds: float, seed: int, library: CrashLibrary | None = None
) -> EpisodeVenue:
    """The episode's venue and seeded path, as every model of `run_episode` meets them."""
    library = load_crashes() if library is None else library
    assets, collateral = venue_assets(episode, library)
    moved_assets = tuple(dict.fromkeys((*assets, *(m.asset for m in episode.moves))))
    start_prices = {a: _start_price(episode, a) for a in moved_assets}
    path = episode_path(episode, moved_assets, start_prices, step_seconds, seed, library.conventions)
    columns = [moved_assets.index(a) for a in assets]
    prices = [start_prices[a] for a in assets]
    book = population(assets, prices, spec, seed)
    if collateral != "USD":
        book = _collateral_in(book, collateral)
    depth = _books(book, len(assets))
    # The venue starts calibrated to calm markets; the simulator re-estimates vols from the path as it goes.
    conventions = library.conventions
    vols = [conventions.pegged_calm_vol if a in conventions.usd_pegged else conventions.calm_vol for a in assets]
    market = market_for(assets, prices, vols, depth, START)
    if collateral != "USD":
        c = moved_assets.index(collateral)
        market = _with_asset(market, collateral, float(path.prices[0, c]), conventions.pegged_calm_vol)
        columns_all = [*columns, c]
        names = (*assets, collateral)
    else:
        columns_all, names = columns, assets
    sim_path = PricePath(
        seconds=path.times,
        assets=names,
        prices=path.prices[:, columns_all],
        depth=path.depth[:, columns_all],
    )
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
) -> StressRun:
    """The episode's seeded path and population, simulated under every model of `models`."""
    venue = episode_venue(episode, spec=spec, step_seconds=step_seconds, seed=seed, library=library)
    results = {}
    for model in models:
        if progress is not None:
            progress(model)
        results[model] = simulate(venue.book, venue.market, params, venue.path, config, model=model)
    return StressRun(
        episode=episode.id,
        name=episode.name,
        assets=venue.assets,
        collateral=venue.collateral,
        path=venue.path,
        results=results,
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
) -> StressRun:
    """A synthetic market fitted to `history` (`lab.markets.fit`), simulated for `hours` from its last closes,
    as an episode: the population trades every asset of the history, the book thins as the fitted model says."""
    model = fit(history)
    assets = tuple(a.name for a in model.assets)
    closes = history.closes[-1, [history.assets.index(a) for a in assets]]
    n_steps = max(1, round(hours * 3600.0 / step_seconds))
    market_path = simulate_market(model, n_steps, step_seconds, seed, closes)
    path = PricePath(seconds=market_path.times, assets=assets, prices=market_path.prices, depth=market_path.depth_scale)
    book = population(assets, closes.tolist(), spec, seed)
    depth = _books(book, len(assets))
    market = market_for(assets, closes.tolist(), market_path.vol[0].tolist(), depth, START)
    results = {}
    for name in models:
        if progress is not None:
            progress(name)
        results[name] = simulate(book, market, params, path, config, model=name)
    label = f"synthetic market fitted to {', '.join(assets)}, {hours:g} h, seed {seed}"
    return StressRun(episode="synthetic", name=label, assets=assets, collateral="USD", path=path, results=results)


def _books(book: Book, n_assets: int) -> list[Depth | None]:
    """Each asset's parametric book: within 1% (2%) of mid, DEPTH_SHARE (2.5 x it) times the population's open
    interest on the asset, in units; spread 0.05%."""
    open_units = np.bincount(book.pos_instrument, weights=np.abs(book.pos_quantity), minlength=n_assets)
    return [
        Depth(spread=0.0005, depth_1pct=max(DEPTH_SHARE * u, 1e-9), depth_2pct=max(2.5 * DEPTH_SHARE * u, 2e-9))
        for u in open_units.tolist()
    ]


def _start_price(episode: Episode, asset: str) -> float:
    for move in episode.moves:
        if move.asset == asset and move.from_price is not None and move.price_unit == "USD":
            return float(move.from_price)
    return DEFAULT_PRICES.get(asset, 1.0)


def _collateral_in(book: Book, asset: str) -> Book:
    """The same book with every USD balance held in `asset` (a stablecoin worth 1 at the start)."""
    import dataclasses

    return dataclasses.replace(book, collateral_assets=(asset,))


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
