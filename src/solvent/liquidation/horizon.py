"""Two horizons: IM over the margin period of risk, MM over the engine's own liquidation horizon.

docs/model.md ("Maintenance margin on the liquidation horizon"). IM covers `mpor_days` (EMIR RTS
153/2013 art. 26: at least two business days for instruments other than OTC derivatives): the time for
a breach of MM to be found, the account to be closed out and the position re-hedged, with the
member's top-up window. MM only has to cover the close-out the engine itself runs once MM is breached:

    slices_n = max(ceil(1 / max_share_per_slice),                      the share cap per slice
                   ceil(gross_n / max_notional_per_slice),             the notional cap (if any)
                   max_a ceil(|x_{n,a}| / D_a^side))                   the stressed depth within
                                                                       concentration.depth_distance
    H_n      = detection + (slices_n - 1) x cooldown_seconds         detection: predictive.horizon_seconds
    MM_n     = min(IM_n, max(floor x IM_n,
                   tier_n x (market_risk_n x sqrt(min(H_n, H_IM) / H_IM) + liquidity_n + oracle_n)))

x the account's net delta notional per asset (USD), D^side the stressed depth on the side it closes into
(bid for a long), H_IM = mpor_days in seconds. Positions are closed in parallel, one slice of each per
round (the proportional method), so the slowest asset sets the count. The market risk scales by the
square root of time (diffusive moves, exact for a linear book under the grid); the close-out cost and
the oracle band do not shrink with the horizon. The floor keeps MM from the absurdly small figure the
square root gives on a few minutes (sqrt(180 s / 2 d) = 3.2%): price gaps, oracle delays and a market
that halts are not diffusive. Its default 0.5 is Hyperliquid's ratio (maintenance margin half the
initial margin at maximum leverage); dYdX v4's genesis tiers give 0.5-0.6 (Large-Cap MMF 1.2% / IMF 2%,
Mid-Cap 3% / 5%, Small-Cap 5% / 10%; REFERENCES.md).

Pure functions over (N, A) arrays; the slice count is one parallel numba pass over the accounts' net deltas
(`_slice_counts`), no (N, A) temporaries: it is on the default `margin_book` path.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.factors.concentration import stressed_depth
from solvent.factors.held import HeldAssets, every_asset
from solvent.market.state import MarketState
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]

#: Seconds per day, for `mpor_days`.
SECONDS_PER_DAY = 86_400.0


@jit(parallel=True)
def _slice_counts(
    offsets: NDArray[np.int64],
    asset: NDArray[np.int64],
    delta: FloatArray,
    price: FloatArray,
    base: float,
    max_notional: float,
    depth_bid: FloatArray,
    depth_ask: FloatArray,
) -> FloatArray:  # pragma: no cover - compiled
    """(N,) slices per account from its net deltas on its held rows (delta (H,) on assets `asset`, rows
    offsets[n]..offsets[n + 1]) x price (A,): the share cap's `base`, the notional cap (`max_notional` <= 0:
    none) and the depth per side (+inf: no bound; 0: inf slices); 0 when flat."""
    n_accounts = offsets.shape[0] - 1
    out = np.empty(n_accounts)
    for n in prange(n_accounts):
        gross = 0.0
        count = base
        traded = False
        for h in range(offsets[n], offsets[n + 1]):
            a = asset[h]
            x = delta[h] * price[a]
            size = abs(x)
            if size > 0.0:
                traded = True
                gross += size
                side = depth_bid[a] if x >= 0.0 else depth_ask[a]
                by_depth = np.inf if side <= 0.0 else np.ceil(size / side)
                count = max(count, by_depth)
        if max_notional > 0.0:
            count = max(count, np.ceil(gross / max_notional))
        out[n] = count if traded else 0.0
    return out


def _slices(
    delta: FloatArray,
    price: FloatArray,
    max_share: float,
    max_notional: float | None,
    depth_bid: FloatArray | None,
    depth_ask: FloatArray | None,
    held: HeldAssets | None = None,
) -> FloatArray:
    """`_slice_counts` from net deltas (N, A), or (H,) on the rows of `held`."""
    n_assets = price.shape[0]
    if held is None:
        held = every_asset(delta.shape[0], n_assets)
        delta = np.ascontiguousarray(delta).reshape(-1)
    no_depth = np.full(n_assets, np.inf)
    out: FloatArray = _slice_counts(
        held.offsets,
        held.asset,
        np.ascontiguousarray(delta, dtype=np.float64),
        np.ascontiguousarray(price, dtype=np.float64),
        float(math.ceil(1.0 / max_share - 1e-12)),
        -1.0 if max_notional is None else float(max_notional),
        no_depth if depth_bid is None or depth_ask is None else np.ascontiguousarray(depth_bid, dtype=np.float64),
        no_depth if depth_bid is None or depth_ask is None else np.ascontiguousarray(depth_ask, dtype=np.float64),
    )
    return out


def slices_needed(
    notional: FloatArray,
    max_share: float,
    max_notional: float | None,
    depth_bid: FloatArray | None = None,
    depth_ask: FloatArray | None = None,
) -> FloatArray:
    """(N,) slices the close-out of each account needs (module docstring); at least 1 (0 for a flat account).

    notional (N, A): signed net delta notional, USD. depth_bid / depth_ask (A,): USD a slice may take on
    each side (+inf where unknown); None: no depth bound.
    """
    x = np.asarray(notional, dtype=np.float64)
    return _slices(x, np.ones(x.shape[1]), max_share, max_notional, depth_bid, depth_ask)


def liquidation_horizon_seconds(slices: FloatArray, params: MarginParams) -> FloatArray:
    """(N,) H = detection + (slices - 1) x cooldown, capped at the IM horizon (0 slices: the detection alone)."""
    detection = params.predictive.horizon_seconds
    cooldown = params.liquidation.cooldown_seconds
    horizon = detection + np.maximum(slices - 1.0, 0.0) * cooldown
    out: FloatArray = np.minimum(horizon, params.mpor_days * SECONDS_PER_DAY)
    return out


def horizon_maintenance(
    im: FloatArray,
    market_risk: FloatArray,
    close_out: FloatArray,
    tier: FloatArray,
    horizon_seconds: FloatArray,
    params: MarginParams,
) -> FloatArray:
    """(N,) MM on the liquidation horizon (module docstring). close_out (N,): the terms that do not scale with
    time (liquidity + basis + oracle); tier (N,): the risk-tier multiplier."""
    scale = np.sqrt(np.minimum(horizon_seconds / (params.mpor_days * SECONDS_PER_DAY), 1.0))
    mm = np.maximum(params.maintenance.floor * im, tier * (market_risk * scale + close_out))
    out: FloatArray = np.minimum(mm, im)
    return out


def account_horizons(
    greeks: FloatArray, state: MarketState, params: MarginParams, held: HeldAssets | None = None
) -> FloatArray:
    """(N,) each account's liquidation horizon in seconds from its Greeks (N, A, 3), or (H, 3) on the rows of
    `held`, at `state`."""
    bid: FloatArray | None = None
    ask: FloatArray | None = None
    if state.liquidity:
        bid, ask = stressed_depth(
            state.liquidity, state.price, params.concentration.depth_distance, params.liquidity.stress
        )
    liquidation = params.liquidation
    delta = greeks[:, :, 0] if held is None else greeks[:, 0]
    slices = _slices(
        delta, state.price, liquidation.max_share_per_slice, liquidation.max_notional_per_slice, bid, ask, held
    )
    return liquidation_horizon_seconds(slices, params)


def liquidation_maintenance(
    greeks: FloatArray,
    state: MarketState,
    params: MarginParams,
    im: FloatArray,
    terms: dict[str, FloatArray],
    tier: FloatArray,
    held: HeldAssets | None = None,
) -> FloatArray:
    """(N,) MM of `maintenance.mode` "liquidation" from the IM terms (market_risk, liquidity, basis, oracle) and
    tier (the basis contingency, like the close-out, does not scale with time); greeks (N, A, 3), or (H, 3) on
    the rows of `held`."""
    close_out = terms.get("liquidity", 0.0) + terms.get("basis", 0.0) + terms.get("oracle", 0.0)
    horizon = account_horizons(greeks, state, params, held)
    return horizon_maintenance(im, terms["market_risk"], np.asarray(close_out + 0.0 * im), tier, horizon, params)
