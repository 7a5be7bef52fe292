"""The crash library: historical crash episodes as data, their joint shocks, and price paths calibrated to them.

`solvent/data/crashes.json` (schema `solvent.crashes/1`) lists the episodes of the stress-lab issue, each with
its sourced figures (a price move, a correlation, a depth loss, an oracle behaviour) and, beside every figure
that no source supports (most durations, every noise volatility), an `*_assumed` flag; the document's `units`
says what each number is measured in, and docs/model.md ("Crash library") says where each comes from.

- `episode_shock(episode, assets)` turns an episode into a `Shock`: arrays over the given asset names. An asset
  the episode names takes its own figures. One it does not name follows the episode's `market_asset` (same
  move, duration, noise, depth and oracle behaviour, correlated at the episode's `correlation.during`) if the
  episode is market-wide and the asset is not a USD stablecoin (`conventions.usd_pegged`); otherwise it is
  untouched: no move, its calm volatility, full depth, uncorrelated.
- `episode_path(...)` draws a path that hits every figure exactly: each asset's log price follows a piecewise
  linear trend through its knots (start, extreme, end of a de-peg's recovery or a pump's return) plus
  correlated Brownian bridges pinned to zero at every knot, and the price at each knot is set to the figure.
  Seeded: numpy's PCG64 with `seed`, one draw of (T - 1, A) normals; same arguments, same path bit for bit.
- `source_prices(path, sources, noise)` quotes the path per oracle source (the episode's dispersion, pump or
  one-venue de-peg between sources, plus seeded noise); the cascade simulator's `--oracle-sources` uses it.
- `episode_feed(path, ...)` writes the path as `solvent.feed/1` records (quotes per asset, or per source with
  small seeded noise and the episode's dispersion between sources; depth changes) for the streaming engine.

Over 600 lines because the crash library's records (half the module: each field's unit, range and `*_assumed`
flag) and the functions that turn an episode into a shock, a path and a feed read as one document of the
`solvent.crashes/1` format.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Final, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.formats.errors import decode_json, read_bytes
from solvent.formats.schemas import Identifier
from solvent.stream.feed import DepthChange, FeedRecord, Quote, VolChange

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

CRASHES_SCHEMA: Final = "solvent.crashes/1"
#: The packaged crash library, relative to the `solvent` package.
CRASHES: Final = "data/crashes.json"
SECONDS_PER_YEAR: Final = 365.0 * 86400.0
#: Relative noise of one source's quote around the path (as the demo's oracle sources).
SOURCE_NOISE: Final = 0.0005
#: A published percentage is rounded: `to_price / from_price` must be within this of `1 + change`.
RATIO_TOLERANCE: Final = 1e-3

Positive = Annotated[float, msgspec.Meta(gt=0.0)]
Text = Annotated[str, msgspec.Meta(min_length=1)]
Shape = Literal["fall", "depeg", "pump"]
Measure = Literal[
    "close_to_close", "open_to_low", "high_to_low", "peak_to_trough", "depeg_low", "ratio_low", "pump_peak"
]
OracleKind = Literal["dispersion", "pump", "depeg"]
Role = Literal["named", "follows", "untouched"]


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every record of the crash library."""


def _finite(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value!r}")


