"""Synthetic daily price histories from a fitted multi-asset GARCH(1,1) generator.

The generator lets the demo and the tests run without the real price files in ../shared. Per asset:
a zero-mean GARCH(1,1) variance (`solvent.market.volatility`) driving standardised Student-t
innovations (unit variance, `dof` degrees of freedom); jointly: a Gaussian copula, i.e. the
innovations are Student-t transforms of correlated standard normals, with the copula correlation
estimated from the normal scores of the standardised residuals. The packaged generator
(`solvent/data/demo_generator.json`, schema `solvent.generator/1`) was fitted to Bitstamp daily
closes by `scripts/fit_demo_generator.py`; its "source" field says from what.

Fitting is two-step: normal quasi-maximum likelihood for the GARCH parameters (consistent under
Student-t innovations; Bollerslev and Wooldridge 1992), then the degrees of freedom by maximum
likelihood of a standardised Student-t on the standardised residuals.

`synthetic_history(n_days, seed)` is reproducible bit for bit: numpy's PCG64 generator seeded with
`seed`, one draw of (n_days - 1, A) standard normals, then deterministic transforms and recursions.
"""

from __future__ import annotations

import importlib.resources
import math
import os
from typing import Annotated, Final, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln, ndtr, ndtri, stdtr, stdtrit

from solvent.formats.errors import decode_json, read_bytes
from solvent.market.history import PriceHistory
from solvent.market.volatility import GarchParams, fit_garch, garch_variance

FloatArray = NDArray[np.float64]

GENERATOR_SCHEMA: Final = "solvent.generator/1"
#: The packaged demo generator, relative to the `solvent` package.
DEMO_GENERATOR = "data/demo_generator.json"
#: Default first timestamp of a synthetic history (00:00 UTC; closes are daily).
DEFAULT_START = "2022-01-01"
#: Bounds of the degrees-of-freedom search (2 excluded: the variance must exist).
DOF_BOUNDS = (2.05, 200.0)

Positive = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]


