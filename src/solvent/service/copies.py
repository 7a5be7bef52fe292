"""Each account's full figures as the stream last margined them (IM with every term, MM, equity, health,
Greeks, the predictive figures), kept for `GET /accounts/{account}` so that it answers without the venue's lock.

`FigureCopies` is told of every re-margin (`Monitor.on_remargin`: rows, their `MarginResult`, the batch's
sequence number) and keeps them as immutable layers over an (N, W) base matrix, a row per account, with the batch
each row is as of. `publish` hands out an immutable `PublishedFigures` (the venue swaps one reference to it after
each batch), whose `document` gives an account's record in the format of `solvent margin` (`account_document`), bit
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
        """(K, W) the figures of every account of `result` (a transposed view: written a column at a time)."""
        out = np.full((self.width, result.n_accounts), math.nan)
        scalars = (
            result.im,
            result.mm,
            result.equity,
            result.health,
            result.liquidatable,
            result.collateral,
            result.unrealised_pnl,
            result.breach_probability,
            result.early_flag,
            result.loss_vol,
            result.hhi,
            result.collateral_haircut,
        )
        for j, column in enumerate(scalars):
            if column is not None:
                out[j] = column
        at = len(SCALARS)
        for name in self.terms:
            out[at] = result.terms[name]
            at += 1
        columns = list(self.traded_columns)
        n = len(columns)
        for name in self.asset_terms:
            out[at : at + n] = result.term_by_asset[name][:, columns].T
            at += n
        out[at:] = result.greeks[:, columns, :].reshape(result.n_accounts, 3 * n).T
        transposed: FloatArray = out.T
        return transposed

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


#: `as_of` of an account with no copy.
NO_COPY = -2
#: Layers kept on top of the base before they are folded into a new one (each holds one re-margin's rows).
MAX_LAYERS = 4


@dataclass(frozen=True, eq=False)
class Layer:
    """One re-margin's figures, immutable: `values` (K, W) of `rows`, margined in batch `seq`; `index` (N,) the
    position of each account in `rows` (-1: not in it)."""

    index: NDArray[np.int32]
    values: FloatArray
    seq: int


@dataclass(frozen=True, eq=False)
class PublishedFigures:
    """The copies after a batch, immutable: a base (per account its packed figures and `as_of`, the sequence
    number of the batch that margined it; NO_COPY: none yet) and the re-margins since, newest last."""

    layout: Layout | None
    values: FloatArray
    as_of: IndexArray
    layers: tuple[Layer, ...] = ()

    def document(self, row: int, account: str) -> dict[str, Any] | None:
        """The account's record with `as_of_seq`, or None without a copy."""
        if self.layout is None:
            return None
        for layer in reversed(self.layers):
            at = int(layer.index[row])
            if at >= 0:
                return {**self.layout.document(layer.values[at].tolist(), account), "as_of_seq": layer.seq}
        as_of = int(self.as_of[row])
        if as_of == NO_COPY:
            return None
        return {**self.layout.document(self.values[row].tolist(), account), "as_of_seq": as_of}


class FigureCopies:
    """The writer's side (under the venue's lock): `record` each re-margin, `publish` after each batch.

    Publishing copies nothing: each re-margin becomes an immutable layer over an immutable base, and every
    MAX_LAYERS layers are folded into a new base (one copy of the (N, W) matrix), so a batch costs its own rows,
    not the venue's."""

    def __init__(self, n_accounts: int) -> None:
        self.layout: Layout | None = None
        self.base = PublishedFigures(None, np.zeros((n_accounts, 0)), np.full(n_accounts, NO_COPY, dtype=np.int64))
        self.layers: list[Layer] = []

    def record(self, rows: IndexArray, result: MarginResult, seq: int) -> None:
        """Keep `result`'s figures of `rows` (unique) as of batch `seq`. A result of another layout (another
        model's terms, a haircut appearing with new parameters) starts the copies afresh: the other accounts have
        none until they are margined again."""
        n = self.base.as_of.size
        layout = Layout.of(result)
        if layout != self.layout:
            self.layout = layout
            self.base = PublishedFigures(
                layout, np.full((n, layout.width), math.nan), np.full(n, NO_COPY, dtype=np.int64)
            )
            self.layers = []
        if len(self.layers) == MAX_LAYERS:
            self._fold()
        index = np.full(n, -1, dtype=np.int32)
        index[rows] = np.arange(rows.size, dtype=np.int32)
        self.layers.append(Layer(index, layout.pack(result), seq))

    def _fold(self) -> None:
        """A new base: the old one with every layer written over it, oldest first."""
        values, as_of = self.base.values.copy(), self.base.as_of.copy()
        for layer in self.layers:
            rows = np.flatnonzero(layer.index >= 0)
            values[rows] = layer.values[layer.index[rows]]
            as_of[rows] = layer.seq
        self.base = PublishedFigures(self.layout, values, as_of)
        self.layers = []

    def publish(self) -> PublishedFigures:
        """The figures now, immutable (the base and the layers are never written again)."""
        return PublishedFigures(self.layout, self.base.values, self.base.as_of, tuple(self.layers))
