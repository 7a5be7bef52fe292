"""Backtests of a margin requirement series against realised losses.

An *exception* is a day on which the realised loss exceeds the requirement (``loss > requirement``; a loss
equal to the requirement is covered). For a requirement built at coverage ``c`` (0.99 for a 99% margin) a
correct model has exceptions that are independent Bernoulli(p) draws with ``p = 1 - c``. Three views:

- Kupiec (1995), proportion of failures: LR_pof = -2 ln[(1-p)^(T-N) p^N / ((1-N/T)^(T-N) (N/T)^N)],
  chi-square(1) under the null. The 95% non-rejection regions are tabulated in Jorion, *Value at Risk*.
- Christoffersen (1998), "Evaluating interval forecasts", IER 39(4): with n_ij the number of days in state i
  followed by a day in state j (1 = exception), pi_0 = n01 / (n00 + n01), pi_1 = n11 / (n10 + n11),
  pi = (n01 + n11) / (n00 + n01 + n10 + n11),
  LR_ind = -2 ln[(1-pi)^(n00+n10) pi^(n01+n11) / ((1-pi_0)^n00 pi_0^n01 (1-pi_1)^n10 pi_1^n11)], chi-square(1),
  and LR_cc = LR_pof + LR_ind, chi-square(2).
- Basel Committee on Banking Supervision (1996), "Supervisory framework for the use of backtesting in
  conjunction with the internal models approach": the zone of k exceptions in T observations is green while
  the binomial P(X <= k) < 95%, yellow while it is < 99.99%, red beyond (250 days at 99%: green 0-4,
  yellow 5-9, red 10+).

Degenerate counts are handled the standard way, with 0 ln 0 = 0 (the limit; `scipy.special.xlogy`): N = 0 gives
LR_pof = -2 T ln(1-p), N = T gives -2 T ln p; a transition row with no observations (no day in state 1 before
the last day, say) contributes nothing to either likelihood, so its probability never enters; with no
exception at all, or exceptions only, LR_ind = 0. Statistics are clipped at 0 against rounding.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy
from scipy.stats import binom, chi2

Zone = Literal["green", "yellow", "red"]
#: The Basel zones in order of severity.
ZONES: tuple[Zone, ...] = ("green", "yellow", "red")
#: Green while P(X <= k) is below this (Basel Committee 1996).
GREEN_BELOW = 0.95
#: Yellow while P(X <= k) is below this, red from here on (Basel Committee 1996).
YELLOW_BELOW = 0.9999


@dataclass(frozen=True)
class KupiecResult:
    """Kupiec's proportion-of-failures test: N exceptions in T observations at coverage c."""

    observations: int
    exceptions: int
    coverage: float
    lr: float
    p_value: float
    level: float
    reject: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready scalars."""
        return asdict(self)


@dataclass(frozen=True)
class ChristoffersenResult:
    """Christoffersen's independence and conditional-coverage tests, with the transition counts."""

    n00: int
    n01: int
    n10: int
    n11: int
    lr_ind: float
    p_value_ind: float
    lr_cc: float
    p_value_cc: float
    level: float
    reject_ind: bool
    reject_cc: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready scalars."""
        return asdict(self)


@dataclass(frozen=True)
class TrafficLight:
    """The Basel zone of k exceptions in T observations at coverage c, and the binomial P(X <= k)."""

    observations: int
    exceptions: int
    coverage: float
    cumulative_probability: float
    zone: Zone

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready scalars."""
        return asdict(self)


@dataclass(frozen=True)
class BacktestResult:
    """One requirement series backtested: counts, Kupiec, Christoffersen and the Basel zone."""

    observations: int
    exceptions: int
    exception_rate: float
    coverage: float
    kupiec: KupiecResult
    christoffersen: ChristoffersenResult
    traffic_light: TrafficLight

    @property
    def zone(self) -> Zone:
        """The Basel traffic-light zone."""
        return self.traffic_light.zone

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: scalars, and one nested record per test."""
        return {
            "observations": self.observations,
            "exceptions": self.exceptions,
            "exception_rate": self.exception_rate,
            "coverage": self.coverage,
            "zone": self.zone,
            "kupiec": self.kupiec.to_dict(),
            "christoffersen": self.christoffersen.to_dict(),
            "traffic_light": self.traffic_light.to_dict(),
        }


def _probability(name: str, value: float) -> float:
    """`value` as a float strictly inside (0, 1), or ValueError naming it."""
    number = float(value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name}: must be in (0, 1), got {value!r}")
    return number


def _counts(exceptions: int, observations: int) -> tuple[int, int]:
    """(N, T) as ints with T >= 1 and 0 <= N <= T, or ValueError naming the bad one."""
    if isinstance(exceptions, bool) or isinstance(observations, bool):
        raise ValueError(f"exceptions, observations: must be integers, got {exceptions!r}, {observations!r}")
    n, t = operator.index(exceptions), operator.index(observations)
    if t < 1:
        raise ValueError(f"observations: must be >= 1, got {t}")
    if not 0 <= n <= t:
        raise ValueError(f"exceptions: must be in [0, {t}], got {n}")
    return n, t


def _series(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """A finite (T,) float64 series, T >= 1, or ValueError with the first offending value."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty (T,) series, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if np.any(bad):
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{index}]: must be finite, got {float(array[index])!r}")
    return array


