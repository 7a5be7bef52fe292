"""The input records: instruments, accounts, portfolios and market snapshots.

These msgspec Structs are the boundary: files and API payloads are decoded into them (types, ranges
and unknown fields checked by msgspec, cross-field rules in `__post_init__`), and everything inside
solvent works on the arrays built from them. All are frozen.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

PORTFOLIO_SCHEMA: Final = "solvent.portfolio/1"
MARKET_SCHEMA: Final = "solvent.market/1"

Finite = Annotated[float, msgspec.Meta(description="a finite number")]
PositiveFinite = Annotated[float, msgspec.Meta(gt=0.0, description="a finite number > 0")]
NonNegativeFinite = Annotated[float, msgspec.Meta(ge=0.0, description="a finite number >= 0")]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

# The finite range of every numeric input (issue 12 item 14; docs/formats.md, "Numeric ranges"). A number
# outside is bad input, named like any other: a price of 1e308 or 5e-324 is not a price, and products and
# squares of numbers in these ranges stay far inside the float range (1e12 units x 1e12 USD = 1e24 USD).
MIN_PRICE: Final = 1e-12
MAX_PRICE: Final = 1e12
MAX_QUANTITY: Final = 1e12
MAX_AMOUNT: Final = 1e15
MIN_VOL: Final = 1e-6
MAX_VOL: Final = 10.0
MAX_RATE: Final = 1.0
MAX_SKEW: Final = 10.0
MAX_TIER: Final = 1_000.0
MIN_SCALE: Final = 1e-6
MAX_SCALE: Final = 1e6

Price = Annotated[float, msgspec.Meta(ge=MIN_PRICE, le=MAX_PRICE, description="USD per unit, in [1e-12, 1e12]")]
Quantity = Annotated[
    float, msgspec.Meta(ge=-MAX_QUANTITY, le=MAX_QUANTITY, description="signed units, |quantity| <= 1e12")
]
Amount = Annotated[float, msgspec.Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="units of an asset, |x| <= 1e15")]
PositiveAmount = Annotated[
    float, msgspec.Meta(ge=MIN_PRICE, le=MAX_AMOUNT, description="units of an asset, in [1e-12, 1e15]")
]
NonNegativeAmount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT, description="in [0, 1e15]")]
Vol = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_VOL, description="annualised, a fraction in [0, 10]")]
PositiveVol = Annotated[
    float, msgspec.Meta(ge=MIN_VOL, le=MAX_VOL, description="annualised, a fraction in [1e-6, 10]")
]
Rate = Annotated[float, msgspec.Meta(ge=-MAX_RATE, le=MAX_RATE, description="a year, a fraction in [-1, 1]")]
Skew = Annotated[float, msgspec.Meta(ge=-MAX_SKEW, le=MAX_SKEW, description="vol per unit log-moneyness, |x| <= 10")]
ContractSize = Annotated[
    float, msgspec.Meta(ge=MIN_PRICE, le=MAX_QUANTITY, description="units of the underlying, in [1e-12, 1e12]")
]
Tier = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_TIER, description="a multiplier in (0, 1000]")]
Spread = Annotated[float, msgspec.Meta(ge=0.0, le=1.0, description="a fraction of mid in [0, 1]")]
Scale = Annotated[float, msgspec.Meta(ge=MIN_SCALE, le=MAX_SCALE, description="a multiplier in [1e-6, 1e6]")]

InstrumentKind = Literal["spot", "perp", "future", "option"]
LINEAR_KINDS: frozenset[str] = frozenset({"spot", "perp", "future"})


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every input record."""