class AssetGenerator(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One asset: GARCH(1,1) per day (omega in squared log-return units), Student-t dof, first close.

    `fitted_from` names the history column the parameters were fitted to (another asset's when it
    stands in as a proxy).
    """

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    omega: Positive
    alpha: NonNegative
    beta: NonNegative
    dof: Annotated[float, msgspec.Meta(gt=2.0)]
    start_price: Positive
    fitted_from: str

    def __post_init__(self) -> None:
        values = (self.omega, self.alpha, self.beta, self.dof, self.start_price)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{self.name}: parameters must be finite")
        if self.alpha + self.beta >= 1.0:
            raise ValueError(f"{self.name}: alpha + beta must be < 1, got {self.alpha + self.beta}")

    @property
    def garch(self) -> GarchParams:
        """The asset's variance process."""
        return GarchParams(omega=self.omega, alpha=self.alpha, beta=self.beta)


class SyntheticGenerator(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A `solvent.generator/1` document: assets (in order) and their copula correlation matrix."""

    schema: Literal["solvent.generator/1"]
    source: str
    assets: tuple[AssetGenerator, ...]
    correlation: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        names = [a.name for a in self.assets]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"assets: names must be present and unique, got {names}")
        c = np.array(self.correlation, dtype=np.float64)
        if c.shape != (len(names), len(names)):
            raise ValueError(f"correlation: must be {len(names)} x {len(names)}, got {c.shape}")
        if not np.all(np.isfinite(c)) or not np.allclose(c, c.T, rtol=0.0, atol=1e-12):
            raise ValueError("correlation: must be finite and symmetric")
        if not np.all(np.diag(c) == 1.0):
            raise ValueError("correlation: the diagonal must be 1")
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise ValueError("correlation: must be positive definite") from None

    @property
    def names(self) -> tuple[str, ...]:
        """Asset names, in column order."""
        return tuple(a.name for a in self.assets)

    def to_json(self) -> bytes:
        """The document, indented, as `load_generator` reads it."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2) + b"\n"


def load_generator(path: str | os.PathLike[str] | None = None) -> SyntheticGenerator:
    """Read a generator file; without `path`, the packaged demo generator. Bad files raise InputError."""
    if path is None:
        resource = importlib.resources.files("solvent").joinpath(DEMO_GENERATOR)
        return decode_json(resource.read_bytes(), SyntheticGenerator, f"solvent/{DEMO_GENERATOR}")
    source = str(path)
    return decode_json(read_bytes(source), SyntheticGenerator, source)


def student_t_innovations(normals: FloatArray, dof: FloatArray) -> FloatArray:
    """Standardised Student-t innovations (unit variance) with the ranks of `normals`, (T, A).

    e = t_dof^-1(Phi(z)) * sqrt((dof - 2) / dof), computed from the lower tail of -|z| so that
    large |z| keep full precision (Phi(z) rounds to 1 beyond z ~ 8); beyond |z| ~ 38 the tail
    probability is held at the smallest normal double, so the result stays finite.
    """
    z = np.asarray(normals, dtype=np.float64)
    nu = np.asarray(dof, dtype=np.float64)
    lower = np.maximum(ndtr(-np.abs(z)), np.finfo(np.float64).tiny)  # Phi(-38) underflows to 0
    tail = -stdtrit(nu, lower)
    return np.asarray(np.sign(z) * tail * np.sqrt((nu - 2.0) / nu), dtype=np.float64)


def simulate_returns(generator: SyntheticGenerator, n_returns: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """(log returns, conditional variances), both (n_returns, A), from the generator.

    Each asset's variance starts at its unconditional level; r[t] = sqrt(sigma2[t]) * e[t],
    sigma2[t+1] = omega + alpha * r[t]**2 + beta * sigma2[t].
    """
    if n_returns < 0:
        raise ValueError(f"n_returns must be >= 0, got {n_returns}")
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(np.array(generator.correlation, dtype=np.float64))
    normals = rng.standard_normal((n_returns, len(generator.assets))) @ chol.T
    shocks = student_t_innovations(normals, np.array([a.dof for a in generator.assets]))
    omega = np.array([a.omega for a in generator.assets])
    alpha = np.array([a.alpha for a in generator.assets])
    beta = np.array([a.beta for a in generator.assets])
    sigma2 = omega / (1.0 - alpha - beta)
    returns = np.empty_like(shocks)
    variance = np.empty_like(shocks)
    for t in range(n_returns):  # the GARCH recursion is inherently sequential
        variance[t] = sigma2
        returns[t] = np.sqrt(sigma2) * shocks[t]
        sigma2 = omega + alpha * returns[t] ** 2 + beta * sigma2
    return returns, variance


def synthetic_history(
    n_days: int,
    seed: int,
    generator: SyntheticGenerator | None = None,
    start: str | np.datetime64 = DEFAULT_START,
) -> PriceHistory:
    """`n_days` daily closes (00:00 UTC from `start`) per generator asset, the first at its start price.

    Without `generator`, the packaged demo generator (BTC, ETH, SOL). Same arguments, same history,
    bit for bit.
    """
    if n_days < 1:
        raise ValueError(f"n_days must be at least 1, got {n_days}")
    gen = load_generator() if generator is None else generator
    returns, _ = simulate_returns(gen, n_days - 1, seed)
    log_path = np.vstack([np.zeros((1, returns.shape[1])), np.cumsum(returns, axis=0)])
    closes = np.array([a.start_price for a in gen.assets]) * np.exp(log_path)
    first = np.datetime64(str(start), "D")
    days: NDArray[np.datetime64] = np.arange(first, first + n_days, dtype="datetime64[D]")
    timestamps = days.astype("datetime64[s]")
    return PriceHistory(timestamps, gen.names, closes)


# ----------------------------------------------------------------------------------------- fitting


def _t_negative_loglik(dof: float, z: FloatArray) -> float:
    """Negative log-likelihood of a standardised (unit-variance) Student-t at residuals z."""
    scale2 = dof - 2.0
    log_density = (
        gammaln((dof + 1.0) / 2.0)
        - gammaln(dof / 2.0)
        - 0.5 * np.log(np.pi * scale2)
        - (dof + 1.0) / 2.0 * np.log1p(z**2 / scale2)
    )
    return float(-np.sum(log_density))


def fit_t_dof(standardised: FloatArray) -> float:
    """Maximum-likelihood degrees of freedom of a unit-variance Student-t, in [2.05, 200]."""
    z = np.asarray(standardised, dtype=np.float64)
    from scipy.optimize import minimize_scalar  # fitting only: keep it off import

    result = minimize_scalar(_t_negative_loglik, bounds=DOF_BOUNDS, args=(z,), method="bounded")
    return float(result.x)


def normal_scores(standardised: FloatArray, dof: float) -> FloatArray:
    """Phi^-1(F_t(z)): the Gaussian-copula scores of unit-variance Student-t residuals."""
    z = np.asarray(standardised, dtype=np.float64) * math.sqrt(dof / (dof - 2.0))
    lower = ndtri(stdtr(dof, -np.abs(z)))
    return np.asarray(-np.sign(z) * lower, dtype=np.float64)


def fit_generator(
    history: PriceHistory,
    fitted_from: dict[str, str],
    start_prices: dict[str, float],
    source: str,
) -> SyntheticGenerator:
    """Fit a generator to `history`: output asset -> the history column it is fitted to.

    Per column: `fit_garch` on its daily log returns (missing closes skipped), then `fit_t_dof` on
    the standardised residuals. The copula correlation is the sample correlation of the residuals'
    normal scores on the dates where every used column has a return. Two outputs may not share a
    column (their correlation would be 1).
    """
    columns = list(fitted_from.values())
    if len(set(columns)) != len(columns):
        raise ValueError(f"each output asset needs its own history column, got {fitted_from}")
    data = history.select(tuple(columns)).log_returns()
    scores = np.full(data.shape, np.nan)
    assets = []
    for j, (name, column) in enumerate(fitted_from.items()):
        ok = np.isfinite(data[:, j])
        r = data[ok, j]
        params = fit_garch(r)
        z = r / np.sqrt(garch_variance(r, params))
        dof = fit_t_dof(z)
        scores[ok, j] = normal_scores(z, dof)
        assets.append(
            AssetGenerator(
                name=name,
                omega=params.omega,
                alpha=params.alpha,
                beta=params.beta,
                dof=dof,
                start_price=start_prices[name],
                fitted_from=column,
            )
        )
    joint = scores[np.all(np.isfinite(scores), axis=1)]
    if joint.shape[0] < 30:
        raise ValueError(f"only {joint.shape[0]} dates on which every column has a return")
    corr = np.corrcoef(joint, rowvar=False).reshape(len(columns), len(columns))
    corr = (corr + corr.T) / 2.0
    np.fill_diagonal(corr, 1.0)
    return SyntheticGenerator(
        schema=GENERATOR_SCHEMA,
        source=source,
        assets=tuple(assets),
        correlation=tuple(tuple(float(v) for v in row) for row in corr),
    )
