"""A venue's rule applied to a whole book: per-account IM and MM under one baseline.

`baseline_margin(book, state, params, name)` margins every account of a `Book` at a `MarketState`
under one rule family of `solvent.baselines` and returns a `BaselineResult` (IM and MM per account,
the rule's name and notes on what was approximated). Vectorised over positions: no loop over
accounts or positions, only over the (few) assets that carry their own parameters.

Conventions (docs/model.md, "Baselines on a book"):

- **One net position per account and instrument.** Venues hold one position per account and market,
  so rows of the same instrument in one account are netted first (a long and a short of one perp
  cancel). Every rule then margins net positions one by one and adds them up per account
  (`sum_by_account`): no rule offsets one instrument against another. Each account (isolated
  sub-accounts included) is margined on its own positions, whatever venue a position is tagged with;
  collateral is not haircut by any rule.
- **Units.** size = quantity x contract_size (units of the asset); price = the instrument's forward
  (the mark of a linear product, the underlying of an option); notional = size x price (USD).
- **static**: linear products (spot, perpetual, future) pay |notional| x IMF (IM) and x MMF (MM) of
  their asset (`static.assets`, else `static.default`). Options: a short option pays the fractions
  on its underlying notional |size| x forward, as if it were the linear short or long it can turn
  into (fail closed: a delta-notional charge would let a short straddle off free); a long option pays
  nothing (its premium is paid in full, as on Deribit).
- **dydx**: every linear product is margined as a dYdX perpetual of its asset, in the tier
  `dydx_asset_tiers[asset]` (default `dydx_default_tier`; BTC and ETH are Large-Cap as on dYdX, so
  without ramp). The open notional OI of each instrument's market is computed from the book itself:
  the sum of its long net sizes x price (dYdX's open interest counts one side); pass `open_interest`
  (USD per instrument) for the venue's real figure. A book that is a sample of a venue understates it.
- **synthetix**: every linear product is margined as a Synthetix v3 perp of its asset, with
  `synthetix_markets[asset]` or the BTC defaults of `synthetix` for every asset; the minimum position
  margin is charged once per net position.
- **drift**: perpetuals and futures pay Drift's perp requirement (size-premium margin ratio,
  `drift_perp_markets[asset]` or `drift.perp`). Spot products use Drift's spot weights
  (`drift_spot_markets[asset]` or `drift.spot`), the position read as financed in USD (weight 1): a
  long of value V is a deposit counted at V x asset weight, so it needs V x (1 - weight); a short is
  a borrow counted at V x liability weight, so it needs V x (weight - 1); initial and maintenance
  weights alike, size discount / premium included.
  The initial asset weight's deposit scaling uses the book's own long spot value per asset.
- **deribit**: options only, Deribit's standard margin for inverse options applied to every option
  asset in coin terms: mark = option value per unit of underlying / U with U the option's forward,
  the per-contract requirement in coin (quantity x contract_size contracts), then x U back to USD.
  Deribit's standard margin for linear products is not implemented: they are charged under static.
- **Fallback.** Products a rule does not list (options under dydx, synthetix and drift; linear
  products under deribit) are charged under the static rule (`static`), counted in `fallback_im`
  and named in `notes`. Nothing is left unmargined.

Every requirement is >= 0 and IM >= MM per position, hence per account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from solvent.baselines import (
    BASELINE_NAMES,
    RULES,
    BaselineName,
    BaselineParams,
    deribit,
    drift,
    dydx,
    static,
    synthetix,
)
from solvent.baselines._common import FloatArray, as_float, sum_by_account
from solvent.engine.book import Book
from solvent.formats.provenance import Provenance, stamped
from solvent.market.state import FUTURE, OPTION, PERP, SPOT, MarketState
from solvent.pricing import TIME_FLOOR_YEARS, black76_price

BASELINE_SCHEMA = "solvent.baseline/1"
KIND_NAMES = {SPOT: "spot", PERP: "perp", FUTURE: "future", OPTION: "option"}


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """Per-account requirements (N,) under one venue rule, in the book's account order.

    im, mm: USD, IM >= MM >= 0. fallback_im: the part of `im` charged under the static rule for
    products the chosen rule does not cover (0 where none). notes: what was approximated, one line each.
    """

    account_ids: NDArray[np.object_]
    im: FloatArray
    mm: FloatArray
    rule: BaselineName
    notes: tuple[str, ...]
    fallback_im: FloatArray

    @property
    def n_accounts(self) -> int:
        """N."""
        return int(self.im.shape[0])

    def ratio(self, multifactor_im: ArrayLike) -> FloatArray:
        """(N,) baseline IM / multi-factor IM (NaN where the multi-factor IM is 0)."""
        model = as_float("multifactor_im", multifactor_im)
        if model.shape != self.im.shape:
            raise ValueError(f"multifactor_im: expected shape {self.im.shape}, got {model.shape}")
        safe = np.where(model > 0.0, model, 1.0)
        return np.where(model > 0.0, self.im / safe, np.nan)

    def to_dict(self, market_time: str, multifactor_im: ArrayLike | None = None) -> dict[str, Any]:
        """The solvent.baseline/1 document: rule, notes, totals and one record per account.

        With `multifactor_im` (N,), each record also carries `im_multifactor` and `ratio` (baseline IM /
        multi-factor IM, null where the multi-factor IM is 0).
        """
        ids = [str(a) for a in self.account_ids.tolist()]
        accounts: list[dict[str, Any]] = [
            {"account": a, "im": float(i), "mm": float(m), "fallback_im": float(f)}
            for a, i, m, f in zip(ids, self.im.tolist(), self.mm.tolist(), self.fallback_im.tolist(), strict=True)
        ]
        totals: dict[str, float] = {"im": float(self.im.sum()), "mm": float(self.mm.sum())}
        if multifactor_im is not None:
            model = as_float("multifactor_im", multifactor_im)
            ratios = self.ratio(model)
            for record, value, ratio in zip(accounts, model.tolist(), ratios.tolist(), strict=True):
                record["im_multifactor"] = float(value)
                record["ratio"] = None if np.isnan(ratio) else float(ratio)
            totals["im_multifactor"] = float(model.sum())
        return {
            "schema": BASELINE_SCHEMA,
            "rule": self.rule,
            "source": RULES[self.rule].source,
            "market_time": market_time,
            "notes": list(self.notes),
            "totals": totals,
            "accounts": accounts,
        }

    def to_json(
        self, market_time: str, multifactor_im: ArrayLike | None = None, provenance: Provenance | None = None
    ) -> bytes:
        """`to_dict` as indented JSON (with what made it, when given)."""
        document = stamped(self.to_dict(market_time, multifactor_im), provenance)
        return msgspec.json.format(msgspec.json.encode(document), indent=2)


@dataclass(frozen=True, eq=False)
class _NetBook:
    """One net position per (account, instrument): CSR offsets (N + 1,), instrument (M,), quantity (M,)."""

    offsets: NDArray[np.int64]
    instrument: NDArray[np.int64]
    quantity: FloatArray


def net_positions(book: Book) -> _NetBook:
    """Net the book's rows per (account, instrument), in account then instrument order (vectorised)."""
    n_inst = max(len(book.instruments), 1)
    key = book.position_account() * n_inst + book.pos_instrument.astype(np.int64)
    keys, inverse = np.unique(key, return_inverse=True)
    quantity = np.bincount(inverse.ravel(), weights=book.pos_quantity, minlength=keys.size).astype(np.float64)
    account = keys // n_inst
    offsets = np.searchsorted(account, np.arange(book.n_accounts + 1), side="left").astype(np.int64)
    return _NetBook(offsets=offsets, instrument=keys % n_inst, quantity=quantity)


