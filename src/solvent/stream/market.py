"""The live market of a stream: the starting snapshot plus everything the feed has changed since.

The base `MarketState` is built from the snapshot by the same code as `solvent margin`; the feed then
overlays, per asset, the price (a direct quote, or the aggregate of the asset's oracle sources with the
stream's own TWAP), the oracle uncertainty and status, a depth scale, a new volatility and Mango's stable
price of the assets priced from oracle sources (market/stable_price.py: it follows each new aggregate tick
by tick, and the state carries it for the `stable_price` IM term). Between
epochs (a volatility or parameter change) time to expiry and option vols stay as they were at the
epoch's start (sticky strike); forwards follow their asset's price at once.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.formats.schemas import Instrument, MarketSnapshot
from solvent.market.depth import AssetLiquidity
from solvent.market.oracle import aggregate, twap
from solvent.market.stable_price import StablePriceState, reset, update
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]


class LiveMarket:
    """Mutable per-asset overlays on a base market state; `state` is the current immutable view."""

    def __init__(
        self,
        instruments: tuple[Instrument, ...],
        snapshot: MarketSnapshot,
        params: MarginParams,
        source: str,
        portfolio_source: str = "<portfolio>",
    ) -> None:
        self.instruments = instruments
        self.snapshot = snapshot
        self.source = source
        self.portfolio_source = portfolio_source  # the file the instruments came from, named in errors
        self.base = build_market_state(list(instruments), snapshot, params, portfolio_source, source)
        n = len(self.base.assets)
        self.price = self.base.price.copy()
        self.uncertainty = self.base.oracle_uncertainty.copy()
        self.status = self.base.oracle_status.copy()
        self.depth_scale = np.ones(n)
        self.vol_override = np.full(n, math.nan)
        self.epoch = snapshot.time
        self.days_per_year = params.days_per_year
        self.stable: StablePriceState = reset(self.price, snapshot.time.timestamp(), params.oracle.stable_price)
        # Oracle sources per asset: name -> (price, confidence, timestamp seconds); aggregate history (TWAP).
        self.sources: dict[int, dict[str, tuple[float, float, float]]] = {}
        self.history: dict[int, list[tuple[float, float]]] = {}
        self._scaled: tuple[MarketState, bytes, tuple[AssetLiquidity, ...]] | None = None
        self._carried: tuple[tuple[MarketState, datetime], tuple[FloatArray, FloatArray]] | None = None
        for name, quote in snapshot.assets.items():
            if quote.sources:
                a = self.base.asset_index[name]
                self.sources[a] = {s.name: (s.price, s.confidence, s.timestamp.timestamp()) for s in quote.sources}
                self.history[a] = [(snapshot.time.timestamp(), quote.price if quote.twap is None else quote.twap)]
        self.state = self._view()

    @property
    def assets(self) -> tuple[str, ...]:
        """Asset names, in column order."""
        return self.base.assets

    def rebuild(self, params: MarginParams, epoch: datetime) -> None:
        """A new epoch: rebuild the base state (new vols, new parameters) and move time to `epoch`."""
        assets = dict(self.snapshot.assets)
        for a in np.flatnonzero(~np.isnan(self.vol_override)).tolist():
            name = self.base.assets[a]
            assets[name] = msgspec.structs.replace(assets[name], vol=float(self.vol_override[a]))
        snapshot = msgspec.structs.replace(self.snapshot, assets=assets)
        self.base = build_market_state(list(self.instruments), snapshot, params, self.portfolio_source, self.source)
        self.epoch = epoch
        self.days_per_year = params.days_per_year
        self.state = self._view()

    def _view(self) -> MarketState:
        base = self.base
        expiry, growth = self._carry()
        spot = self.price[base.instruments.asset]
        return dataclasses.replace(
            base,
            time=self.epoch,
            price=self.price.copy(),
            forward=spot * growth,
            expiry_years=expiry,
            liquidity=self._liquidity(),
            oracle_sources=np.array([len(self.sources.get(a, ())) for a in range(len(base.assets))], dtype=np.int64),
            oracle_uncertainty=self.uncertainty.copy(),
            oracle_status=self.status.copy(),
            stable_price=self._stable_prices(),
        )

    def _stable_prices(self) -> FloatArray:
        """The stable price of each asset priced from oracle sources, the price itself for the others (a direct
        quote is the venue's own mark); empty when no asset has sources (no `stable_price` term at all)."""
        if not self.sources:
            return np.zeros(0)
        sourced = np.zeros(len(self.price), dtype=np.bool_)
        sourced[list(self.sources)] = True
        return np.where(sourced, self.stable.stable, self.price)

    def _carry(self) -> tuple[FloatArray, FloatArray]:
        """Each instrument's years to expiry in this epoch and its forward over spot, exp(rate x expiry): fixed
        until the next epoch, so computed once for it."""
        key = (self.base, self.epoch)
        if self._carried is None or self._carried[0] != key:
            base = self.base
            elapsed = (self.epoch - self.snapshot.time).total_seconds() / (self.days_per_year * 86400.0)
            expiry = np.where(base.expiry_years > 0.0, np.maximum(base.expiry_years - elapsed, 0.0), 0.0)
            self._carried = (key, (expiry, np.exp(base.rate * expiry)))
        return self._carried[1]

    def _liquidity(self) -> tuple[AssetLiquidity, ...]:
        """The base books scaled by `depth_scale`: the same tuple while neither changes, so that what is derived
        from it once (`factors.liquidity.packed_liquidity`) is reused from cycle to cycle."""
        scale = self.depth_scale.tobytes()
        if self._scaled is None or self._scaled[0] is not self.base or self._scaled[1] != scale:
            factors = self.depth_scale.tolist()
            books = tuple(liq.scaled(f) for liq, f in zip(self.base.liquidity, factors, strict=True))
            self._scaled = (self.base, scale, books)
        return self._scaled[2]

    def refresh(self) -> None:
        """Publish the overlays as a new `state`."""
        self.state = self._view()

    # ----------------------------------------------------------------------------------- updates

    def set_price(self, asset: int, price: float) -> None:
        """A direct quote (an asset without oracle sources)."""
        self.price[asset] = price

    def store_source(self, asset: int, source: str, price: float, confidence: float, stamp: float) -> None:
        """Keep one source's latest quote (aggregated by `aggregate_sources`)."""
        self.sources.setdefault(asset, {})[source] = (price, confidence, stamp)

    def aggregate_sources(self, asset: int, now: float, params: MarginParams) -> None:
        """Re-aggregate an asset's sources at `now` (seconds): median, outliers, staleness, and the TWAP guard
        against the stream's own history of aggregated prices over `oracle.twap_window_s`."""
        table = self.sources[asset]
        names = sorted(table)
        p = np.array([[table[n][0] for n in names]])
        c = np.array([[table[n][1] for n in names]])
        t = np.array([[table[n][2] for n in names]])
        history = self.history.setdefault(asset, [])
        window = params.oracle.twap_window_s
        reference = (
            twap(np.array([h[0] for h in history]), np.array([h[1] for h in history]), window, now)
            if history
            else np.array(math.nan)
        )
        result = aggregate(
            p,
            c,
            t,
            now,
            np.atleast_1d(reference),
            params.oracle,
            vol=self.base.vol[asset : asset + 1],
            days_per_year=params.days_per_year,
        )
        if math.isfinite(result.price[0]):
            self.price[asset] = result.price[0]
            history.append((now, float(result.price[0])))
            while len(history) > 1 and history[1][0] <= now - window:
                history.pop(0)
        self.uncertainty[asset] = result.uncertainty[0] if math.isfinite(result.uncertainty[0]) else self.price[asset]
        self.status[asset] = result.status[0]

    def follow(self, asset: int, now: float, params: MarginParams) -> None:
        """Move the asset's stable price towards its current price at `now` (seconds): one Mango update (assets
        priced from oracle sources only: every account exposed to them is re-margined at each of their quotes)."""
        if asset not in self.sources:
            return
        price = np.full(len(self.price), math.nan)
        price[asset] = self.price[asset]
        self.stable = update(self.stable, now, price, params.oracle.stable_price)

    # ------------------------------------------------------------------------------- persistence

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """The overlays as plain arrays (the state file's `market.*` entries); sources and TWAP history as JSON."""
        return {
            "price": self.price,
            "uncertainty": self.uncertainty,
            "status": self.status,
            "depth_scale": self.depth_scale,
            "vol_override": self.vol_override,
            "epoch": np.array(self.epoch.isoformat()),
            "sources": np.array(msgspec.json.encode({str(a): v for a, v in self.sources.items()}).decode()),
            "history": np.array(msgspec.json.encode({str(a): v for a, v in self.history.items()}).decode()),
            "stable_price": self.stable.stable,
            "stable_last_update": self.stable.last_update,
            "stable_delay": self.stable.delay,
            "stable_accumulated_price": self.stable.accumulated_price,
            "stable_accumulated_time": self.stable.accumulated_time,
            "stable_interval": self.stable.interval,
        }

    def restore(self, arrays: dict[str, NDArray[np.generic]], params: MarginParams) -> None:
        """Put back what `arrays` returned and rebuild the view at the saved epoch."""
        self.price = np.asarray(arrays["price"], dtype=np.float64).copy()
        self.uncertainty = np.asarray(arrays["uncertainty"], dtype=np.float64).copy()
        self.status = np.asarray(arrays["status"], dtype=np.int8).copy()
        self.depth_scale = np.asarray(arrays["depth_scale"], dtype=np.float64).copy()
        self.vol_override = np.asarray(arrays["vol_override"], dtype=np.float64).copy()
        sources = msgspec.json.decode(str(arrays["sources"]), type=dict[str, dict[str, tuple[float, float, float]]])
        history = msgspec.json.decode(str(arrays["history"]), type=dict[str, list[tuple[float, float]]])
        self.sources = {int(a): v for a, v in sources.items()}
        self.history = {int(a): v for a, v in history.items()}
        if "stable_price" in arrays:
            self.stable = StablePriceState(
                stable=np.asarray(arrays["stable_price"], dtype=np.float64).copy(),
                last_update=np.asarray(arrays["stable_last_update"], dtype=np.float64).copy(),
                delay=np.asarray(arrays["stable_delay"], dtype=np.float64).copy(),
                accumulated_price=np.asarray(arrays["stable_accumulated_price"], dtype=np.float64).copy(),
                accumulated_time=np.asarray(arrays["stable_accumulated_time"], dtype=np.float64).copy(),
                interval=np.asarray(arrays["stable_interval"], dtype=np.int64).copy(),
            )
        else:  # a state file written before the stable price: it starts at the saved prices
            epoch = datetime.fromisoformat(str(arrays["epoch"])).timestamp()
            self.stable = reset(self.price, epoch, params.oracle.stable_price)
        self.rebuild(params, datetime.fromisoformat(str(arrays["epoch"])))
