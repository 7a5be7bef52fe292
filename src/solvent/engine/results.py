"""Margin results: immutable arrays per account, with table, DataFrame and per-account views."""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from solvent._extras import requires_extra
from solvent.engine.riskarrays import GREEK_NAMES
from solvent.factors.held import HeldAssets
from solvent.formats.outputs import ASSET_TERMS, IM_TERMS

if TYPE_CHECKING:
    from solvent.market.state import MarketState

FloatArray = NDArray[np.float64]

#: The oracle status of an asset quoted by one price (no oracle sources): not an `OracleStatus`.
DIRECT_QUOTE: Final = "DIRECT"


def complete_terms(terms: Mapping[str, FloatArray], n_accounts: int) -> dict[str, FloatArray]:
    """Every declared term (IM_TERMS), in order, zeros where `terms` lacks it; a term not declared is an error."""
    unknown = [name for name in terms if name not in IM_TERMS]
    if unknown:
        raise ValueError(f"IM term {unknown[0]!r} is not declared in IM_TERMS (solvent/formats/outputs.py)")
    return {name: terms[name] if name in terms else np.zeros(n_accounts) for name in IM_TERMS}


def complete_held_terms(held_terms: Mapping[str, FloatArray], n_rows: int) -> dict[str, FloatArray]:
    """Every declared per-asset term (ASSET_TERMS), in order, on the H held rows: (H,) zeros where absent."""
    unknown = [name for name in held_terms if name not in ASSET_TERMS]
    if unknown:
        raise ValueError(f"per-asset term {unknown[0]!r} is not declared in ASSET_TERMS (solvent/formats/outputs.py)")
    return {name: held_terms[name] if name in held_terms else np.zeros(n_rows) for name in ASSET_TERMS}


@dataclass(frozen=True)
class AssetMark:
    """What one asset was margined at: `price` (the aggregate of its oracle sources, or its one quoted price),
    `uncertainty` U (USD, 0 without sources), `oracle_status` (an `OracleStatus` name, or DIRECT_QUOTE without
    sources) and `rejected`, the sources not used, each (source name, `Rejection` name)."""

    price: float
    uncertainty: float
    oracle_status: str
    rejected: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`assets.<asset>` of solvent.margin/1 and solvent.explain/1)."""
        return {
            "price": self.price,
            "uncertainty": self.uncertainty,
            "oracle_status": self.oracle_status,
            "rejected_sources": [{"source": name, "reason": reason} for name, reason in self.rejected],
        }


def asset_marks(state: MarketState) -> dict[str, AssetMark]:
    """Every asset's AssetMark (in `state.assets` order) from a market state."""
    status = state.oracle_status_names
    uncertainty = state.oracle_uncertainty if state.has_oracle else np.zeros(len(state.assets))
    return {
        name: AssetMark(
            price=float(state.price[a]),
            uncertainty=float(uncertainty[a]),
            oracle_status=status.get(name, DIRECT_QUOTE),
            rejected=state.oracle_rejected.get(name, ()),
        )
        for a, name in enumerate(state.assets)
    }