class Move(_Record, frozen=True, kw_only=True):
    """One asset's price move: `change` (fraction of the start price) reached after `hours`.

    `shape` "fall" ends at the extreme; "depeg" (a fall) and "pump" (a rise) go on to `end_change` at
    `end_hours`. With `from_price` and `to_price` (in `price_unit`) the path hits their ratio exactly, which
    must agree with `change` to the rounding of a published percentage (RATIO_TOLERANCE).
    """

    asset: Identifier
    measure: Measure
    shape: Shape
    change: float
    from_price: Positive | None = None
    to_price: Positive | None = None
    price_unit: Literal["USD", "ETH"] = "USD"
    hours: Positive
    hours_assumed: bool
    end_change: float | None = None
    end_hours: Positive | None = None
    end_assumed: bool = False
    vol: Positive
    vol_assumed: bool
    source: Text

    def __post_init__(self) -> None:
        _finite(
            change=self.change,
            from_price=self.from_price,
            to_price=self.to_price,
            hours=self.hours,
            end_change=self.end_change,
            end_hours=self.end_hours,
            vol=self.vol,
        )
        if self.change <= -1.0:
            raise ValueError(f"change: a price cannot fall by {-self.change:.0%} or more, got {self.change}")
        if (self.from_price is None) != (self.to_price is None):
            raise ValueError("to_price: from_price and to_price are given together or not at all")
        if self.from_price is not None and self.to_price is not None:
            gap = abs(self.to_price / self.from_price / (1.0 + self.change) - 1.0)
            if gap > RATIO_TOLERANCE:
                raise ValueError(
                    f"change: {self.change} disagrees with to_price / from_price - 1 = "
                    f"{self.to_price / self.from_price - 1.0:.6f}"
                )
        if self.shape == "pump" and self.change <= 0.0:
            raise ValueError(f"change: a pump rises, got {self.change}")
        if self.shape != "pump" and self.change >= 0.0:
            raise ValueError(f"change: a {self.shape} falls, got {self.change}")
        if self.shape == "fall":
            if self.end_change is not None or self.end_hours is not None:
                raise ValueError("end_change: a fall ends at its extreme (only a depeg or a pump has an end)")
            return
        if self.end_change is None or self.end_hours is None:
            missing = "end_change" if self.end_change is None else "end_hours"
            raise ValueError(f"{missing}: required for a {self.shape}")
        if self.end_hours <= self.hours:
            raise ValueError(f"end_hours: must be after hours ({self.hours}), got {self.end_hours}")
        low, high = (self.change, 0.0) if self.shape == "depeg" else (-0.999999, self.change)
        if not low <= self.end_change <= high:
            raise ValueError(f"end_change: a {self.shape} ends between {low} and {high}, got {self.end_change}")

    @property
    def ratio(self) -> float:
        """Price at the extreme / start price: to_price / from_price where given, else 1 + change."""
        if self.from_price is not None and self.to_price is not None:
            return self.to_price / self.from_price
        return 1.0 + self.change

    @property
    def end_ratio(self) -> float:
        """Price at the end of the path / start price (the extreme's for a fall or an unrecovered de-peg)."""
        if self.end_change is None or self.end_change == self.change:
            return self.ratio
        return 1.0 + self.end_change


class Correlation(_Record, frozen=True, kw_only=True):
    """The correlation of log returns between the assets that move together in a market-wide episode.

    `assets` names the moves the figure was measured on (may be empty when it is an assumption); `during`
    applies to every asset that moves with the market, `before` is recorded for reference.
    """

    assets: tuple[Identifier, ...]
    before: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None = None
    during: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]
    assumed: bool
    source: Text


class Depth(_Record, frozen=True, kw_only=True):
    """An asset's book depth: `knots` of [hours, scale] (fraction of the pre-episode depth), linear between
    them from [0, 1.0], held after the last."""

    asset: Identifier
    knots: tuple[tuple[float, float], ...]
    hours_assumed: bool
    scale_assumed: bool
    source: Text
    note: str = ""

    def __post_init__(self) -> None:
        if not self.knots:
            raise ValueError("knots: at least one [hours, scale] knot")
        previous = 0.0
        for k, (hours, scale) in enumerate(self.knots):
            if not (math.isfinite(hours) and math.isfinite(scale)) or hours <= previous or scale <= 0.0:
                raise ValueError(
                    f"knots[{k}]: hours must increase from 0 and scale be > 0, both finite, got {[hours, scale]!r}"
                )
            previous = hours

    @property
    def floor(self) -> float:
        """The thinnest the book gets (fraction of its pre-episode depth)."""
        return min(1.0, *(scale for _, scale in self.knots))


class Oracle(_Record, frozen=True, kw_only=True):
    """How the episode's oracle sources behaved for `assets`: "dispersion" (their prices `dispersion` apart at
    the extreme), "pump" or "depeg" (the move itself, on every source with `scope` "all", on one source with
    "one"). Empty `assets`: recorded, no figure to model."""

    kind: OracleKind
    scope: Literal["all", "one"]
    assets: tuple[Identifier, ...]
    dispersion: Positive | None = None
    source: Text
    note: str = ""

    def __post_init__(self) -> None:
        _finite(dispersion=self.dispersion)
        if (self.kind == "dispersion") != (self.dispersion is not None):
            raise ValueError("dispersion: given exactly when kind is 'dispersion'")