def option_unit_values(state: MarketState, time_floor_years: float = TIME_FLOOR_YEARS) -> FloatArray:
    """(I,) present value of one unit of each instrument: contract_size x Black-76 premium for options, 0
    for linear products (as `RiskArrays.value`)."""
    table = state.instruments
    value = np.zeros(len(table), dtype=np.float64)
    o = np.flatnonzero(table.kind == OPTION)
    if o.size:
        premium = black76_price(
            state.forward[o],
            table.strike[o],
            state.expiry_years[o],
            state.option_vol[o],
            state.rate,
            table.is_call[o],
            time_floor=time_floor_years,
        )
        value[o] = table.contract_size[o] * premium
    return value


@dataclass(frozen=True, eq=False)
class _Positions:
    """Net positions laid out for the rules: (M,) each."""

    instrument: NDArray[np.int64]
    asset: NDArray[np.int64]
    kind: NDArray[np.int8]
    size: FloatArray  # units of the asset, signed
    price: FloatArray  # the instrument's forward (USD)


def _assets_with_overrides(state: MarketState, overrides: dict[str, Any], default: Any) -> list[tuple[Any, Any]]:
    """[(params, (A,) mask of the assets using them)]: the default first, then one entry per override."""
    names = np.array(state.assets, dtype=object)
    listed = np.isin(names, list(overrides))
    groups = [(default, ~listed)]
    groups += [(overrides[name], names == name) for name in state.assets if name in overrides]
    return groups


