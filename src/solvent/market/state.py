"""The market state and the instrument table as arrays: what the numerical core reads.

Built once at the boundary from a validated `Portfolio` (its instruments) and `MarketSnapshot`;
immutable afterwards. Instrument kinds are small integer codes so kernels can branch on them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from solvent.errors import InputError, ModelError
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.market.depth import AssetLiquidity, asset_liquidity
from solvent.market.oracle import OracleStatus, aggregate, validate_quotes
from solvent.market.volatility import effective_vol
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]
BoolArray = NDArray[np.bool_]

SPOT, PERP, FUTURE, OPTION = 0, 1, 2, 3
KIND_CODES: dict[str, int] = {"spot": SPOT, "perp": PERP, "future": FUTURE, "option": OPTION}
QUOTE_ASSETS: frozenset[str] = frozenset({"USD"})


@dataclass(frozen=True, eq=False)
class InstrumentTable:
    """Instruments as parallel arrays of length I (strike NaN and is_call False for linear kinds)."""

    ids: tuple[str, ...]
    kind: NDArray[np.int8]
    asset: IntArray
    contract_size: FloatArray
    strike: FloatArray
    is_call: BoolArray
    expiry: tuple[datetime | None, ...]

    @property
    def index(self) -> dict[str, int]:
        """Instrument id -> row."""
        return {name: i for i, name in enumerate(self.ids)}

    @functools.cached_property
    def traded(self) -> IntArray:
        """The asset columns some instrument is on, ascending (computed once: the table is immutable)."""
        return np.unique(self.asset)

    @functools.cached_property
    def option_assets(self) -> frozenset[int]:
        """The asset columns some option is on (computed once)."""
        return frozenset(np.unique(self.asset[self.kind == OPTION]).tolist())

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class MarketState:
    """Prices, volatilities and per-instrument marks at one time.

    Assets (A) are every asset quoted in the snapshot plus USD, in sorted order; `vol` is the
    effective annualised volatility margin is computed at (see `effective_vol`). Per instrument (I):
    years to expiry (0 for spot and perpetuals), the forward (the mark of a linear product; the
    underlying of an option) and the implied vol used to price options (NaN for linear kinds).
    `liquidity` holds each asset's depth curves, ADV and vol bid-ask (empty: no liquidity inputs).

    Oracle, per asset (A,): `oracle_sources` the number of source quotes (0: the quote's `price` is
    used as it is), `oracle_uncertainty` U in USD (0 without sources), `oracle_status` `OracleStatus`
    codes (OK without sources). With sources, `price` is the aggregate (market/oracle.py).
    `stable_price` (A,): Mango's stable price per asset (market/stable_price.py) where the market carries
    one (the streaming engine's live market), empty otherwise; it adds the `stable_price` IM term.
    """

    time: datetime
    assets: tuple[str, ...]
    price: FloatArray
    vol: FloatArray
    rate: float
    instruments: InstrumentTable
    expiry_years: FloatArray
    forward: FloatArray
    option_vol: FloatArray
    liquidity: tuple[AssetLiquidity, ...] = ()
    oracle_sources: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    oracle_uncertainty: FloatArray = field(default_factory=lambda: np.zeros(0))
    oracle_status: NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    vol_quoted: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    stable_price: FloatArray = field(default_factory=lambda: np.zeros(0))

    @functools.cached_property
    def asset_index(self) -> dict[str, int]:
        """Asset name -> column (computed once: a state is not changed after it is built)."""
        return {name: a for a, name in enumerate(self.assets)}

    @functools.cached_property
    def has_oracle(self) -> bool:
        """Whether any asset is priced from oracle sources (the `oracle` IM term is reported then)."""
        return bool((self.oracle_sources > 0).any())

    @property
    def relative_uncertainty(self) -> FloatArray:
        """(A,) U / price (0 for every asset when no asset has sources)."""
        if not self.has_oracle:
            return np.zeros(len(self.assets))
        return np.asarray(self.oracle_uncertainty / self.price, dtype=np.float64)

    @property
    def oracle_status_names(self) -> dict[str, str]:
        """Asset -> `OracleStatus` name for every asset priced from oracle sources, in asset order."""
        if not self.has_oracle:
            return {}
        return {
            self.assets[a]: OracleStatus(int(self.oracle_status[a])).name for a in np.flatnonzero(self.oracle_sources)
        }


def _years(start: datetime, end: datetime, days_per_year: float) -> float:
    return (end - start).total_seconds() / (days_per_year * 86400.0)


def build_instrument_table(instruments: list[Instrument], assets: dict[str, int], source: str) -> InstrumentTable:
    """Index instruments; every underlying must be quoted in the market; ids must be unique."""
    seen: set[str] = set()
    for i, inst in enumerate(instruments):
        if inst.id in seen:
            raise InputError(source, f"instruments[{i}].id", f"duplicate instrument id {inst.id!r}")
        seen.add(inst.id)
        if inst.underlying not in assets:
            raise InputError(source, f"instruments[{i}].underlying", f"asset {inst.underlying!r} is not in the market")
    return InstrumentTable(
        ids=tuple(inst.id for inst in instruments),
        kind=np.array([KIND_CODES[inst.kind] for inst in instruments], dtype=np.int8),
        asset=np.array([assets[inst.underlying] for inst in instruments], dtype=np.int32),
        contract_size=np.array([inst.contract_size for inst in instruments], dtype=np.float64),
        strike=np.array([inst.strike if inst.strike else math.nan for inst in instruments], dtype=np.float64),
        is_call=np.array([inst.option_type == "call" for inst in instruments], dtype=np.bool_),
        expiry=tuple(inst.expiry for inst in instruments),
    )


def _option_vol(
    inst: Instrument, forward: float, snapshot: MarketSnapshot, asset_vol: float, params: MarginParams
) -> float:
    """Implied vol for one option: its own quote, else its expiry's surface, else the asset's vol."""
    quoted = snapshot.option_vols.get(inst.id)
    if quoted is not None:
        return max(quoted, params.volatility.vol_floor)
    for surface in snapshot.surfaces:
        if surface.underlying == inst.underlying and surface.expiry == inst.expiry:
            assert inst.strike is not None
            skewed = surface.atm_vol + surface.skew * math.log(inst.strike / forward)
            return max(skewed, params.volatility.vol_floor)
    return asset_vol


def _require_liquidity(
    table: InstrumentTable, names: list[str], quotes: list[AssetQuote | None], market_source: str
) -> None:
    """Fail closed (`liquidity.require_depth`): every traded asset needs depth or ADV, option assets a vol bid-ask."""
    for a in sorted(set(table.asset.tolist())):
        quote = quotes[a]
        if quote is None or (quote.depth is None and quote.adv is None):
            raise InputError(
                market_source, f"assets.{names[a]}.depth", "required by liquidity.require_depth (or give adv)"
            )
        if quote.vol_spread is None and bool(np.any(table.kind[table.asset == a] == OPTION)):
            raise InputError(
                market_source, f"assets.{names[a]}.vol_spread", "required by liquidity.require_depth for option assets"
            )


@dataclass(frozen=True, eq=False)
class OracleInputs:
    """The oracle columns of a market state (see `MarketState`): price, sources, uncertainty, status."""

    price: FloatArray
    sources: NDArray[np.int64]
    uncertainty: FloatArray
    status: NDArray[np.int8]


def oracle_inputs(
    names: list[str],
    quotes: list[AssetQuote | None],
    reference: FloatArray,
    vol: FloatArray,
    now: datetime,
    params: MarginParams,
    market_source: str = "<market>",
) -> OracleInputs:
    """Aggregate the `sources` of every quote that has them; other assets keep `reference` and U = 0.

    Quotes are laid out as (R, S) arrays (R assets with sources, S the most sources of any; padding
    marked absent) and aggregated in one call. The TWAP is the quote's `twap`, else its `price`. A
    future-dated or malformed quote is an InputError naming `assets.<asset>.sources[i].<field>`; a
    degraded status is reported, not raised, but an asset left without any price is a ModelError.
    """
    n_assets = len(names)
    sources = np.array([len(q.sources) if q is not None else 0 for q in quotes], dtype=np.int64)
    rows = np.flatnonzero(sources > 0)
    price = reference.copy()
    uncertainty = np.zeros(n_assets)
    status = np.zeros(n_assets, dtype=np.int8)
    if rows.size == 0:
        return OracleInputs(price, sources, uncertainty, status)
    width = int(sources.max())
    p = np.ones((rows.size, width))
    c = np.zeros((rows.size, width))
    t = np.zeros((rows.size, width))
    present = np.arange(width)[None, :] < sources[rows][:, None]
    twap = np.empty(rows.size)
    for r, a in enumerate(rows.tolist()):
        quote = quotes[a]
        assert quote is not None
        for k, src in enumerate(quote.sources):
            p[r, k], c[r, k], t[r, k] = src.price, src.confidence, src.timestamp.timestamp()
        twap[r] = quote.price if quote.twap is None else quote.twap
    asset_names = [names[a] for a in rows.tolist()]
    validate_quotes(
        asset_names, p, c, t, now.timestamp(), params.oracle, source=market_source, present=present, section="assets"
    )
    year = params.days_per_year
    result = aggregate(
        p, c, t, now.timestamp(), twap, params.oracle, vol=vol[rows], days_per_year=year, present=present
    )
    unpriced = np.flatnonzero(~np.isfinite(result.price))
    if unpriced.size:
        r = int(unpriced[0])
        raise ModelError(
            f"assets.{asset_names[r]}: no usable oracle price "
            f"({OracleStatus(int(result.status[r])).name}, no TWAP): cannot margin it"
        )
    price[rows] = result.price
    uncertainty[rows] = result.uncertainty
    status[rows] = result.status
    return OracleInputs(price, sources, uncertainty, status)


def _require_unit_of_account(name: str, quote: AssetQuote, market_source: str) -> None:
    """USD is the unit of account: quoted, it must be at 1 and not priced from sources (issue 12 item 15: a USD
    quoted at 0.5 halved every USD balance)."""
    if quote.price != 1.0:
        raise InputError(
            market_source, f"assets.{name}.price", f"{name} is the unit of account, always 1: got {quote.price!r}"
        )
    if quote.sources or (quote.twap is not None and quote.twap != 1.0):
        field = "sources" if quote.sources else "twap"
        raise InputError(
            market_source, f"assets.{name}.{field}", f"{name} is the unit of account: not priced by an oracle"
        )


def build_market_state(
    instruments: list[Instrument],
    snapshot: MarketSnapshot,
    params: MarginParams,
    portfolio_source: str = "<portfolio>",
    market_source: str = "<market>",
) -> MarketState:
    """Validate instruments against the snapshot and lay both out as arrays."""
    for name in sorted(QUOTE_ASSETS & set(snapshot.assets)):
        _require_unit_of_account(name, snapshot.assets[name], market_source)
    names = sorted(set(snapshot.assets) | QUOTE_ASSETS)
    index = {name: a for a, name in enumerate(names)}
    quotes = [snapshot.assets.get(name) for name in names]

    def column(field: str) -> FloatArray:
        values = [getattr(q, field) if q is not None else None for q in quotes]
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    price = np.array([q.price if q is not None else 1.0 for q in quotes], dtype=np.float64)
    vol = effective_vol(
        column("vol"), column("implied_vol"), column("vol_long"), column("vol_stressed"), params.volatility
    )
    oracle = oracle_inputs(names, quotes, price, vol, snapshot.time, params, market_source)
    price = oracle.price
    table = build_instrument_table(instruments, index, portfolio_source)
    use_implied = params.volatility.use_implied
    for a in sorted(set(table.asset.tolist())):
        quote = quotes[a]
        # Fail closed: an asset with instruments needs a fast volatility the configuration uses;
        # the floors (long-lookback, stressed, vol_floor) only ever raise it.
        if quote is None or (quote.vol is None and not (use_implied and quote.implied_vol is not None)):
            needed = "vol (or implied_vol with volatility.use_implied)"
            raise InputError(
                market_source, f"assets.{names[a]}.vol", f"required for an asset with instruments: {needed}"
            )
    if params.liquidity.enabled and params.liquidity.require_depth:
        _require_liquidity(table, names, quotes, market_source)
    n = len(instruments)
    expiry_years = np.zeros(n, dtype=np.float64)
    option_vol = np.full(n, math.nan, dtype=np.float64)
    for i, inst in enumerate(instruments):
        if inst.expiry is None:
            continue
        years = _years(snapshot.time, inst.expiry, params.days_per_year)
        if years <= 0.0:
            raise InputError(
                portfolio_source,
                f"instruments[{i}].expiry",
                f"{inst.id} expired at {inst.expiry.isoformat()}, before the market time {snapshot.time.isoformat()}",
            )
        expiry_years[i] = years
    spot = price[table.asset]
    forward = spot * np.exp(snapshot.rate * expiry_years)
    for i, inst in enumerate(instruments):
        if inst.kind == "option":
            option_vol[i] = _option_vol(inst, float(forward[i]), snapshot, float(vol[table.asset[i]]), params)
    return MarketState(
        time=snapshot.time,
        assets=tuple(names),
        price=price,
        vol=vol,
        rate=snapshot.rate,
        instruments=table,
        expiry_years=expiry_years,
        forward=forward,
        option_vol=option_vol,
        liquidity=tuple(asset_liquidity(q) for q in quotes),
        oracle_sources=oracle.sources,
        oracle_uncertainty=oracle.uncertainty,
        oracle_status=oracle.status,
        vol_quoted=~np.isnan(column("vol")) | (params.volatility.use_implied & ~np.isnan(column("implied_vol"))),
    )