class Episode(_Record, frozen=True, kw_only=True):
    """One crash: its figures (moves, correlation, depth, oracle, liquidations) and their sources.

    `market_asset`: for a market-wide episode, the move that assets the episode does not name follow.
    """

    id: Identifier
    name: Text
    date: date
    sources: tuple[Text, ...]
    market_asset: Identifier | None = None
    moves: tuple[Move, ...]
    correlation: Correlation | None = None
    depth: tuple[Depth, ...] = ()
    oracle: Oracle | None = None
    liquidations_usd: Positive | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources: at least one source")
        if not self.moves:
            raise ValueError("moves: at least one move")
        named = [m.asset for m in self.moves]
        for field, names in (("moves", named), ("depth", [d.asset for d in self.depth])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{field}: asset {twice[0]!r} appears more than once")
        if self.market_asset is not None:
            market = self.move(self.market_asset)
            if market is None or market.shape != "fall":
                raise ValueError(f"market_asset: {self.market_asset!r} must name a move of shape 'fall'")
            if self.correlation is None:
                raise ValueError("correlation: a market-wide episode says at what correlation its assets move")
        for field, listed in (
            ("correlation", () if self.correlation is None else self.correlation.assets),
            ("oracle", () if self.oracle is None else self.oracle.assets),
        ):
            unknown = [a for a in listed if a not in named]
            if unknown:
                raise ValueError(f"{field}: asset {unknown[0]!r} has no move in this episode (moves: {named})")

    def move(self, asset: str) -> Move | None:
        """The episode's move of `asset`, or None."""
        return next((m for m in self.moves if m.asset == asset), None)

    def depth_of(self, asset: str) -> Depth | None:
        """The episode's depth record of `asset`, or None."""
        return next((d for d in self.depth if d.asset == asset), None)


class Conventions(_Record, frozen=True, kw_only=True):
    """Rules for assets an episode does not name: calm volatilities (annualised) and the USD stablecoins,
    which never follow a market-wide move (names compared case-insensitively)."""

    calm_vol: Positive
    pegged_calm_vol: Positive
    usd_pegged: tuple[Identifier, ...]
    note: str = ""

    def __post_init__(self) -> None:
        _finite(calm_vol=self.calm_vol, pegged_calm_vol=self.pegged_calm_vol)

    def pegged(self, asset: str) -> bool:
        """Whether `asset` is a USD stablecoin."""
        return asset.upper() in {name.upper() for name in self.usd_pegged}


class CrashLibrary(_Record, frozen=True, kw_only=True):
    """A `solvent.crashes/1` document: units, conventions and the episodes (ids unique)."""

    schema: Literal["solvent.crashes/1"]
    units: dict[str, str]
    conventions: Conventions
    episodes: tuple[Episode, ...]

    def __post_init__(self) -> None:
        ids = [e.id for e in self.episodes]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"episodes: id {twice[0]!r} appears more than once")

    @property
    def ids(self) -> tuple[str, ...]:
        """The episode ids, in document order."""
        return tuple(e.id for e in self.episodes)

    def episode(self, episode_id: str) -> Episode:
        """The episode with id `episode_id`; ValueError naming the ids there are."""
        for e in self.episodes:
            if e.id == episode_id:
                return e
        raise ValueError(f"unknown episode {episode_id!r} (the library has {', '.join(self.ids)})")

    def to_json(self) -> bytes:
        """The document, indented, as `load_crashes` reads it."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2) + b"\n"


def load_crashes(path: str | os.PathLike[str] | None = None) -> CrashLibrary:
    """Read a crash library; without `path`, the packaged one. Bad documents raise InputError naming the field."""
    if path is None:
        return _packaged()
    source = str(path)
    return decode_json(read_bytes(source), CrashLibrary, source)


@functools.cache
def _packaged() -> CrashLibrary:
    resource = importlib.resources.files("solvent").joinpath(CRASHES)
    return decode_json(resource.read_bytes(), CrashLibrary, f"solvent/{CRASHES}")


def load_episode(episode_id: str) -> Episode:
    """An episode of the packaged library."""
    return _packaged().episode(episode_id)


# ------------------------------------------------------------------------------------------------ shocks


def _frozen(values: object) -> FloatArray:
    """A read-only float64 copy."""
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, kw_only=True, eq=False)
class Shock:
    """An episode's joint shock over `assets` (arrays in that order; read-only).

    role: "named" (the episode's own figures), "follows" (the market asset's), "untouched".
    price_move: price at the extreme / start - 1; end_move: at the end of the path / start - 1.
    hours, end_hours: when the extreme and the end are reached (0 for an untouched asset).
    vol: the path's noise volatility (annualised); vol_multiplier: vol / the asset's calm volatility.
    depth_scale: the thinnest the book gets (fraction of its pre-episode depth).
    correlation: (A, A) correlation of the noise; the assets that move with the market at `correlation.during`.
    oracle: "none", "dispersion", "pump" or "depeg"; oracle_scope: "all", "one" or "" (none);
    dispersion: max / min - 1 of the sources' prices at the extreme (0 without dispersion).
    """

    episode: str
    assets: tuple[str, ...]
    role: tuple[Role, ...]
    moves: tuple[Move | None, ...]
    depths: tuple[Depth | None, ...]
    price_move: FloatArray
    end_move: FloatArray
    hours: FloatArray
    end_hours: FloatArray
    vol: FloatArray
    vol_multiplier: FloatArray
    depth_scale: FloatArray
    correlation: FloatArray
    oracle: tuple[str, ...]
    oracle_scope: tuple[str, ...]
    dispersion: FloatArray


def episode_shock(episode: Episode, assets: Sequence[str], conventions: Conventions | None = None) -> Shock:
    """The joint shock of `episode` on `assets` (see the module docstring for assets it does not name).

    Without `conventions`, the packaged library's.
    """
    names = tuple(assets)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"assets: names must be present and unique, got {list(names)}")
    rules = _packaged().conventions if conventions is None else conventions
    market = None if episode.market_asset is None else episode.move(episode.market_asset)
    roles: list[Role] = []
    moves: list[Move | None] = []
    depths: list[Depth | None] = []
    for asset in names:
        own = episode.move(asset)
        if own is not None:
            roles.append("named")
            moves.append(own)
            depths.append(episode.depth_of(asset))
        elif market is not None and not rules.pegged(asset):
            roles.append("follows")
            moves.append(market)
            depths.append(episode.depth_of(asset) or episode.depth_of(market.asset))
        else:
            roles.append("untouched")
            moves.append(None)
            depths.append(episode.depth_of(asset))
    calm = np.array([rules.pegged_calm_vol if rules.pegged(a) else rules.calm_vol for a in names])
    vol = np.array([calm[j] if m is None else m.vol for j, m in enumerate(moves)])
    group = [
        j
        for j, (role, m) in enumerate(zip(roles, moves, strict=True))
        if market is not None
        and m is not None
        and m.shape == "fall"
        and not rules.pegged(names[j])
        and role != "untouched"
    ]
    correlation = np.eye(len(names))
    if episode.correlation is not None and len(group) > 1:
        block = np.ix_(group, group)
        correlation[block] = episode.correlation.during
        correlation[group, group] = 1.0
    oracle = episode.oracle
    kinds: list[str] = []
    scopes: list[str] = []
    dispersion: list[float] = []
    for m in moves:
        if oracle is not None and m is not None and m.asset in oracle.assets:
            kinds.append(oracle.kind)
            scopes.append(oracle.scope)
            dispersion.append(oracle.dispersion or 0.0)
        else:
            kinds.append("none")
            scopes.append("")
            dispersion.append(0.0)
    return Shock(
        episode=episode.id,
        assets=names,
        role=tuple(roles),
        moves=tuple(moves),
        depths=tuple(depths),
        price_move=_frozen([0.0 if m is None else m.ratio - 1.0 if m.to_price else m.change for m in moves]),
        end_move=_frozen([0.0 if m is None else m.end_ratio - 1.0 for m in moves]),
        hours=_frozen([0.0 if m is None else m.hours for m in moves]),
        end_hours=_frozen([0.0 if m is None else (m.end_hours or m.hours) for m in moves]),
        vol=_frozen(vol),
        vol_multiplier=_frozen(vol / calm),
        depth_scale=_frozen([1.0 if d is None else d.floor for d in depths]),
        correlation=_frozen(correlation),
        oracle=tuple(kinds),
        oracle_scope=tuple(scopes),
        dispersion=_frozen(dispersion),
    )


# ------------------------------------------------------------------------------------------------- paths


@dataclass(frozen=True, kw_only=True, eq=False)
class EpisodePath:
    """A path of an episode over `assets`, every `step_seconds` (arrays read-only).

    times (T,): seconds from the start. prices (T, A): prices[0] = the start prices, and
    prices[headline_index[j], j] = start_j x the move's ratio exactly (headline_index -1: untouched asset).
    trend (T, A): the log trend through the knots (prices = start x exp(trend + bridge noise)).
    depth (T, A): book depth as a fraction of the start's. vol (T, A): the noise volatility (annualised).
    """

    episode: str
    assets: tuple[str, ...]
    seed: int
    step_seconds: float
    shock: Shock
    times: FloatArray
    prices: FloatArray
    trend: FloatArray
    depth: FloatArray
    vol: FloatArray
    headline_index: IntArray


def _step(hours: float, step_seconds: float) -> int:
    return round(hours * 3600.0 / step_seconds)


def _knots(move: Move | None, step_seconds: float) -> list[tuple[int, float]]:
    """(step, price / start) knots of an asset's trend, from the start."""
    if move is None:
        return [(0, 1.0)]
    first = _step(move.hours, step_seconds)
    if first < 1:
        raise ValueError(
            f"step_seconds: {step_seconds} s is too coarse for {move.asset}'s move over {move.hours} h (no step inside)"
        )
    knots = [(0, 1.0), (first, move.ratio)]
    if move.end_hours is not None:
        end = _step(move.end_hours, step_seconds)
        if end <= first:
            raise ValueError(
                f"step_seconds: {step_seconds} s is too coarse to separate {move.asset}'s extreme from its end"
            )
        knots.append((end, move.end_ratio))
    return knots