def _static(
    p: _Positions, mask: NDArray[np.bool_], state: MarketState, params: BaselineParams
) -> tuple[FloatArray, ...]:
    imf, mmf = params.static.fractions(state.assets)
    exposure = np.where(p.kind == OPTION, np.maximum(-p.size, 0.0), np.abs(p.size)) * p.price
    im, mm = static.requirements(np.where(mask, exposure, 0.0), imf[p.asset], mmf[p.asset])
    return im, mm


def _dydx(
    p: _Positions, mask: NDArray[np.bool_], state: MarketState, params: BaselineParams, oi: FloatArray
) -> tuple[FloatArray, ...]:
    tiers = params.dydx
    tier_of_asset = np.array(
        [tiers.tier_index(params.dydx_asset_tiers.get(name, params.dydx_default_tier)) for name in state.assets],
        dtype=np.int64,
    )
    notional = np.where(mask, p.size * p.price, 0.0)
    return dydx.requirements(notional, tier_of_asset[p.asset], oi[p.instrument], tiers)


def _synthetix(
    p: _Positions, mask: NDArray[np.bool_], state: MarketState, params: BaselineParams
) -> tuple[FloatArray, ...]:
    im, mm = np.zeros(p.size.shape), np.zeros(p.size.shape)
    for market, assets in _assets_with_overrides(state, params.synthetix_markets, params.synthetix):
        rows = mask & assets[p.asset]
        im_k, mm_k = synthetix.requirements(np.where(rows, p.size, 0.0), p.price, market)
        im, mm = im + im_k, mm + mm_k
    return im, mm


def _drift(
    p: _Positions, mask: NDArray[np.bool_], state: MarketState, params: BaselineParams
) -> tuple[FloatArray, ...]:
    im, mm = np.zeros(p.size.shape), np.zeros(p.size.shape)
    perp_rows = mask & (p.kind != SPOT)
    for market, assets in _assets_with_overrides(state, params.drift_perp_markets, params.drift.perp):
        rows = perp_rows & assets[p.asset]
        im_k, mm_k = drift.perp_requirements(np.where(rows, p.size, 0.0), p.price, market)
        im, mm = im + im_k, mm + mm_k
    spot_rows = mask & (p.kind == SPOT)
    value = np.abs(p.size) * p.price
    long_value = np.where(spot_rows & (p.size > 0.0), value, 0.0)
    deposits = np.bincount(p.asset, weights=long_value, minlength=len(state.assets))  # (A,) from the book
    for market, assets in _assets_with_overrides(state, params.drift_spot_markets, params.drift.spot):
        rows = spot_rows & assets[p.asset]
        size = np.where(rows, np.abs(p.size), 0.0)
        asset_im, asset_mm = drift.spot_asset_weights(size, market, deposits[p.asset])
        liability_im, liability_mm = drift.spot_liability_weights(size, market)
        long_rows, short_rows = rows & (p.size > 0.0), rows & (p.size < 0.0)
        im = (
            im
            + np.where(long_rows, value * (1.0 - asset_im), 0.0)
            + np.where(short_rows, value * (liability_im - 1.0), 0.0)
        )
        mm = (
            mm
            + np.where(long_rows, value * (1.0 - asset_mm), 0.0)
            + np.where(short_rows, value * (liability_mm - 1.0), 0.0)
        )
    return im, mm


def _deribit(
    p: _Positions, mask: NDArray[np.bool_], state: MarketState, params: BaselineParams, unit_value: FloatArray
) -> tuple[FloatArray, ...]:
    table = state.instruments
    underlying = p.price
    per_unit = unit_value[p.instrument] / table.contract_size[p.instrument]
    mark = np.where(mask, per_unit / underlying, 0.0)  # coin per contract (1 contract = 1 unit of the asset)
    im_coin, mm_coin = deribit.option_requirements(
        np.where(mask, p.size, 0.0),
        table.is_call[p.instrument],
        np.where(mask, table.strike[p.instrument], 0.0),
        underlying,
        mark,
        params.deribit,
    )
    return im_coin * underlying, mm_coin * underlying


