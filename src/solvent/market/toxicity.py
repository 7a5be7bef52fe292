"""Order-flow toxicity: VPIN on volume buckets with bulk volume classification.

Easley, Lopez de Prado and O'Hara (2012), "Flow toxicity and liquidity in a high-frequency world", Review of
Financial Studies 25(5) (REFERENCES.md). Time bars are classified in bulk, not trade by trade: a bar's volume
V_i splits into buy volume V_i x Z(dP_i / sigma_dP) and sell volume V_i - V_i x Z(dP_i / sigma_dP), Z the
standard normal CDF, dP_i the bar's price change and sigma_dP the standard deviation of price changes. Here dP
is the log return (scale-free over a history whose price level moves tenfold) and sigma is passed per bar, so
that a backtest can use a causal estimate (`causal_sigma`); the paper's is the sample's.

The classified volume then fills equal volume buckets of size V in time order; a bar that straddles a bucket
boundary is split in proportion to its volume (the buy share of a bar is uniform inside it). With V^B_k and
V^S_k the buy and sell volume of bucket k, the paper's estimate over the last n buckets is

    VPIN_k = sum_{j = k - n + 1}^{k} |V^S_j - V^B_j| / (n V)                 (the paper's eq. (5); n = 50)

in [0, 1]: 0 for balanced flow, 1 when every bucket is one-sided. A bar's VPIN is that of the last bucket
completed by the end of the bar (NaN before n buckets are complete): what a venue knows at that bar's close.

Pure numpy over arrays (O(T), no loop over bars): the buckets come from the cumulative buy volume, a
piecewise-linear function of the cumulative volume, read at the bucket boundaries. `_bucket_volumes_slow` in
the tests, a unit-by-unit fill, is its obviously correct twin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

FloatArray = NDArray[np.float64]

#: Buckets per VPIN estimate in the paper (n = 50; one day of buckets at V = daily volume / 50).
PAPER_WINDOW = 50


def bulk_buy_fraction(price_change: FloatArray, sigma: FloatArray | float) -> FloatArray:
    """(T,) the buy share of each bar's volume, Z(dP / sigma): 0.5 for an unchanged price (NaN sigma or dP: 0.5)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(price_change, dtype=np.float64) / sigma
    share: FloatArray = np.where(np.isnan(z), 0.5, ndtr(np.nan_to_num(z, nan=0.0)))
    return share


def causal_sigma(price_change: FloatArray, window: int) -> FloatArray:
    """(T,) the standard deviation of the finite price changes among the `window` bars before each bar (not the
    bar's own: causal); NaN until two are known. The paper's sigma_dP as a rolling estimate, without look-ahead."""
    dp = np.asarray(price_change, dtype=np.float64)
    known = np.isfinite(dp)
    x = np.where(known, dp, 0.0)
    c0 = np.concatenate(([0.0], np.cumsum(known)))
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    end = np.arange(dp.size)
    start = np.maximum(end - window, 0)
    n = c0[end] - c0[start]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (c1[end] - c1[start]) / n
        var = (c2[end] - c2[start] - n * mean**2) / (n - 1.0)
    out: FloatArray = np.where(n >= 2.0, np.sqrt(np.maximum(var, 0.0)), np.nan)
    return out


@dataclass(frozen=True, eq=False)
class VolumeBuckets:
    """K complete buckets of `size` volume each: buy (K,), sell (K,) volume and the bar (K,) that completes each."""

    size: float
    buy: FloatArray
    sell: FloatArray
    end_bar: NDArray[np.int64]


def volume_buckets(volume: FloatArray, buy_fraction: FloatArray, size: float) -> VolumeBuckets:
    """Fill equal buckets of `size` with the bars' volume (T,) in time order, each bar's buy share uniform
    inside it; a partly filled last bucket is left out."""
    if not size > 0.0:
        raise ValueError(f"size: must be > 0, got {size!r}")
    v = np.asarray(volume, dtype=np.float64)
    if v.size and not (np.isfinite(v).all() and (v >= 0.0).all()):
        raise ValueError("volume: every bar's volume must be finite and >= 0")
    cum = np.concatenate(([0.0], np.cumsum(v)))
    cum_buy = np.concatenate(([0.0], np.cumsum(v * np.asarray(buy_fraction, dtype=np.float64))))
    n_buckets = int(cum[-1] // size)
    bounds = size * np.arange(n_buckets + 1, dtype=np.float64)
    # a bar of zero volume adds a repeated knot, which np.interp takes as a step of zero width: harmless
    buy = np.diff(np.interp(bounds, cum, cum_buy))
    end_bar = np.minimum(np.searchsorted(cum, bounds[1:], side="left") - 1, v.size - 1).astype(np.int64)
    return VolumeBuckets(size=size, buy=buy, sell=size - buy, end_bar=end_bar)


def vpin_by_bucket(buckets: VolumeBuckets, window: int = PAPER_WINDOW) -> FloatArray:
    """(K,) VPIN after each bucket: the mean order imbalance |V^S - V^B| / V of the last `window` buckets
    (NaN for the first window - 1)."""
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window!r}")
    imbalance = np.abs(buckets.sell - buckets.buy)
    c = np.concatenate(([0.0], np.cumsum(imbalance)))
    out = np.full(imbalance.size, np.nan)
    if imbalance.size >= window:
        out[window - 1 :] = (c[window:] - c[:-window]) / (window * buckets.size)
    return out


def vpin_by_bar(buckets: VolumeBuckets, n_bars: int, window: int = PAPER_WINDOW) -> FloatArray:
    """(T,) each bar's VPIN: that of the last bucket complete at the bar's end (NaN before `window` buckets)."""
    per_bucket = vpin_by_bucket(buckets, window)
    last = np.searchsorted(buckets.end_bar, np.arange(n_bars), side="right") - 1
    out: FloatArray = np.where(last >= 0, per_bucket[np.maximum(last, 0)], np.nan)
    return out


def vpin(
    price: FloatArray,
    volume: FloatArray,
    bucket_size: float,
    *,
    window: int = PAPER_WINDOW,
    sigma_window: int | None = None,
) -> FloatArray:
    """(T,) VPIN per bar of a bar series of closes and volumes: bulk classification on log returns with a
    causal sigma over `sigma_window` bars (default: the whole past), buckets of `bucket_size`, `window` buckets."""
    p = np.asarray(price, dtype=np.float64)
    change = np.concatenate(([np.nan], np.diff(np.log(p))))
    sigma = causal_sigma(change, sigma_window or max(p.size, 2))
    buckets = volume_buckets(volume, bulk_buy_fraction(change, sigma), bucket_size)
    return vpin_by_bar(buckets, p.size, window)