def episode_path(
    episode: Episode,
    assets: Sequence[str],
    start_prices: Mapping[str, float],
    step_seconds: float,
    seed: int,
    conventions: Conventions | None = None,
) -> EpisodePath:
    """A seeded path of `episode` over `assets` from `start_prices`, one point every `step_seconds`.

    Knot times are rounded to the nearest step. The path lasts until the last knot of any asset or depth
    profile; an asset whose knots end earlier holds its last level (plus its bridge noise, pinned at the end).
    """
    if not (math.isfinite(step_seconds) and step_seconds > 0.0):
        raise ValueError(f"step_seconds: must be finite and > 0, got {step_seconds!r}")
    shock = episode_shock(episode, assets, conventions)
    names = shock.assets
    start = np.empty(len(names))
    for j, asset in enumerate(names):
        price = start_prices.get(asset)
        if price is None or not (math.isfinite(price) and price > 0.0):
            raise ValueError(f"start_prices[{asset!r}]: a finite price > 0 is required, got {price!r}")
        start[j] = price
    knots = [_knots(m, step_seconds) for m in shock.moves]
    depth_end = max((_step(d.knots[-1][0], step_seconds) for d in shock.depths if d is not None), default=0)
    n = max(depth_end, *(k[-1][0] for k in knots))
    if n < 1:
        raise ValueError(f"episode {episode.id!r} moves none of {list(names)} (nothing to draw)")
    steps = np.arange(n + 1)
    times = steps * float(step_seconds)

    rng = np.random.default_rng(seed)
    normals = rng.standard_normal((n, len(names))) @ np.linalg.cholesky(shock.correlation).T
    walk = np.vstack(
        [
            np.zeros((1, len(names))),
            np.cumsum(normals * (shock.vol * math.sqrt(step_seconds / SECONDS_PER_YEAR)), axis=0),
        ]
    )
    trend = np.empty((n + 1, len(names)))
    bridge = np.empty((n + 1, len(names)))
    for j, asset_knots in enumerate(knots):
        if asset_knots[-1][0] < n:
            asset_knots = [*asset_knots, (n, asset_knots[-1][1])]
        for (a, ra), (b, rb) in itertools.pairwise(asset_knots):
            frac = (steps[a : b + 1] - a) / (b - a)
            trend[a : b + 1, j] = math.log(ra) + (math.log(rb) - math.log(ra)) * frac
            w = walk[a : b + 1, j]
            bridge[a : b + 1, j] = w - w[0] - frac * (w[-1] - w[0])
    prices = start * np.exp(trend + bridge)
    for j, asset_knots in enumerate(knots):
        for k, ratio in asset_knots:
            prices[k, j] = start[j] * ratio  # the figures, exactly
        if asset_knots[-1][0] < n:
            prices[n, j] = start[j] * asset_knots[-1][1]
    depth = np.ones((n + 1, len(names)))
    for j, d in enumerate(shock.depths):
        if d is not None:
            hours = [0.0, *(h for h, _ in d.knots)]
            scales = [1.0, *(s for _, s in d.knots)]
            depth[:, j] = np.interp(times / 3600.0, hours, scales)
    headline = np.array([-1 if m is None else k[1][0] for m, k in zip(shock.moves, knots, strict=True)], dtype=np.intp)
    headline.setflags(write=False)
    return EpisodePath(
        episode=episode.id,
        assets=names,
        seed=seed,
        step_seconds=float(step_seconds),
        shock=shock,
        times=_frozen(times),
        prices=_frozen(prices),
        trend=_frozen(trend),
        depth=_frozen(depth),
        vol=_frozen(np.broadcast_to(shock.vol, (n + 1, len(names)))),
        headline_index=headline,
    )