def _pof_lr(exceptions: NDArray[np.float64], observations: int, p: float) -> NDArray[np.float64]:
    """Kupiec's LR_pof for each count in `exceptions` (any shape), with 0 ln 0 = 0."""
    n = exceptions
    rest = observations - n
    rate = n / observations
    restricted = xlogy(rest, 1.0 - p) + xlogy(n, p)
    unrestricted = xlogy(rest, 1.0 - rate) + xlogy(n, rate)
    lr: NDArray[np.float64] = np.maximum(-2.0 * (restricted - unrestricted), 0.0)
    return lr


def exceptions(requirement: ArrayLike, loss: ArrayLike) -> NDArray[np.bool_]:
    """(T,) True where the realised loss exceeds the requirement (``loss > requirement``).

    requirement: (T,) the requirement held for each day, finite and >= 0. loss: (T,) the realised loss over
    the same day (positive = loss), finite. NaN, infinite or negative requirements raise ValueError.
    """
    req = _series("requirement", requirement)
    realised = _series("loss", loss)
    if req.shape != realised.shape:
        raise ValueError(f"loss: expected shape {req.shape} like requirement, got {realised.shape}")
    negative = np.flatnonzero(req < 0.0)
    if negative.size:
        index = int(negative[0])
        raise ValueError(f"requirement[{index}]: must be >= 0, got {float(req[index])!r}")
    hits: NDArray[np.bool_] = realised > req
    return hits


def kupiec_pof(exceptions: int, observations: int, coverage: float, *, level: float = 0.05) -> KupiecResult:
    """Kupiec (1995) proportion-of-failures test of N exceptions in T observations at coverage c.

    The failure probability under the null is p = 1 - c. Rejects when the chi-square(1) p-value is below
    `level`. N = 0 and N = T are finite (0 ln 0 = 0).
    """
    n, t = _counts(exceptions, observations)
    c = _probability("coverage", coverage)
    alpha = _probability("level", level)
    lr = float(_pof_lr(np.asarray(n, dtype=np.float64), t, 1.0 - c))
    p_value = float(chi2.sf(lr, 1))
    return KupiecResult(
        observations=t, exceptions=n, coverage=c, lr=lr, p_value=p_value, level=alpha, reject=p_value < alpha
    )


def kupiec_region(observations: int, coverage: float, *, level: float = 0.05) -> tuple[int, int]:
    """(lo, hi), inclusive: the exception counts N that Kupiec's test does not reject in T observations.

    N is not rejected when its chi-square(1) p-value is >= `level` (LR_pof <= chi2.isf(level, 1)). Jorion's
    table writes the same region with strict inequalities, ``lo - 1 < N < hi + 1``.
    """
    _, t = _counts(0, observations)
    c = _probability("coverage", coverage)
    alpha = _probability("level", level)
    counts = np.arange(t + 1, dtype=np.float64)
    kept = np.flatnonzero(chi2.sf(_pof_lr(counts, t, 1.0 - c), 1) >= alpha)
    if kept.size == 0:  # cannot happen for a proper LR (its minimum is near N = pT), but never answer blind
        raise ValueError(f"no exception count is accepted for T={t}, coverage={c!r}, level={alpha!r}")
    lo, hi = int(kept[0]), int(kept[-1])
    if kept.size != hi - lo + 1:
        raise ValueError(f"the non-rejection set for T={t}, coverage={c!r} is not an interval: {kept.tolist()}")
    return lo, hi


