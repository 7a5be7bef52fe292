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

**Overlapping windows.** With a margin period of risk of h > 1 steps backtested at every step, the losses of
consecutive dates share h - 1 steps of path: exceptions cluster, and the count N of a correct model is no
longer binomial (daily steps and h = 2: Kupiec's chi-square bound rejects a correct model far more often than
its nominal level). `window_backtest` offers the two sound answers: non-overlapping windows ("independent",
the default: every h-th date, whose N is binomial; its p-values from the exact binomial law of the LR), or
every date with the law of N simulated for overlapping windows ("overlapping": `overlap_law`, a correct
Gaussian model on T overlapping h-step windows). Either law replaces the chi-square in Kupiec's p-value
(`CountLaw`: P(LR >= LR_observed) under it) and the binomial in the Basel zone.

Degenerate counts are handled the standard way, with 0 ln 0 = 0 (the limit; `scipy.special.xlogy`): N = 0 gives
LR_pof = -2 T ln(1-p), N = T gives -2 T ln p; a transition row with no observations (no day in state 1 before
the last day, say) contributes nothing to either likelihood, so its probability never enters; with no
exception at all, or exceptions only, LR_ind = 0. Statistics are clipped at 0 against rounding.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy
from scipy.stats import binom, chi2

Zone = Literal["green", "yellow", "red"]
#: How the dates of an h-step backtest are sampled: every h-th date, or every date (module docstring).
Windows = Literal["independent", "overlapping"]
WINDOWS: tuple[Windows, ...] = ("independent", "overlapping")
#: Paths simulated for the law of the exception count over overlapping windows, and their seed.
OVERLAP_PATHS = 20_000
OVERLAP_SEED = 20130219  # EMIR RTS 153/2013's date of adoption: any fixed seed, so that runs repeat
#: Observations of the rolling Basel traffic light (Basel Committee 1996: the last 250 trading days).
ROLLING_WINDOW = 250
#: The Basel zones in order of severity.
ZONES: tuple[Zone, ...] = ("green", "yellow", "red")
#: Green while P(X <= k) is below this (Basel Committee 1996).
GREEN_BELOW = 0.95
#: Yellow while P(X <= k) is below this, red from here on (Basel Committee 1996).
YELLOW_BELOW = 0.9999


@dataclass(frozen=True, eq=False)
class CountLaw:
    """The law of the exception count N in T observations under a correct model: pmf (T + 1,), P(N = k).
    `name`: "binomial" (independent observations) or "simulated" (overlapping windows, `overlap_law`)."""

    name: str
    pmf: NDArray[np.float64]

    @property
    def observations(self) -> int:
        """T, the number of observations the law is for."""
        return int(self.pmf.size - 1)

    def cdf(self, k: int) -> float:
        """P(N <= k)."""
        return float(min(np.sum(self.pmf[: k + 1]), 1.0))