# -------------------------------------------------------------------------------------------------- feed


def source_prices(path: EpisodePath, sources: Sequence[str], noise: float) -> FloatArray:
    """(T, A, S) each source's quote: the path, spread by the episode's dispersion, with seeded noise
    (numpy PCG64 seeded with [path.seed, 1]: the same path and sources give the same quotes).

    Dispersion: source k's log offset runs evenly over [-h, h] with 2h = log(1 + dispersion), scaled by how far
    the asset's trend has gone towards its extreme (0 at the start, 1 there). Scope "one": source 0 quotes the
    path, the others the path without the episode's trend.
    """
    count = len(sources)
    shock = path.shock
    rng = np.random.default_rng([path.seed, 1])
    quotes = np.repeat(path.prices[:, :, None], count, axis=2)
    for j in range(len(path.assets)):
        if shock.oracle[j] == "dispersion" and count > 1:
            extreme = math.log1p(float(shock.price_move[j]))
            progress = np.clip(path.trend[:, j] / extreme, 0.0, 1.0)
            half = math.log1p(float(shock.dispersion[j])) / 2.0
            quotes[:, j, :] *= np.exp(progress[:, None] * np.linspace(-half, half, count)[None, :])
        elif shock.oracle_scope[j] == "one" and count > 1:
            quotes[:, j, 1:] *= np.exp(-path.trend[:, j])[:, None]
    return quotes * (1.0 + rng.normal(0.0, noise, quotes.shape))