@dataclass(frozen=True, eq=False)
class MarginResult:
    """Requirements, equity and Greeks for N accounts (arrays of length N, in the book's order).

    terms: IM by factor, in reporting order; `im` is their sum. Per asset, the figures are kept on the
    (account, asset held) rows of `held` (`factors.held.HeldAssets`: each account's assets, ascending), every
    other (account, asset) being 0: held_greeks (H, 3) net delta (units of the asset), gamma (per USD) and vega
    (USD per vol point); held_terms (H,) for each term that has a per-asset detail (`ASSET_TERMS`), summing
    over an account's rows to the term. `greeks` (N, A, 3) and `term_by_asset` (N, A) are their dense views in
    `assets` order, built when asked for. hhi: (N,) portfolio concentration, the Herfindahl index of |net delta
    notional| across assets (1 for one asset, 0 for a flat account), when the engine computed it.
    """

    account_ids: NDArray[np.object_]
    assets: tuple[str, ...]
    traded_assets: tuple[str, ...]
    terms: Mapping[str, FloatArray]
    im: FloatArray
    mm: FloatArray
    collateral: FloatArray
    unrealised_pnl: FloatArray
    equity: FloatArray
    health: FloatArray
    liquidatable: NDArray[np.bool_]
    held: HeldAssets
    held_greeks: FloatArray
    scenario_method: str
    n_scenarios: int
    held_terms: Mapping[str, FloatArray] = field(default_factory=dict)
    hhi: FloatArray | None = None
    oracle_status: Mapping[str, str] = field(default_factory=dict)
    # (N,) USD removed from collateral by haircuts (equity = collateral - this + unrealised_pnl) and its
    # (N, A) split by collateral asset; None when `collateral.mode` is "none". Not an IM term.
    collateral_haircut: FloatArray | None = None
    collateral_haircut_by_asset: FloatArray | None = None
    parent: NDArray[np.object_] | None = None  # (N,) the parent of each isolated sub-account, None elsewhere
    # (N,) predictive liquidation (docs/model.md, "Predictive liquidation"): the probability that equity touches
    # MM within `predictive.horizon_seconds`, whether it exceeds `predictive.threshold` while equity >= MM > 0,
    # and the delta-gamma loss volatility (USD per sqrt(year)) behind it.
    breach_probability: FloatArray | None = None
    early_flag: NDArray[np.bool_] | None = None
    loss_vol: FloatArray | None = None
    # The market state margined on: `marks` is derived from it when asked for (not on every stream cycle).
    market: MarketState | None = None

    def __repr__(self) -> str:
        return (
            f"MarginResult({self.n_accounts:,} accounts, {self.scenario_method} x {self.n_scenarios:,} scenarios: "
            f"IM {self.im.sum():,.0f}, MM {self.mm.sum():,.0f}, equity {self.equity.sum():,.0f} USD, "
            f"{int(self.liquidatable.sum()):,} liquidatable)"
        )

    def _repr_html_(self) -> str:
        """A notebook's view: the summary line and the first accounts' rows (`to_pandas`)."""
        head = self.to_pandas().head(10)
        return f"<p>{html.escape(repr(self))}</p>{head.to_html(float_format=lambda v: f'{v:,.2f}')}"

    @functools.cached_property
    def greeks(self) -> FloatArray:
        """(N, A, 3) the dense view of `held_greeks` (0 for an asset an account does not hold)."""
        return self.held.dense(self.held_greeks)

    @functools.cached_property
    def term_by_asset(self) -> dict[str, FloatArray]:
        """(N, A) the dense view of each of `held_terms`."""
        return {name: self.held.dense(values) for name, values in self.held_terms.items()}

    @functools.cached_property
    def marks(self) -> dict[str, AssetMark]:
        """What each asset was margined at, by asset name, every asset of `assets` (see AssetMark); empty for a
        result built without its market state."""
        return {} if self.market is None else asset_marks(self.market)

    @property
    def oracle_warnings(self) -> tuple[str, ...]:
        """One line per asset whose oracle status (`oracle_status`: asset -> `OracleStatus` name, for the
        assets priced from oracle sources) is not OK."""
        return tuple(
            f"{asset} oracle {status}: risk-increasing activity refused, liquidation on its price paused, margin at "
            + ("the TWAP band edge" if status == "DEVIATES_FROM_TWAP" else "the last known band")
            for asset, status in self.oracle_status.items()
            if status != "OK"
        )

    @property
    def n_accounts(self) -> int:
        """N."""
        return int(self.im.shape[0])

    def to_arrow(self) -> pa.Table:
        """One row per account: requirements, equity, health, every IM term, its per-asset detail, Greeks."""
        columns: dict[str, Any] = {
            "account": pa.array(self.account_ids, type=pa.string()),
            "im": self.im,
            "mm": self.mm,
            "equity": self.equity,
            "health": self.health,
            "liquidatable": self.liquidatable,
            "collateral": self.collateral,
            "unrealised_pnl": self.unrealised_pnl,
        }
        for name, values in self.terms.items():
            columns[f"im_{name}"] = values
        if self.breach_probability is not None and self.early_flag is not None and self.loss_vol is not None:
            columns["breach_probability"] = self.breach_probability
            columns["early_flag"] = self.early_flag
            columns["loss_vol"] = self.loss_vol
        if self.hhi is not None:
            columns["hhi"] = self.hhi
        if self.collateral_haircut is not None:
            columns["collateral_haircut"] = self.collateral_haircut
        index = {name: a for a, name in enumerate(self.assets)}
        account = self.held.account()
        order = np.argsort(self.held.asset, kind="stable")  # the rows of each asset, a stretch of `order`
        bounds = np.searchsorted(self.held.asset[order], np.arange(len(self.assets) + 1))

        def column(values: FloatArray, asset: str) -> FloatArray:
            rows = order[bounds[index[asset]] : bounds[index[asset] + 1]]
            out = np.zeros(self.n_accounts)
            out[account[rows]] = values[rows]
            return out

        for name, values in self.held_terms.items():
            for asset in self.traded_assets:
                columns[f"{name}_{asset}"] = column(values, asset)
        for asset in self.traded_assets:
            for g, greek in enumerate(GREEK_NAMES):
                columns[f"{greek}_{asset}"] = column(self.held_greeks[:, g], asset)
        return pa.table(columns)

    def to_pandas(self) -> Any:
        """The same table as a pandas DataFrame indexed by account (the `pandas` extra)."""
        with requires_extra("pandas"):
            import pandas  # noqa: F401  (pyarrow converts through it: a missing one is named here)
        return self.to_arrow().to_pandas().set_index("account")

    def row(self, account_id: str) -> dict[str, Any]:
        """One account's figures as a plain dict (KeyError if the account is unknown)."""
        hits = np.flatnonzero(self.account_ids == account_id)
        if hits.size == 0:
            raise KeyError(account_id)
        row: dict[str, Any] = self.to_arrow().slice(int(hits[0]), 1).to_pylist()[0]
        return row
