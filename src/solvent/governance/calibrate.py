"""The calibrator: targets for the governed parameters from market data (docs/model.md, "Adaptive parameters").

Each target is a plain rule over the current market snapshot, the book and (optionally) earlier snapshots; the
proposal (governance.proposal) then moves each parameter one bounded step toward it. Over the assets the book
trades (the underlyings of its positions):

- `volatility.vol_floor` = FLOOR_SHARE x the smallest long-run volatility (`vol_long`, else `vol`): a floor
  that binds only when an asset is far calmer than its own history says it can be;
- `volatility.apc_buffer` = the median of vol_long / vol - 1, within [0.25, 1]: a buffer that covers a return
  of today's volatility to its long-run level (large in calm markets, down to EMIR's 25% minimum in stress);
- `concentration.threshold` = the median of min(OI_SHARE x open interest, stressed depth within
  `concentration.depth_distance`, USD): the size past which a position is large for the asset's market;
- `liquidity.stress` = the largest thinning seen: max over assets of the median depth of the snapshots over
  the smallest (size within `depth_distance` of mid, the thinner side), at least 1; needs two snapshots or more.

An external signal's multiplier (governance.signals) may scale the vol floor or the liquidity stress target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from solvent.api import compute_margin
from solvent.engine.book import Book
from solvent.factors.concentration import depth_within, open_interest_of, stressed_depth
from solvent.formats.schemas import MarketSnapshot
from solvent.market.depth import depth_curves
from solvent.market.history import PriceHistory
from solvent.market.state import build_market_state
from solvent.params import MarginParams

#: The vol floor target as a share of the calmest traded asset's long-run volatility.
FLOOR_SHARE: Final = 0.25
#: The share of an asset's open interest past which a position counts as concentrated.
OI_SHARE: Final = 0.10
#: EMIR RTS 153/2013 art. 28(1)(a): the buffer is at least 25%; solvent caps the target at 100%.
APC_RANGE: Final = (0.25, 1.0)

SignalTarget = Literal["vol_floor", "liquidity_stress"]


@dataclass(frozen=True)
class Target:
    """A governed parameter's calibrated value (before its step bound) and the rule's figures, in words."""

    path: str
    value: float
    reason: str


def calibrate(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    *,
    history: PriceHistory | None = None,
    depth_history: Sequence[MarketSnapshot] = (),
    signal_multiplier: float = 1.0,
    signal_target: SignalTarget = "vol_floor",
) -> list[Target]:
    """The targets the market data supports (a rule without its inputs gives none). `history`: the price
    history, for the scenario methods that need one (fhs) when the book is margined for its open interest."""
    traded = sorted({book.instruments[i].underlying for i in np.unique(book.pos_instrument)})
    quotes = {a: market.assets[a] for a in traded if a in market.assets}
    targets: list[Target] = []
    long_run = {a: q.vol_long if q.vol_long is not None else q.vol for a, q in quotes.items()}
    known = {a: v for a, v in long_run.items() if v is not None}
    if known:
        calmest = min(known, key=lambda a: known[a])
        scale = signal_multiplier if signal_target == "vol_floor" else 1.0
        reason = f"{FLOOR_SHARE} x long-run vol {known[calmest]:.4g} of {calmest}" + _scaled(scale)
        targets.append(Target("volatility.vol_floor", FLOOR_SHARE * known[calmest] * scale, reason))
    ratios = [q.vol_long / q.vol for q in quotes.values() if q.vol_long is not None and q.vol]
    if ratios:
        level = float(np.clip(np.median(ratios) - 1.0, *APC_RANGE))
        reason = f"median vol_long / vol - 1 = {np.median(ratios) - 1.0:.4g}, within {APC_RANGE}"
        targets.append(Target("volatility.apc_buffer", level, reason))
    threshold = _concentration_target(book, market, params, history, traded)
    if threshold is not None:
        targets.append(threshold)
    stress = _stress_target(market, depth_history, params, traded)
    if stress is not None:
        scale = signal_multiplier if signal_target == "liquidity_stress" else 1.0
        targets.append(Target(stress.path, stress.value * scale, stress.reason + _scaled(scale)))
    return targets


def _scaled(scale: float) -> str:
    return "" if scale == 1.0 else f", x {scale:.4g} (signal)"


def _concentration_target(
    book: Book, market: MarketSnapshot, params: MarginParams, history: PriceHistory | None, traded: list[str]
) -> Target | None:
    result = compute_margin(book, market, params, history)
    state = result.market if result.market is not None else build_market_state(list(book.instruments), market, params)
    oi = open_interest_of(np.ascontiguousarray(result.greeks[:, :, 0]), state.price)
    if state.liquidity:
        bid, ask = stressed_depth(
            state.liquidity, state.price, params.concentration.depth_distance, params.liquidity.stress
        )
        depth = np.minimum(bid, ask)
    else:
        depth = np.full(oi.shape, math.inf)
    index = state.asset_index
    per_asset = [min(OI_SHARE * oi[index[a]], depth[index[a]]) for a in traded if a in index]
    per_asset = [v for v in per_asset if math.isfinite(v) and v > 0.0]
    if not per_asset:
        return None
    value = float(np.median(per_asset))
    return Target(
        "concentration.threshold", value, f"median over {len(per_asset)} assets of min({OI_SHARE} x OI, depth)"
    )


def _stress_target(
    market: MarketSnapshot, history: Sequence[MarketSnapshot], params: MarginParams, traded: list[str]
) -> Target | None:
    snapshots = [*history, market]
    if len(snapshots) < 2:
        return None
    distance = params.concentration.depth_distance
    worst, where = 1.0, ""
    for asset in traded:
        sizes = []
        for snapshot in snapshots:
            quote = snapshot.assets.get(asset)
            if quote is None or quote.depth is None:
                continue
            bid, ask = depth_curves(quote.depth)
            sizes.append(min(depth_within(bid, distance), depth_within(ask, distance)))
        if len(sizes) >= 2 and min(sizes) > 0.0:
            drop = float(np.median(sizes) / min(sizes))
            if drop > worst:
                worst, where = drop, f" ({asset}: median depth / smallest = {drop:.4g})"
    return Target("liquidity.stress", worst, f"largest observed depth drop over {len(snapshots)} snapshots{where}")