def episode_feed(
    path: EpisodePath,
    sources: Sequence[str] = (),
    *,
    start_time: datetime,
    start_seq: int = 0,
    source_noise: float = SOURCE_NOISE,
    depth_tick: float = 0.01,
    vol_changes: bool = False,
) -> list[FeedRecord]:
    """The path as `solvent.feed/1` records from one step after `start_time` (the start prices are the snapshot's).

    Each step: per asset, one Quote (without `sources`) or one per source; then a DepthChange for each asset
    whose depth moved at least `depth_tick` since the last one sent, or reached a level it holds (so every
    floor is sent exactly). With `vol_changes`, a VolChange per asset at the first step (the episode's noise
    volatility). Seqs run from `start_seq`; the same path gives the same records.
    """
    if start_time.tzinfo is None:
        raise ValueError("start_time: must carry a time zone")
    if len(set(sources)) != len(sources):
        raise ValueError(f"sources: names must be unique, got {list(sources)}")
    if not (math.isfinite(source_noise) and source_noise >= 0.0):
        raise ValueError(f"source_noise: must be finite and >= 0, got {source_noise!r}")
    quotes = source_prices(path, sources, source_noise) if sources else None
    prices = path.prices.tolist()
    depth = path.depth.tolist()
    sent = [1.0] * len(path.assets)
    last = len(path.times) - 1
    records: list[FeedRecord] = []
    for t in range(1, last + 1):
        when = start_time + timedelta(seconds=float(path.times[t]))
        if vol_changes and t == 1:
            for j, asset in enumerate(path.assets):
                vol = float(path.vol[t, j])
                records.append(VolChange(seq=start_seq + len(records), time=when, asset=asset, vol=vol))
        for j, asset in enumerate(path.assets):
            if quotes is None:
                records.append(Quote(seq=start_seq + len(records), time=when, asset=asset, price=prices[t][j]))
                continue
            for name, price in zip(sources, quotes[t, j].tolist(), strict=True):
                records.append(Quote(seq=start_seq + len(records), time=when, asset=asset, price=price, source=name))
        for j, asset in enumerate(path.assets):
            scale = depth[t][j]
            settled = t == last or depth[t + 1][j] == scale
            if scale != sent[j] and (abs(scale - sent[j]) >= depth_tick or settled):
                records.append(DepthChange(seq=start_seq + len(records), time=when, asset=asset, scale=scale))
                sent[j] = scale
    return records