def transition_counts(hits: ArrayLike) -> tuple[int, int, int, int]:
    """(n00, n01, n10, n11): the number of days in state i followed by a day in state j (1 = exception).

    hits: (T,) booleans (or 0/1), T >= 2; the counts sum to T - 1.
    """
    flags = np.asarray(hits)
    if flags.ndim != 1 or flags.size < 2:
        raise ValueError(f"hits: expected a (T,) series with T >= 2, got shape {flags.shape}")
    if flags.dtype != np.bool_:
        values = np.asarray(flags, dtype=np.float64)
        bad = ~((values == 0.0) | (values == 1.0))
        if np.any(bad):
            index = int(np.flatnonzero(bad)[0])
            raise ValueError(f"hits[{index}]: must be a boolean or 0/1, got {flags[index]!r}")
        flags = values == 1.0
    before, after = flags[:-1], flags[1:]
    return (
        int(np.count_nonzero(~before & ~after)),
        int(np.count_nonzero(~before & after)),
        int(np.count_nonzero(before & ~after)),
        int(np.count_nonzero(before & after)),
    )


def christoffersen(hits: ArrayLike, coverage: float, *, level: float = 0.05) -> ChristoffersenResult:
    """Christoffersen (1998) independence (LR_ind) and conditional-coverage (LR_cc) tests of an exception series.

    hits: (T,) booleans, T >= 2 (see `exceptions`). LR_ind ~ chi-square(1); LR_cc = LR_pof + LR_ind with
    LR_pof on all T days (Kupiec) ~ chi-square(2). Empty transition rows follow 0 ln 0 = 0 (module docstring).
    """
    n00, n01, n10, n11 = transition_counts(hits)
    c = _probability("coverage", coverage)
    alpha = _probability("level", level)
    row0, row1 = n00 + n01, n10 + n11
    pi0 = n01 / row0 if row0 else 0.0
    pi1 = n11 / row1 if row1 else 0.0
    pi = (n01 + n11) / (row0 + row1)
    restricted = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    unrestricted = xlogy(n00, 1.0 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1.0 - pi1) + xlogy(n11, pi1)
    lr_ind = max(float(-2.0 * (restricted - unrestricted)), 0.0) + 0.0  # + 0.0: never a negative zero
    flags = np.asarray(hits)
    total = int(np.count_nonzero(flags))
    lr_cc = float(_pof_lr(np.asarray(total, dtype=np.float64), int(flags.size), 1.0 - c)) + lr_ind
    p_ind, p_cc = float(chi2.sf(lr_ind, 1)), float(chi2.sf(lr_cc, 2))
    return ChristoffersenResult(
        n00=n00,
        n01=n01,
        n10=n10,
        n11=n11,
        lr_ind=lr_ind,
        p_value_ind=p_ind,
        lr_cc=lr_cc,
        p_value_cc=p_cc,
        level=alpha,
        reject_ind=p_ind < alpha,
        reject_cc=p_cc < alpha,
    )


def traffic_light(exceptions: int, observations: int, coverage: float = 0.99) -> TrafficLight:
    """The Basel (1996) zone of k exceptions in T observations at coverage c, with P(X <= k), X ~ Bin(T, 1 - c).

    Green while P(X <= k) < 95%, yellow while < 99.99%, red beyond.
    """
    k, t = _counts(exceptions, observations)
    c = _probability("coverage", coverage)
    cumulative = float(binom.cdf(k, t, 1.0 - c))
    zone: Zone = "green" if cumulative < GREEN_BELOW else "yellow" if cumulative < YELLOW_BELOW else "red"
    return TrafficLight(observations=t, exceptions=k, coverage=c, cumulative_probability=cumulative, zone=zone)


def backtest(requirement: ArrayLike, loss: ArrayLike, coverage: float, *, level: float = 0.05) -> BacktestResult:
    """Backtest one requirement series (T,) against realised losses (T,), T >= 2, at coverage c.

    Exceptions as in `exceptions`; Kupiec and Christoffersen at test `level`; the Basel zone at coverage c.
    """
    hits = exceptions(requirement, loss)
    if hits.size < 2:
        raise ValueError(f"requirement: a backtest needs T >= 2 observations, got {hits.size}")
    n, t = int(np.count_nonzero(hits)), int(hits.size)
    return BacktestResult(
        observations=t,
        exceptions=n,
        exception_rate=n / t,
        coverage=_probability("coverage", coverage),
        kupiec=kupiec_pof(n, t, coverage, level=level),
        christoffersen=christoffersen(hits, coverage, level=level),
        traffic_light=traffic_light(n, t, coverage),
    )