@dataclass(frozen=True)
class KupiecResult:
    """Kupiec's proportion-of-failures test: N exceptions in T observations at coverage c. `null`: the law the
    p-value is read from, "chi2" (Kupiec's asymptotic chi-square(1)), "binomial" or "simulated" (`CountLaw`)."""

    observations: int
    exceptions: int
    coverage: float
    lr: float
    p_value: float
    level: float
    reject: bool
    null: str = "chi2"

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
    """The Basel zone of k exceptions in T observations at coverage c, and P(X <= k) under `law` ("binomial",
    or "simulated" for overlapping windows)."""

    observations: int
    exceptions: int
    coverage: float
    cumulative_probability: float
    zone: Zone
    law: str = "binomial"

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready scalars."""
        return asdict(self)


@dataclass(frozen=True)
class BacktestResult:
    """One requirement series backtested: counts, Kupiec, Christoffersen and the Basel zone. `windows` and
    `mpor_steps` say how the dates were sampled (`window_backtest`; None for a plain one-step `backtest`)."""

    observations: int
    exceptions: int
    exception_rate: float
    coverage: float
    kupiec: KupiecResult
    christoffersen: ChristoffersenResult
    traffic_light: TrafficLight
    windows: Windows | None = None
    mpor_steps: int | None = None

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
            "windows": self.windows,
            "mpor_steps": self.mpor_steps,
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


def kupiec_pof(
    exceptions: int, observations: int, coverage: float, *, level: float = 0.05, law: CountLaw | None = None
) -> KupiecResult:
    """Kupiec (1995) proportion-of-failures test of N exceptions in T observations at coverage c.

    The failure probability under the null is p = 1 - c. Rejects when the p-value is below `level`: the
    chi-square(1) tail of LR_pof, or with `law` (a `CountLaw` for T) the exact P(LR_pof(N) >= LR_observed)
    under it. N = 0 and N = T are finite (0 ln 0 = 0).
    """
    n, t = _counts(exceptions, observations)
    c = _probability("coverage", coverage)
    alpha = _probability("level", level)
    lr = float(_pof_lr(np.asarray(n, dtype=np.float64), t, 1.0 - c))
    if law is None:
        p_value, null = float(chi2.sf(lr, 1)), "chi2"
    else:
        if law.observations != t:
            raise ValueError(f"law: is for {law.observations} observations, not {t}")
        every = _pof_lr(np.arange(t + 1, dtype=np.float64), t, 1.0 - c)
        p_value, null = float(min(np.sum(law.pmf[every >= lr * (1.0 - 1e-12)]), 1.0)), law.name
    return KupiecResult(
        observations=t,
        exceptions=n,
        coverage=c,
        lr=lr,
        p_value=p_value,
        level=alpha,
        reject=p_value < alpha,
        null=null,
    )


def binomial_law(observations: int, coverage: float) -> CountLaw:
    """The exception count of a correct model on T independent observations: Bin(T, 1 - c)."""
    _, t = _counts(0, observations)
    c = _probability("coverage", coverage)
    return CountLaw("binomial", binom.pmf(np.arange(t + 1), t, 1.0 - c))


def overlap_law(
    observations: int, coverage: float, mpor_steps: int, *, paths: int = OVERLAP_PATHS, seed: int = OVERLAP_SEED
) -> CountLaw:
    """The exception count of a correct model backtested at every step over T overlapping h-step windows,
    simulated: `paths` Gaussian random walks of T + h - 1 steps, the loss of date t the walk's h-step move
    from t, the requirement its exact c-quantile (z_c sqrt(h)); the pmf is the histogram of the counts.
    With h = 1 this is Bin(T, 1 - c) up to sampling error. Repeatable (fixed `seed`); cached."""
    _, t = _counts(0, observations)
    c = _probability("coverage", coverage)
    if isinstance(mpor_steps, bool) or operator.index(mpor_steps) < 1:
        raise ValueError(f"mpor_steps: must be an integer >= 1, got {mpor_steps!r}")
    return _simulated_law(t, c, operator.index(mpor_steps), paths, seed)


@lru_cache(maxsize=64)
def _simulated_law(t: int, c: float, h: int, paths: int, seed: int) -> CountLaw:
    from scipy.special import ndtri

    rng = np.random.default_rng(seed)
    threshold = float(ndtri(c)) * np.sqrt(h)
    counts = np.zeros(t + 1, dtype=np.float64)
    chunk = max(1, 4_000_000 // (t + h))
    for start in range(0, paths, chunk):
        size = min(chunk, paths - start)
        walk = np.cumsum(rng.standard_normal((size, t + h - 1)), axis=1)
        walk = np.concatenate((np.zeros((size, 1)), walk), axis=1)
        hits = np.count_nonzero(walk[:, h:] - walk[:, :-h] > threshold, axis=1)
        counts += np.bincount(hits, minlength=t + 1)
    pmf = counts / paths
    pmf.setflags(write=False)
    return CountLaw("simulated", pmf)


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


def traffic_light(
    exceptions: int, observations: int, coverage: float = 0.99, *, law: CountLaw | None = None
) -> TrafficLight:
    """The Basel (1996) zone of k exceptions in T observations at coverage c, with P(X <= k), X ~ Bin(T, 1 - c)
    (or X ~ `law`, a `CountLaw` for T).

    Green while P(X <= k) < 95%, yellow while < 99.99%, red beyond.
    """
    k, t = _counts(exceptions, observations)
    c = _probability("coverage", coverage)
    if law is not None and law.observations != t:
        raise ValueError(f"law: is for {law.observations} observations, not {t}")
    cumulative = float(binom.cdf(k, t, 1.0 - c)) if law is None else law.cdf(k)
    return TrafficLight(
        observations=t,
        exceptions=k,
        coverage=c,
        cumulative_probability=cumulative,
        zone=_zone(cumulative),
        law="binomial" if law is None else law.name,
    )


def _zone(cumulative: float) -> Zone:
    return "green" if cumulative < GREEN_BELOW else "yellow" if cumulative < YELLOW_BELOW else "red"


def backtest(
    requirement: ArrayLike, loss: ArrayLike, coverage: float, *, level: float = 0.05, law: CountLaw | None = None
) -> BacktestResult:
    """Backtest one requirement series (T,) against realised losses (T,), T >= 2, at coverage c.

    Exceptions as in `exceptions`; Kupiec and Christoffersen at test `level`; the Basel zone at coverage c.
    `law`: the count's law for Kupiec's p-value and the zone (default: chi-square and binomial).
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
        kupiec=kupiec_pof(n, t, coverage, level=level, law=law),
        christoffersen=christoffersen(hits, coverage, level=level),
        traffic_light=traffic_light(n, t, coverage, law=law),
    )


