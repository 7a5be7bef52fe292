"""The liquidation-cascade simulator: the streaming engine driven along a price path, the market answering.

Each step the exogenous path gives every asset a price and a depth scale; the traded price is the path's
times exp(I_a), where I_a is the endogenous impact of the liquidations so far: after every margin cycle
(`block_seconds`) the net units liquidated on each asset are walked down (sales) or up (purchases) the
asset's book at its current depth, and the price moves to the level of the last unit filled,
I_a += ln(1 -/+ d_a(units)), which can trigger more liquidations; between cycles the impact decays with a
half-life (`resilience_seconds`, the book refilling). The engine is the streaming engine of issue 4 under
one margin model (`multi` or a venue rule), so the same insurance fund, ADL and socialisation apply.
With oracle sources (`CascadeConfig.oracle_sources`, the path's `source_ratio`) every asset is quoted once per
source, around the traded price; the engine margins at their aggregate and its uncertainty.

The population: one perpetual per account on one asset, long or short, its notional lognormal and its
leverage lognormal and capped (`PopulationSpec`; Cheng, Deng, Wang and Yu (2021) found the traders
liquidated on BitMEX averaged about 60x, so the tail matters), collateral USD = notional / leverage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BaselineParams
from solvent.engine.apc import ApcBufferState, initial_buffer, update_buffer
from solvent.engine.book import CROSS, Book
from solvent.formats.schemas import MARKET_SCHEMA, AssetQuote, Depth, Instrument, MarketSnapshot, OracleSource
from solvent.market.depth import DepthCurve
from solvent.market.volatility import ewma_variance
from solvent.params import MarginParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import DepthChange, FeedRecord, Quote, VolChange

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class PopulationSpec:
    """A venue's traders: their intents (what each would open with the collateral it brings). Leverage ~
    lognormal(median, sigma) clipped to [1, max]; notional ~ lognormal(median, sigma) USD; `long_share` of accounts
    long; `asset_weights` the share of accounts on each asset (by name; default equal). With median 10x and sigma
    1.0 about 5% of accounts run above 50x and 1% sit at the 100x cap (mean ~16x); `solvent stress --leverage`
    sets the median (`--sweep`: several). The book's mix, each share drawn independently per account from its
    own seeded stream (so that the shares at 0 leave the single-perpetual population as it was):
    `multi_asset_share` hold a second perpetual on another asset (its side drawn anew, its notional U(0.25, 1)
    times the first's; with one asset, none); `option_share` hold options on their asset, `OPTION_STRIKES`, half a
    put spread (long the 90% put, short the 80% put) and half a short 110% call, `option_days` to expiry, each leg
    on the notional's units; `spot_collateral_share` hold their collateral in `spot_asset` (default: the first
    asset) instead of USD, the same value at the start. Placeholders to calibrate, documented in docs/model.md
    ("Cascade simulator")."""

    n_accounts: int = 10_000
    leverage_median: float = 10.0
    leverage_sigma: float = 1.0
    leverage_max: float = 100.0
    notional_median: float = 20_000.0
    notional_sigma: float = 1.3
    long_share: float = 0.6
    asset_weights: dict[str, float] = field(default_factory=dict)
    multi_asset_share: float = 0.0
    option_share: float = 0.0
    option_days: float = 30.0
    spot_collateral_share: float = 0.0
    spot_asset: str | None = None

    def __post_init__(self) -> None:
        for name in ("multi_asset_share", "option_share", "spot_collateral_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: a share in [0, 1], got {getattr(self, name)}")


#: Option strikes as a share of the asset's price at the start: the put spread's long and short legs, the call.
OPTION_STRIKES = (0.9, 0.8, 1.1)


def population(
    assets: Sequence[str],
    prices: Sequence[float],
    spec: PopulationSpec,
    seed: int,
    *,
    start: datetime | None = None,
    spot_price: float | None = None,
) -> Book:
    """`spec.n_accounts` accounts on `assets` (perpetuals entered at `prices`; options expire `spec.option_days`
    after `start`, needed with options; `spot_price`, the spot collateral's price, needed when `spec.spot_asset`
    is not one of `assets`), seeded: one perpetual each, and the mix of `PopulationSpec`."""
    rng = np.random.default_rng(seed)
    n = spec.n_accounts
    weights = np.array([spec.asset_weights.get(a, 1.0) for a in assets], dtype=np.float64)
    asset = rng.choice(len(assets), size=n, p=weights / weights.sum())
    leverage = np.clip(rng.lognormal(math.log(spec.leverage_median), spec.leverage_sigma, n), 1.0, spec.leverage_max)
    notional = rng.lognormal(math.log(spec.notional_median), spec.notional_sigma, n)
    side = np.where(rng.random(n) < spec.long_share, 1.0, -1.0)
    price = np.asarray(prices, dtype=np.float64)
    mix = np.random.default_rng([seed, 13])  # the mix's own stream
    second = (mix.random(n) < spec.multi_asset_share) & (len(assets) > 1)
    other = (asset + 1 + mix.integers(0, max(1, len(assets) - 1), n)) % len(assets)
    second_side = np.where(mix.random(n) < spec.long_share, 1.0, -1.0)
    second_notional = notional * mix.uniform(0.25, 1.0, n)
    options = mix.random(n) < spec.option_share
    spread = mix.random(n) < 0.5
    spot = mix.random(n) < spec.spot_collateral_share
    if options.any() and start is None:
        raise ValueError("start: options need a start time for their expiry")

    instruments = [Instrument(id=f"{a}-PERP", kind="perp", underlying=a) for a in assets]
    option_rows = {}
    if options.any() and start is not None:
        expiry = start + timedelta(days=spec.option_days)
        for j, a in enumerate(assets):
            for k, (ratio, kind) in enumerate(zip(OPTION_STRIKES, ("put", "put", "call"), strict=True)):
                strike = float(price[j]) * ratio
                option_rows[j, k] = len(instruments)
                instruments.append(
                    Instrument(
                        id=f"{a}-{ratio:.0%}-{kind.upper()}",
                        kind="option",
                        underlying=a,
                        expiry=expiry,
                        strike=strike,
                        option_type=kind,  # type: ignore[arg-type]
                    )
                )
    # Five leg slots per account (perpetual, second perpetual, long put, short put, short call), kept where held,
    # read account by account: the book's rows in order.
    units = notional / price[asset]
    slots = np.zeros((n, 5), dtype=np.int64)
    slots[:, 0], slots[:, 1] = asset, other
    if option_rows:
        table = np.array([[option_rows[j, k] for k in range(3)] for j in range(len(assets))], dtype=np.int64)
        slots[:, 2:] = table[asset]
    quantity = np.column_stack([side * units, second_side * second_notional / price[other], units, -units, -units])
    entry = np.column_stack([price[asset], price[other], *([np.full(n, math.nan)] * 3)])
    held = np.column_stack([np.ones(n, dtype=bool), second, options & spread, options & spread, options & ~spread])
    spot_name = spec.spot_asset or assets[0]
    spot_value = spot_price if spot_price is not None else float(price[list(assets).index(spot_name)])
    collateral = notional / leverage
    has_spot = bool(spot.any())
    return Book(
        instruments=tuple(instruments),
        account_ids=np.array([f"trader-{k:06d}" for k in range(n)], dtype=object),
        pos_offsets=np.concatenate([[0], np.cumsum(held.sum(axis=1))]).astype(np.int64),
        pos_instrument=slots[held].astype(np.int32),
        pos_quantity=quantity[held],
        pos_entry=entry[held],
        collateral_assets=("USD", spot_name) if has_spot else ("USD",),
        col_offsets=np.arange(n + 1, dtype=np.int64),
        col_asset=spot.astype(np.int32) if has_spot else np.zeros(n, dtype=np.int32),
        col_amount=np.where(spot, collateral / spot_value, collateral),
        risk_tier=np.full(n, math.nan),
        mode=np.full(n, CROSS, dtype=np.int8),
        parent=np.full(n, None, dtype=object),
    )


@dataclass(frozen=True, eq=False)
class PricePath:
    """An exogenous path: seconds from the start (T,), asset names, prices and depth scales (T, A).

    Optional oracle sources: `sources` (S >= 2 unique names) and `source_ratio` (T, A, S), each source's quote
    over the path's price (the episode's dispersion, pump or one-venue de-peg, and noise); every asset is then
    quoted once per source at its traded price times that ratio. Neither (the default): one quote per asset."""

    seconds: FloatArray
    assets: tuple[str, ...]
    prices: FloatArray
    depth: FloatArray
    sources: tuple[str, ...] = ()
    source_ratio: FloatArray | None = None

    def __post_init__(self) -> None:
        t, a = self.prices.shape
        if self.seconds.shape != (t,) or self.depth.shape != (t, a) or len(self.assets) != a:
            raise ValueError("seconds (T,), prices and depth (T, A) and A asset names expected")
        if t < 2 or np.any(np.diff(self.seconds) <= 0.0):
            raise ValueError("a path needs two or more strictly increasing times")
        if not (np.isfinite(self.prices).all() and (self.prices > 0.0).all() and (self.depth > 0.0).all()):
            raise ValueError("prices and depth scales must be finite and > 0")
        if (self.source_ratio is None) != (not self.sources):
            raise ValueError("sources and source_ratio are given together or not at all")
        if self.source_ratio is not None:
            n = len(self.sources)
            if n < 2 or len(set(self.sources)) != n:
                raise ValueError(f"sources: two or more unique names expected, got {list(self.sources)}")
            if self.source_ratio.shape != (t, a, n):
                raise ValueError(f"source_ratio: (T, A, S) = {(t, a, n)} expected, got {self.source_ratio.shape}")
            ratio = self.source_ratio
            if not (np.isfinite(ratio).all() and (ratio > 0.0).all()):
                raise ValueError("source_ratio: must be finite and > 0")


#: Samples of the venue's total IM along a path when `CascadeConfig.im_sample_seconds` is None (each one margins
#: every account: at 100,000 accounts about 9 ms).
IM_SAMPLES = 300


@dataclass(frozen=True, kw_only=True)
class CascadeConfig:
    """How the market answers. `block_seconds`: the margin cycle; `impact`: liquidations move the price;
    `resilience_seconds`: half-life of that impact; `insurance_fund`: USD at the start; `vol_update_seconds`:
    every so often each asset's volatility is re-estimated from the traded prices and sent as a `vol` record, a
    new epoch for the engine, as a venue re-calibrating on a schedule would (None: the snapshot's vol
    throughout); `vol_estimator`: "ewma", the engine's own estimator (`market.volatility.ewma_variance`) over
    every cycle's return, started at the snapshot's vol, its decay the daily `volatility.ewma_lambda` taken to
    the cycle, lambda ** (block_seconds / 1 day), so that its memory is the same in time at any step; "window":
    the zero-mean realised volatility of the last window's cycle returns, never below the snapshot's (the lab's
    estimator before issue 13, kept to measure what it did);
    `factor_samples`: at that many evenly spaced cycles the whole venue is margined once more to record each IM
    term's share of the notional (the requirement by factor over time; 0: none); `im_sample_seconds`: the venue's
    total IM is taken afresh (`im_share`, the capital locked) at the first cycle, then at the first cycle ending
    at least that long after the last sample (None: the path's duration over `IM_SAMPLES`, so that a day costs
    as many samples as an hour); `screen`: the engine's health screen (`solvent.stream.screen`:
    the same events, each cycle re-margining only the accounts the move can have changed); `oracle_sources`: 0,
    one direct quote per asset, or N >= 2 oracle sources per asset (the path's `sources`, N of them, declared on
    every path asset of the snapshot: `with_sources`), aggregated by the engine (docs/model.md, "Cascade
    simulator"); `all_events`: the engine watches and publishes every event, as a live venue's stream would
    (False: only what the results read: no margin calls, which liquidate nothing, and each account's first early
    flag, unless the flag deleverages; the results are the same either way, the run is faster)."""

    block_seconds: float = 1.0
    impact: bool = True
    resilience_seconds: float = 60.0
    insurance_fund: float = 1_000_000.0
    vol_update_seconds: float | None = 3600.0
    vol_estimator: Literal["ewma", "window"] = "ewma"
    factor_samples: int = 24
    im_sample_seconds: float | None = None
    screen: bool = True
    oracle_sources: int = 0
    all_events: bool = False

    def __post_init__(self) -> None:
        if self.oracle_sources < 0 or self.oracle_sources == 1:
            raise ValueError(
                f"oracle_sources: 0 (a direct quote per asset) or 2 or more sources, got {self.oracle_sources}"
            )


@dataclass(frozen=True, eq=False)
class CascadeResult:
    """One model's run along one path: per margin cycle (B,) series and the totals."""

    model: str
    seconds: FloatArray
    traded: FloatArray  # (B, A) traded price (path x impact)
    exogenous: FloatArray  # (B, A)
    liquidated: FloatArray  # (B,) notional liquidated so far (the engine's total, the start's included), USD
    fund: FloatArray  # (B,)
    bad_debt: FloatArray  # (B,) cumulative: paid by the fund + socialised + unresolved, USD
    im_seconds: FloatArray  # (S,) when the total IM was taken (`CascadeConfig.im_sample_seconds`)
    im_share: FloatArray  # (S,) total IM / total notional then (with the buffer released: as charged)
    im_share_without_apc: FloatArray  # (S,) the same without the anti-procyclicality buffer
    factor_seconds: FloatArray  # (K,) when the requirement was broken down by factor
    factors: dict[str, FloatArray]  # term -> (K,) its total over total notional (a venue rule: one term, its IM)
    totals: dict[str, Any]
    wall_seconds: float


def market_for(
    assets: Sequence[str], prices: Sequence[float], vols: Sequence[float], depth: Sequence[Depth | None], time: datetime
) -> MarketSnapshot:
    """A snapshot quoting each asset directly (no oracle sources: the simulator's quotes are the price)."""
    quotes = {
        a: AssetQuote(price=float(p), vol=float(v), depth=d)
        for a, p, v, d in zip(assets, prices, vols, depth, strict=True)
    }
    return MarketSnapshot(schema=MARKET_SCHEMA, time=time, assets=quotes)


def source_names(count: int) -> tuple[str, ...]:
    """The names of `count` oracle sources: oracle-1, oracle-2, ..."""
    return tuple(f"oracle-{k + 1}" for k in range(count))


def with_sources(market: MarketSnapshot, path: PricePath) -> MarketSnapshot:
    """`market` with every asset of `path` declaring the path's oracle sources, each quoting the asset's price
    times its ratio at the path's first point, at the snapshot's time, with no published band (confidence 0)
    and no TWAP (the price is the reference). A path without sources: `market` unchanged."""
    if path.source_ratio is None:
        return market
    import msgspec

    assets = dict(market.assets)
    for j, asset in enumerate(path.assets):
        quote = assets[asset]
        sources = [
            OracleSource(name=name, price=quote.price * float(r), timestamp=market.time)
            for name, r in zip(path.sources, path.source_ratio[0, j].tolist(), strict=True)
        ]
        assets[asset] = msgspec.structs.replace(quote, sources=sources)
    return msgspec.structs.replace(market, assets=assets)


def fill_distance(curve: DepthCurve, units: float) -> float:
    """Distance from mid of the last of `units` filled on a book side (the curve's last slope beyond it)."""
    k = int(np.clip(np.searchsorted(curve.size, units, side="right") - 1, 0, curve.slope.size - 1))
    return float(curve.distance[k] + curve.slope[k] * (units - curve.size[k]))


def simulate(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    path: PricePath,
    config: CascadeConfig,
    model: str = "multi",
    progress: Callable[[int, int], None] | None = None,
    baselines: BaselineParams | None = None,
) -> CascadeResult:
    """Drive a streaming engine under `model` along `path` with endogenous impact (see the module). With oracle
    sources (`config.oracle_sources` must equal the path's count, and `market` declare them on every path asset:
    `with_sources`) each asset is quoted once per source: the traded price times the source's ratio. `baselines`:
    the venue rules' parameters when `model` is one (default `BaselineParams()`)."""
    _check_sources(market, path, config)
    begin = time.perf_counter()
    published: list[ev.Event] = []
    engine = StreamEngine.start(
        book,
        market,
        params,
        insurance_fund=config.insurance_fund,
        sink=published.extend,
        model=model,
        screen=config.screen,
        baselines=baselines,
        margin_calls=config.all_events,
        reflag=config.all_events or params.predictive.action == "deleverage",
    )
    columns = [engine.market.state.asset_index[a] for a in path.assets]
    base_liquidity = [engine.market.base.liquidity[c] for c in columns]
    size = engine.store.contract_size.tolist()
    # the path's column of each instrument's asset (-1: an asset off the path)
    on_path = [columns.index(a) if a in columns else -1 for a in engine.store.instrument_asset.tolist()]
    n_assets = len(path.assets)
    impact = [0.0] * n_assets  # I_a, the log impact on each asset
    depth_now = [1.0] * n_assets
    half_life = config.resilience_seconds
    seq = 0
    cycles = max(1, round(path.seconds[-1] / config.block_seconds))
    bounds = np.searchsorted(path.seconds, np.arange(1, cycles + 1) * config.block_seconds, side="right")
    sampled = set(np.linspace(0, cycles - 1, config.factor_samples).round().astype(int).tolist())
    factor_seconds: list[float] = []
    factor_rows: list[dict[str, float]] = []
    series: dict[str, list[Any]] = {
        k: [] for k in ("seconds", "point", "impact", "liquidated", "fund", "debt", "im", "bare_im", "im_seconds")
    }
    apc = _ApcFold(params)
    next_im = 0.0
    im_every = config.im_sample_seconds
    if im_every is None:
        im_every = float(path.seconds[-1] - path.seconds[0]) / IM_SAMPLES
    start = 1
    last_seconds = 0.0
    base_vol = np.array([float(engine.market.base.vol[c]) for c in columns])
    next_vol = config.vol_update_seconds
    window, window_seconds, window_price = 0, 0.0, path.prices[0].copy()  # where the vol window starts
    ewma = _Ewma(base_vol, params, config.block_seconds)
    pending_vol: list[FeedRecord] = []
    ratio = None if path.source_ratio is None else path.source_ratio.tolist()
    seconds, prices, depth = path.seconds.tolist(), path.prices.tolist(), path.depth.tolist()
    for b, stop in enumerate(bounds.tolist()):
        records: list[FeedRecord] = []
        for t in range(start, stop):
            when = market.time + timedelta(seconds=seconds[t])
            decay = 0.5 ** ((seconds[t] - last_seconds) / half_life) if half_life > 0 else 0.0
            impact = [i * decay for i in impact]
            last_seconds = seconds[t]
            for j, asset in enumerate(path.assets):
                price = prices[t][j] * math.exp(impact[j])
                if ratio is None:
                    records.append(Quote(seq=seq, time=when, asset=asset, price=price))
                    seq += 1
                else:
                    for name, r in zip(path.sources, ratio[t][j], strict=True):
                        records.append(Quote(seq=seq, time=when, asset=asset, price=price * r, source=name))
                        seq += 1
                if depth[t][j] != depth_now[j]:
                    depth_now[j] = depth[t][j]
                    records.append(DepthChange(seq=seq, time=when, asset=asset, scale=depth_now[j]))
                    seq += 1
        start = max(start, stop)
        if not records:
            continue
        records = [*records, *_renumbered(pending_vol, seq, records[-1].time)]
        seq += len(pending_vol)
        pending_vol = []
        published.clear()
        engine.run_batch(records)
        units = [0.0] * n_assets
        for e in published:
            if isinstance(e, ev.LiquidationExecuted):
                i = engine.store.instrument_row[e.instrument]
                if on_path[i] >= 0:
                    units[on_path[i]] += e.quantity * size[i]
        if config.impact:
            for j, net in enumerate(units):
                if net == 0.0:
                    continue
                liquidity = base_liquidity[j].scaled(depth_now[j])
                side = liquidity.bid if net < 0.0 else liquidity.ask
                if side is not None:
                    distance = min(fill_distance(side, abs(net)), 0.99)
                    impact[j] += math.log(1.0 - distance) if net < 0.0 else math.log(1.0 + distance)
        t_last = stop - 1
        now_seconds = seconds[t_last]
        series["seconds"].append(now_seconds)
        series["point"].append(t_last)
        series["impact"].append(list(impact))
        series["liquidated"].append(engine.totals.liquidated_notional)  # the figure the totals report
        series["fund"].append(engine.fund)
        totals = engine.totals
        series["debt"].append(totals.fund_paid + totals.socialised + totals.unresolved)
        if now_seconds >= next_im:
            charged, bare = apc.shares(engine, now_seconds)
            series["im"].append(charged)
            series["bare_im"].append(bare)
            series["im_seconds"].append(now_seconds)
            next_im = now_seconds + im_every
        if b in sampled and config.factor_samples > 0:
            notional = _notional(engine)
            terms = engine.margin_now().terms
            factor_seconds.append(now_seconds)
            factor_rows.append(
                {name: float(v.sum()) / notional if notional > 0.0 else math.nan for name, v in terms.items()}
            )
        if next_vol is not None and now_seconds >= next_vol:
            recent = _traded(path, series, window)
            returns = np.diff(np.log(np.vstack([window_price, recent])), axis=0)
            if config.vol_estimator == "ewma":
                estimate = ewma.update(returns)
            else:
                elapsed = (now_seconds - window_seconds) / (365.0 * 86400.0)
                realised = np.sqrt((returns**2).sum(axis=0) / elapsed) if elapsed > 0 else base_vol
                estimate = np.maximum(realised, base_vol)
            pending_vol = [
                VolChange(seq=0, time=records[-1].time, asset=a, vol=max(float(v), MIN_VOL))
                for a, v in zip(path.assets, estimate.tolist(), strict=True)
            ]
            window, window_seconds, window_price = len(series["seconds"]), now_seconds, recent[-1]
            next_vol = now_seconds + float(config.vol_update_seconds or 0.0)
        if progress is not None:
            progress(b + 1, cycles)
    traded_path = _traded(path, series, 0)
    exogenous = path.prices[np.array(series["point"], dtype=np.int64)] if series["point"] else np.zeros((0, n_assets))
    summary = engine.summary()
    f = engine.figures
    flagged = int(np.count_nonzero(~np.isnan(f.first_flag)))
    breached_later = summary["accounts_ever_liquidatable"] - summary["liquidatable_at_start"]
    totals_out = {
        "model": model,
        "accounts": book.n_accounts,
        "bad_debt": float(series["debt"][-1]) if series["debt"] else 0.0,
        "insurance_fund_paid": summary["insurance_fund_paid"],
        "socialised_loss": summary["socialised_loss"],
        "unresolved_loss": summary["unresolved_loss"],
        "liquidation_trades": summary["liquidation_trades"],
        "liquidated_notional": summary["liquidated_notional"],
        # accounts below MM at the opening (an unfitted population) are counted apart, not as the model's result
        "accounts_liquidated": breached_later,
        "liquidatable_at_start": summary["liquidatable_at_start"],
        "capital_locked": float(np.mean(series["im"])) if series["im"] else math.nan,
        "flagged": flagged,
        "flagged_before_breach": summary["flagged_before_breach"],
        "hit_rate": summary["flagged_before_breach"] / breached_later if breached_later else None,
        # flagged early, yet never liquidatable during the run
        "false_alarms": int(np.count_nonzero(~np.isnan(f.first_flag) & np.isnan(f.first_liquidatable))),
        "lead_seconds_median": summary["lead_seconds_median"],
        "max_impact": float(-np.min(np.log(traded_path / exogenous))) if series["point"] else 0.0,
        "fund_end": engine.fund,
        "accounts_remargined": engine.totals.remargined,
    }
    return CascadeResult(
        model=model,
        seconds=np.array(series["seconds"]),
        traded=traded_path,
        exogenous=exogenous,
        liquidated=np.array(series["liquidated"]),
        fund=np.array(series["fund"]),
        bad_debt=np.array(series["debt"]),
        im_seconds=np.array(series["im_seconds"]),
        im_share=np.array(series["im"]),
        im_share_without_apc=np.array(series["bare_im"]),
        factor_seconds=np.array(factor_seconds),
        factors={
            name: np.array([row.get(name, 0.0) for row in factor_rows])
            for name in (factor_rows[0] if factor_rows else {})
        },
        totals=totals_out,
        wall_seconds=time.perf_counter() - begin,
    )


def _traded(path: PricePath, series: dict[str, list[Any]], first: int) -> FloatArray:
    """(B - first, A) the traded price at the end of each cycle from `first` on: the path's price times exp(I_a)."""
    points = np.array(series["point"][first:], dtype=np.int64)
    impacts = np.array(series["impact"][first:], dtype=np.float64).reshape(points.size, path.prices.shape[1])
    traded: FloatArray = path.prices[points] * np.exp(impacts)
    return traded


def _check_sources(market: MarketSnapshot, path: PricePath, config: CascadeConfig) -> None:
    """ValueError unless the config, the path and the snapshot agree on the oracle sources."""
    if config.oracle_sources != len(path.sources):
        raise ValueError(
            f"oracle_sources: the config asks for {config.oracle_sources}, the path has {len(path.sources)}"
        )
    for asset in path.assets if path.sources else ():
        quote = market.assets.get(asset)
        declared = sorted(s.name for s in quote.sources) if quote is not None else []
        if declared != sorted(path.sources):
            raise ValueError(f"market: {asset} must declare the path's sources {list(path.sources)}, has {declared}")


def _renumbered(records: list[FeedRecord], seq: int, when: datetime) -> list[FeedRecord]:
    """`records` (vol records made at the end of the last cycle) numbered from `seq` at time `when`."""
    import msgspec

    return [msgspec.structs.replace(r, seq=seq + k, time=when) for k, r in enumerate(records)]


def _notional(engine: StreamEngine) -> float:
    """Total gross notional of every open position now, USD (every store slot: a spare one holds quantity 0)."""
    store = engine.store
    inst = store.pos_instrument
    return float((np.abs(store.pos_quantity) * store.contract_size[inst] * engine.market.state.forward[inst]).sum())


#: The least volatility sent in a `vol` record (a path standing still has a zero EWMA; the quote needs > 0).
MIN_VOL = 1e-6


class _Ewma:
    """The engine's EWMA (`market.volatility.ewma_variance`) over cycle returns, carried across vol epochs: the
    variance per cycle starts at the snapshot's vol, its decay is the daily lambda taken to the cycle."""

    def __init__(self, start_vol: FloatArray, params: MarginParams, block_seconds: float) -> None:
        self.cycle_years = block_seconds / (params.days_per_year * 86_400.0)
        self.lam = params.volatility.ewma_lambda ** (block_seconds / 86_400.0)
        self.variance = start_vol**2 * self.cycle_years  # the one-step forecast, per cycle

    def update(self, returns: FloatArray) -> FloatArray:
        """Fold the cycle returns (n, A) in; the annualised volatility forecast after them (A,)."""
        if returns.shape[0]:
            path = ewma_variance(returns, self.lam, self.variance)
            self.variance = (1.0 - self.lam) * returns[-1] ** 2 + self.lam * path[-1]
        return np.asarray(np.sqrt(self.variance / self.cycle_years), dtype=np.float64)


class _ApcFold:
    """The venue's total IM over its gross notional, taken afresh at each sample (under the screen the stored
    figures of most accounts date from an earlier cycle), with and without the anti-procyclicality buffer.
    With `apc_mode` "buffer" and `apc_buffer_release`, under a model that charges the buffer (`multi`; not a
    venue rule), each account's margin without the buffer is carried
    through `engine.apc` from sample to sample (drawn while it rises, rebuilt in calm), as the backtest carries
    it along dates; otherwise the IM is as the engine charges it (a fixed buffer, or none)."""

    def __init__(self, params: MarginParams) -> None:
        self.volatility = params.volatility
        self.release = params.volatility.apc_mode == "buffer" and params.volatility.apc_buffer_release
        self.state: ApcBufferState | None = None
        self.seconds = 0.0

    def shares(self, engine: StreamEngine, now_seconds: float) -> tuple[float, float]:
        """(charged IM, IM without the buffer), each over the total notional now."""
        total = _notional(engine)
        result = engine.margin_now()
        bare = result.im - result.terms.get("apc_buffer", 0.0)
        charged = result.im
        if self.release and "apc_buffer" in result.terms:  # a venue rule charges no buffer
            if self.state is None:
                self.state = initial_buffer(bare, self.volatility)
            else:
                dt_days = (now_seconds - self.seconds) / 86_400.0
                self.state = update_buffer(self.state, bare, dt_days, self.volatility)
            charged = self.state.charged
            self.seconds = now_seconds
        if total <= 0.0:
            return math.nan, math.nan
        return float(charged.sum()) / total, float(bare.sum()) / total