def _require_finite(**values: float | None) -> None:
    """Cross-field checks raise "field: message"; decode_json folds the field into the path."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value!r}")


class Instrument(_Record, frozen=True, kw_only=True):
    """A contract the venue lists: spot asset, linear perpetual, dated future or European option.

    One unit of quantity is `contract_size` units of `underlying`. Futures need `expiry`; options need
    `expiry`, `strike` and `option_type` and are priced with Black-76 on the forward.
    """

    id: Identifier
    kind: InstrumentKind
    underlying: Identifier
    contract_size: ContractSize = 1.0
    expiry: datetime | None = None
    strike: Price | None = None
    option_type: Literal["call", "put"] | None = None

    def __post_init__(self) -> None:
        _require_finite(contract_size=self.contract_size, strike=self.strike)
        if self.expiry is not None and self.expiry.tzinfo is None:
            raise ValueError("expiry: must carry a time zone, e.g. 2026-12-25T08:00:00Z")
        if self.kind == "option":
            missing = [n for n in ("expiry", "strike", "option_type") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"{missing[0]}: required for an option")
        elif self.kind == "future":
            if self.expiry is None:
                raise ValueError("expiry: required for a dated future")
            if self.strike is not None or self.option_type is not None:
                raise ValueError("strike: only options have a strike")
        else:
            if self.expiry is not None:
                raise ValueError(f"expiry: a {self.kind} has no expiry")
            if self.strike is not None or self.option_type is not None:
                raise ValueError("strike: only options have a strike")


class Position(_Record, frozen=True, kw_only=True):
    """A signed holding of an instrument (positive long). Linear products carry their entry price.

    `venue` names the venue that holds the position; null (the default) is the home venue. Positions at
    every venue are margined together; a remote linear position's unrealised gain counts in equity only
    after `venues.remote_pnl_haircut` (docs/model.md, "Cross, isolated and multi-venue accounts").
    """

    instrument: Identifier
    quantity: Quantity
    entry_price: Price | None = None
    venue: Identifier | None = None

    def __post_init__(self) -> None:
        _require_finite(quantity=self.quantity, entry_price=self.entry_price)


class Account(_Record, frozen=True, kw_only=True):
    """An account: collateral balances per asset, positions, optional risk tier and margin mode.

    `mode` is "cross" (everything in the record is pooled) or "isolated" (a sub-account margined on
    its own collateral; `parent` names the account it belongs to).
    """

    id: Identifier
    collateral: dict[str, Amount] = msgspec.field(default_factory=dict)
    positions: list[Position] = msgspec.field(default_factory=list)
    risk_tier: Tier | None = None
    mode: Literal["cross", "isolated"] = "cross"
    parent: Identifier | None = None

    def __post_init__(self) -> None:
        for asset, amount in self.collateral.items():
            if not math.isfinite(amount):
                raise ValueError(f"collateral.{asset}: must be finite, got {amount!r}")
        _require_finite(risk_tier=self.risk_tier)
        if self.mode == "isolated" and self.parent is None:
            raise ValueError("parent: an isolated sub-account names its parent account")
        if self.mode == "cross" and self.parent is not None:
            raise ValueError("parent: only isolated sub-accounts have a parent")


class Portfolio(_Record, frozen=True, kw_only=True):
    """A venue's instruments and accounts: the `solvent.portfolio/1` file."""

    schema: Literal["solvent.portfolio/1"] = "solvent.portfolio/1"  # the file's tag; a default in Python
    instruments: list[Instrument]
    accounts: list[Account]


BookSide = list[tuple[float, float]]


def _check_side(name: str, points: BookSide) -> None:
    """A side of a book curve: [distance, cumulative size] points, both finite, > 0, strictly increasing."""
    if len(points) < 2:
        raise ValueError(f"{name}: needs at least 2 [distance, cumulative_size] points, got {len(points)}")
    previous = (0.0, 0.0)
    for k, (distance, size) in enumerate(points):
        where = f"{name}[{k}]"
        if not (math.isfinite(distance) and math.isfinite(size)):
            raise ValueError(f"{where}: distance and size must be finite, got {[distance, size]!r}")
        if distance <= 0.0:
            raise ValueError(f"{where}: distance from mid must be > 0 (a crossed book otherwise), got {distance!r}")
        if size <= 0.0:
            raise ValueError(f"{where}: cumulative size must be > 0, got {size!r}")
        if distance > MAX_SCALE or size > MAX_AMOUNT:
            raise ValueError(
                f"{where}: distance must be <= {MAX_SCALE:g} and size <= {MAX_AMOUNT:g}, got {[distance, size]!r}"
            )
        if k > 0 and (distance <= previous[0] or size <= previous[1]):
            raise ValueError(
                f"{where}: distance and cumulative size must both increase along the curve, "
                f"got {[distance, size]!r} after {list(previous)!r}"
            )
        previous = (distance, size)
    if name == "bid" and points[-1][0] >= 1.0:
        raise ValueError(f"{name}[{len(points) - 1}]: a bid distance must be < 1 (a price above 0)")


