"""Each account's full figures as the stream last margined them (IM with every term, MM, equity, health,
Greeks, the predictive figures), kept for `GET /accounts/{account}` so that it answers without the venue's lock.

`FigureCopies` is told of every re-margin (`Monitor.on_remargin`: rows, their `MarginResult`, the batch's
sequence number) and writes them into one (N, W) matrix, a row per account, with the batch each row is as of.
`publish` copies it whole into an immutable `PublishedFigures` (the venue swaps one reference to it after each
batch), whose `document` gives an account's record in the format of `solvent margin` (`account_document`), bit
for bit (tests/test_published.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.engine.results import MarginResult

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]

#: The leading columns, in `account_document`'s order; the predictive, HHI and haircut ones are NaN where the
#: result has none (the layout says which it has).
SCALARS = (
    "im",
    "mm",
    "equity",
    "health",
    "liquidatable",
    "collateral",
    "unrealised_pnl",
    "breach_probability",
    "early_flag",
    "loss_vol",
    "hhi",
    "collateral_haircut",
)
GREEKS = ("delta", "gamma", "vega")


@dataclass(frozen=True)
class Layout:
    """Which columns a result fills: its term names, its per-asset term names, its traded assets (and their
    columns among its assets), and whether it has the predictive figures, the HHI and a collateral haircut."""

    terms: tuple[str, ...]
    asset_terms: tuple[str, ...]
    traded: tuple[str, ...]
    traded_columns: tuple[int, ...]
    predictive: bool
    hhi: bool
    haircut: bool

    @classmethod
    def of(cls, result: MarginResult) -> Layout:
        index = {name: a for a, name in enumerate(result.assets)}
        return cls(
            terms=tuple(result.terms),
            asset_terms=tuple(result.term_by_asset),
            traded=tuple(result.traded_assets),
            traded_columns=tuple(index[a] for a in result.traded_assets),
            predictive=result.breach_probability is not None,
            hhi=result.hhi is not None,
            haircut=result.collateral_haircut is not None,
        )

    @property
    def width(self) -> int:
        """W: the columns of one account."""
        return len(SCALARS) + len(self.terms) + len(self.traded) * (len(self.asset_terms) + len(GREEKS))

    def pack(self, result: MarginResult) -> FloatArray:
        """(K, W) the figures of every account of `result`."""
        k = result.n_accounts
        missing = np.full(k, math.nan)
        predictive = (result.breach_probability, result.early_flag, result.loss_vol)
        scalars = [
            result.im,
            result.mm,
            result.equity,
            result.health,
            result.liquidatable,
            result.collateral,
            result.unrealised_pnl,
            *(missing if value is None else value for value in predictive),
            missing if result.hhi is None else result.hhi,
            missing if result.collateral_haircut is None else result.collateral_haircut,
        ]
        columns = list(self.traded_columns)
        blocks = [np.column_stack(scalars), np.column_stack([result.terms[name] for name in self.terms])]
        blocks += [result.term_by_asset[name][:, columns] for name in self.asset_terms]
        blocks.append(result.greeks[:, columns, :].reshape(k, -1))
        return np.concatenate([np.asarray(b, dtype=np.float64).reshape(k, -1) for b in blocks], axis=1)

    def document(self, values: list[float], account: str) -> dict[str, Any]:
        """The `account_document` record of one account's packed `values`."""
        im, mm, equity, health, liquidatable, collateral, unrealised, breach, flag, loss_vol, hhi, haircut = values[
            : len(SCALARS)
        ]
        out: dict[str, Any] = {
            "account": account,
            "im": im,
            "mm": mm,
            "equity": equity,
            "health": health if math.isfinite(health) else None,
            "liquidatable": bool(liquidatable),
            "collateral": collateral,
            "unrealised_pnl": unrealised,
        }
        if self.predictive:
            out |= {"breach_probability": breach, "early_flag": bool(flag), "loss_vol": loss_vol}
        if self.hhi:
            out["hhi"] = hhi
        if self.haircut:
            out["collateral_haircut"] = haircut
        at = len(SCALARS)
        out["terms"] = dict(zip(self.terms, values[at : at + len(self.terms)], strict=True))
        at += len(self.terms)
        n = len(self.traded)
        out["term_by_asset"] = {}
        for name in self.asset_terms:
            out["term_by_asset"][name] = dict(zip(self.traded, values[at : at + n], strict=True))
            at += n
        out["greeks"] = {
            asset: dict(zip(GREEKS, values[at + 3 * j : at + 3 * j + 3], strict=True))
            for j, asset in enumerate(self.traded)
        }
        return out


@dataclass(frozen=True, eq=False)
class PublishedFigures:
    """The copies after a batch, immutable: per account its packed figures and `as_of` (the sequence number of
    the batch that margined it; -2: no copy yet)."""

    layout: Layout | None
    values: FloatArray
    as_of: IndexArray

    def document(self, row: int, account: str) -> dict[str, Any] | None:
        """The account's record with `as_of_seq`, or None without a copy."""
        as_of = int(self.as_of[row])
        if self.layout is None or as_of == NO_COPY:
            return None
        return {**self.layout.document(self.values[row].tolist(), account), "as_of_seq": as_of}


#: `as_of` of an account with no copy.
NO_COPY = -2


class FigureCopies:
    """The writer's side (under the venue's lock): `record` each re-margin, `publish` after each batch."""

    def __init__(self, n_accounts: int) -> None:
        self.layout: Layout | None = None
        self.values = np.zeros((n_accounts, 0))
        self.as_of = np.full(n_accounts, NO_COPY, dtype=np.int64)

    def record(self, rows: IndexArray, result: MarginResult, seq: int) -> None:
        """Keep `result`'s figures of `rows` as of batch `seq`. A result of another layout (another model's terms,
        a haircut appearing with new parameters) starts the copies afresh: the other accounts have none until
        they are margined again."""
        layout = Layout.of(result)
        if layout != self.layout:
            self.layout = layout
            self.values = np.full((self.as_of.size, layout.width), math.nan)
            self.as_of[:] = NO_COPY
        self.values[rows] = layout.pack(result)
        self.as_of[rows] = seq

    def publish(self) -> PublishedFigures:
        """An immutable copy of the figures now."""
        return PublishedFigures(self.layout, self.values.copy(), self.as_of.copy())