def _covered(kind: NDArray[np.int8], name: BaselineName) -> NDArray[np.bool_]:
    """Which net positions the rule itself margins (the others fall back to static)."""
    if name == "static":
        return np.ones(kind.shape, dtype=np.bool_)
    if name == "deribit":
        return np.asarray(kind == OPTION)
    return np.asarray(kind != OPTION)


def _fallback_note(name: BaselineName, covered: NDArray[np.bool_], p: _Positions) -> str | None:
    """One line naming how many net positions, of which kinds, the static fallback margined (None: none)."""
    outside = ~covered & (p.size != 0.0)
    if not outside.any():
        return None
    kinds = ", ".join(KIND_NAMES[int(k)] for k in np.unique(p.kind[outside]))
    why = (
        "Deribit's standard margin for linear products is not implemented"
        if name == "deribit"
        else f"{name} lists no options"
    )
    return f"{int(outside.sum())} net {kinds} position(s) margined under the static rule: {why}"


def baseline_margin(
    book: Book,
    state: MarketState,
    params: BaselineParams,
    name: str | None = None,
    *,
    unit_value: ArrayLike | None = None,
    open_interest: ArrayLike | None = None,
) -> BaselineResult:
    """Every account's IM and MM under the venue rule `name` (default `params.rule`); see the module docstring.

    unit_value: (I,) present value of one unit of each instrument (`RiskArrays.value`; default
    `option_unit_values(state)`), used by deribit for the option marks. open_interest: (I,) open notional
    in USD of each instrument's market for dydx (default: the book's own long net notional).
    An unknown `name` raises ValueError naming the known ones.
    """
    chosen: BaselineName = params.rule if name is None else _checked_name(name)
    n_inst = len(state.instruments)
    if len(book.instruments) != n_inst:
        raise ValueError(f"state: {n_inst} instruments, the book has {len(book.instruments)}")
    values = option_unit_values(state) if unit_value is None else as_float("unit_value", unit_value, nonnegative=True)
    if values.shape != (n_inst,):
        raise ValueError(f"unit_value: expected shape ({n_inst},), got {values.shape}")
    net = net_positions(book)
    table = state.instruments
    inst = net.instrument
    p = _Positions(
        instrument=inst,
        asset=table.asset[inst].astype(np.int64),
        kind=table.kind[inst],
        size=net.quantity * table.contract_size[inst],
        price=state.forward[inst],
    )
    covered = _covered(p.kind, chosen)
    fallback_im, fallback_mm = _static(p, ~covered, state, params)
    notes: list[str] = []
    if chosen == "static":
        im, mm = _static(p, covered, state, params)  # covers everything: the fallback is all 0
        if np.any((p.kind == OPTION) & (p.size < 0.0)):
            notes.append("short options pay the static fractions on their underlying notional; long options 0")
    elif chosen == "dydx":
        if open_interest is None:
            long_notional = np.where(covered, np.maximum(p.size, 0.0) * p.price, 0.0)
            oi = np.bincount(inst, weights=long_notional, minlength=n_inst).astype(np.float64)
            notes.append("open interest per instrument from this book only (sum of long net notional)")
        else:
            oi = as_float("open_interest", open_interest, nonnegative=True)
            if oi.shape != (n_inst,):
                raise ValueError(f"open_interest: expected shape ({n_inst},), got {oi.shape}")
        im, mm = _dydx(p, covered, state, params, oi)
    elif chosen == "synthetix":
        im, mm = _synthetix(p, covered, state, params)
    elif chosen == "drift":
        im, mm = _drift(p, covered, state, params)
        notes.append("collateral balances are not weighted (Drift's asset weights apply to spot positions only)")
    else:
        im, mm = _deribit(p, covered, state, params, values)
    note = _fallback_note(chosen, covered, p)
    if note is not None:
        notes.append(note)
    offsets = net.offsets
    return BaselineResult(
        account_ids=book.account_ids,
        im=sum_by_account(im + fallback_im, offsets),
        mm=sum_by_account(mm + fallback_mm, offsets),
        rule=chosen,
        notes=tuple(notes),
        fallback_im=sum_by_account(fallback_im, offsets),
    )


def _checked_name(name: str) -> BaselineName:
    if name not in BASELINE_NAMES:
        raise ValueError(f"baseline: unknown rule {name!r}; choose one of {', '.join(BASELINE_NAMES)}")
    return name  # narrowed to BaselineName by the membership test