class Depth(_Record, frozen=True, kw_only=True):
    """An asset's order-book depth, in one of two forms (see docs/model.md, "Liquidity add-on").

    Book curve: `bid` and `ask`, each a list of [distance from mid (fraction), cumulative size (units
    of the asset)] points. Parametric: `spread` (full bid-ask spread as a fraction of mid) and the
    cumulative size per side within 1% and 2% of mid.
    """

    bid: BookSide | None = None
    ask: BookSide | None = None
    spread: Spread | None = None
    depth_1pct: PositiveAmount | None = None
    depth_2pct: PositiveAmount | None = None

    def __post_init__(self) -> None:
        book = (self.bid, self.ask)
        parametric = (self.spread, self.depth_1pct, self.depth_2pct)
        has_book = any(v is not None for v in book)
        has_parametric = any(v is not None for v in parametric)
        if has_book and has_parametric:
            raise ValueError("spread: give either a book curve (bid, ask) or the parametric form, not both")
        if has_book:
            for name, side in (("bid", self.bid), ("ask", self.ask)):
                if side is None:
                    raise ValueError(f"{name}: a book curve needs both sides")
                _check_side(name, side)
        elif has_parametric:
            _require_finite(spread=self.spread, depth_1pct=self.depth_1pct, depth_2pct=self.depth_2pct)
            for name, value in zip(("spread", "depth_1pct", "depth_2pct"), parametric, strict=True):
                if value is None:
                    raise ValueError(f"{name}: required for the parametric form (spread, depth_1pct, depth_2pct)")
            assert self.spread is not None and self.depth_1pct is not None and self.depth_2pct is not None
            if self.spread / 2.0 >= 0.01:
                raise ValueError(
                    f"spread: half the spread must be below 1% for the parametric form, got {self.spread!r}"
                )
            if self.depth_2pct <= self.depth_1pct:
                raise ValueError(f"depth_2pct: must exceed depth_1pct ({self.depth_1pct!r}), got {self.depth_2pct!r}")
        else:
            raise ValueError(
                "bid: give a book curve (bid, ask) or the parametric form (spread, depth_1pct, depth_2pct)"
            )


class OracleSource(_Record, frozen=True, kw_only=True):
    """One oracle source's quote of an asset: its price, its published +/- band and when it was observed.

    A `timestamp` after the snapshot `time` (beyond `oracle.future_tolerance_s`) is an input error; an
    old one is not (the quote is flagged STALE and margined at its uncertainty; docs/model.md, "Oracle
    uncertainty").
    """

    name: Identifier
    price: Price
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_PRICE)] = 0.0
    timestamp: datetime

    def __post_init__(self) -> None:
        _require_finite(price=self.price, confidence=self.confidence)
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp: must carry a time zone, e.g. 2026-11-25T00:00:00Z")


class AssetQuote(_Record, frozen=True, kw_only=True):
    """One asset's price (USD) and volatility inputs (annualised, as fractions: 0.6 = 60%).

    Optional liquidity inputs: `depth` (order-book depth), `adv` (average daily volume, units of the
    asset; square-root impact where there is no depth) and `vol_spread` (implied-vol bid-ask width,
    annualised vol as a fraction: 0.02 = 2 vol points).

    Optional oracle inputs: `sources` (several quotes of the price) and `twap`. With sources, margin
    is computed at their aggregate (median, outliers rejected, clamped to the TWAP band) and the
    aggregate's uncertainty widens the scenarios and adds the `oracle` term; `price` is then the
    reference the aggregate is checked against when `twap` is absent.
    """

    price: Price
    vol: Vol | None = None
    implied_vol: Vol | None = None
    vol_long: Vol | None = None
    vol_stressed: Vol | None = None
    depth: Depth | None = None
    adv: PositiveAmount | None = None
    vol_spread: Vol | None = None
    sources: list[OracleSource] = msgspec.field(default_factory=list)
    twap: Price | None = None

    def __post_init__(self) -> None:
        _require_finite(
            twap=self.twap,
            price=self.price,
            vol=self.vol,
            implied_vol=self.implied_vol,
            vol_long=self.vol_long,
            vol_stressed=self.vol_stressed,
            adv=self.adv,
            vol_spread=self.vol_spread,
        )


class VolSurface(_Record, frozen=True, kw_only=True):
    """A simple implied-vol surface for one expiry: vol(K) = atm_vol + skew * ln(K / F)."""

    underlying: Identifier
    expiry: datetime
    atm_vol: PositiveVol
    skew: Skew = 0.0

    def __post_init__(self) -> None:
        _require_finite(atm_vol=self.atm_vol, skew=self.skew)
        if self.expiry.tzinfo is None:
            raise ValueError("expiry: must carry a time zone, e.g. 2026-12-25T08:00:00Z")


class MarketSnapshot(_Record, frozen=True, kw_only=True):
    """Prices and volatility inputs at one time: the `solvent.market/1` file."""

    schema: Literal["solvent.market/1"] = "solvent.market/1"  # the file's tag; a default in Python
    time: datetime
    assets: dict[str, AssetQuote]
    option_vols: dict[str, PositiveVol] = msgspec.field(default_factory=dict)
    surfaces: list[VolSurface] = msgspec.field(default_factory=list)
    rate: Rate = 0.0

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("time: must carry a time zone, e.g. 2026-11-25T00:00:00Z")
        _require_finite(rate=self.rate)
        for name, vol in self.option_vols.items():
            if not math.isfinite(vol):
                raise ValueError(f"option_vols.{name}: must be finite, got {vol!r}")