def sample_dates(dates: int, mpor_steps: int, windows: Windows = "independent") -> NDArray[np.int64]:
    """Indices of the dates an h-step backtest of `dates` consecutive dates tests: 0, h, 2h, ... whose MPOR
    windows do not overlap ("independent"), or every date ("overlapping")."""
    if windows not in WINDOWS:
        raise ValueError(f"windows: must be one of {WINDOWS}, got {windows!r}")
    return np.arange(0, dates, mpor_steps if windows == "independent" else 1, dtype=np.int64)


def count_law(observations: int, coverage: float, mpor_steps: int, windows: Windows = "independent") -> CountLaw:
    """The law of N that a backtest sampled by `sample_dates` reads its p-values and zones from: binomial for
    independent windows (or h = 1), `overlap_law` for overlapping ones."""
    if windows == "overlapping" and mpor_steps > 1:
        return overlap_law(observations, coverage, mpor_steps)
    return binomial_law(observations, coverage)


def window_backtest(
    requirement: ArrayLike,
    loss: ArrayLike,
    coverage: float,
    mpor_steps: int,
    *,
    windows: Windows = "independent",
    level: float = 0.05,
) -> BacktestResult:
    """Backtest a series of h-step losses (T,) taken at every step, sound for the overlap of their windows:
    on the `sample_dates` with the exact `count_law` of N (module docstring)."""
    required, realised = np.asarray(requirement, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    rows = sample_dates(required.shape[0], mpor_steps, windows)
    if rows.size < 2:
        raise ValueError(f"requirement: a backtest needs T >= 2 observations, got {rows.size} {windows} windows")
    law = count_law(rows.size, coverage, mpor_steps, windows)
    result = backtest(required[rows], realised[rows], coverage, level=level, law=law)
    return replace(result, windows=windows, mpor_steps=int(mpor_steps))


def rolling_zones(
    hits: ArrayLike,
    coverage: float,
    mpor_steps: int = 1,
    windows: Windows = "independent",
    *,
    window: int = ROLLING_WINDOW,
) -> list[Zone | None]:
    """The Basel zone of the exceptions among the last `window` observations, after each observation (T,):
    None until `window` observations are in; the count's law as `count_law` gives it for `window`."""
    flags = np.asarray(hits, dtype=np.bool_)
    law = count_law(window, coverage, mpor_steps, windows)
    cdf = np.minimum(np.cumsum(law.pmf), 1.0)
    running = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    counts = running[window:] - running[:-window]
    zones: list[Zone | None] = [None] * min(window - 1, flags.size)
    return zones + [_zone(float(p)) for p in cdf[counts]]
