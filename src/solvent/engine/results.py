"""Margin results: immutable arrays per account, with table, DataFrame and per-account views."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from solvent.engine.riskarrays import GREEK_NAMES

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class MarginResult:
    """Requirements, equity and Greeks for N accounts (arrays of length N, in the book's order).

    terms: IM by factor, in reporting order; `im` is their sum. term_by_asset: (N, A) per asset for
    the terms that have a per-asset detail (`liquidity`), summing over assets to the term. greeks:
    (N, A, 3) net delta (units of the asset), gamma (per USD) and vega (USD per vol point) per asset
    in `assets` order. hhi: (N,) portfolio concentration, the Herfindahl index of |net delta notional|
    across assets (1 for one asset, 0 for a flat account), when the engine computed it.
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
    greeks: FloatArray
    scenario_method: str
    n_scenarios: int
    term_by_asset: Mapping[str, FloatArray] = field(default_factory=dict)
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
        for name, values in self.term_by_asset.items():
            for asset in self.traded_assets:
                columns[f"{name}_{asset}"] = values[:, index[asset]]
        for asset in self.traded_assets:
            for g, greek in enumerate(GREEK_NAMES):
                columns[f"{greek}_{asset}"] = self.greeks[:, index[asset], g]
        return pa.table(columns)

    def to_pandas(self) -> Any:
        """The same table as a pandas DataFrame indexed by account."""
        return self.to_arrow().to_pandas().set_index("account")

    def row(self, account_id: str) -> dict[str, Any]:
        """One account's figures as a plain dict (KeyError if the account is unknown)."""
        hits = np.flatnonzero(self.account_ids == account_id)
        if hits.size == 0:
            raise KeyError(account_id)
        row: dict[str, Any] = self.to_arrow().slice(int(hits[0]), 1).to_pylist()[0]
        return row
