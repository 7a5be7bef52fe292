"""Each account's full figures as the stream last margined them (IM with every term, MM, equity, health,
Greeks, the predictive figures), kept for `GET /accounts/{account}` so that it answers without the venue's lock.

`FigureCopies` is told of every re-margin (`Monitor.on_remargin`: rows, their `MarginResult`, the batch's
sequence number), packs it (`Remargin`) and keeps it as an immutable layer over an (N, W) base matrix, a row per
account, with the batch each row is as of. In `solvent serve` the engine runs in a process of its own
(service/engine_process.py): there a `FigureOutbox` only packs each re-margin, and the HTTP process's
`FigureCopies` adds the packed re-margins it is sent. `publish` hands out an immutable `PublishedFigures` (the
venue swaps one reference to it after each batch), whose `document` gives an account's record in the format of
`solvent margin` (`account_document`), bit for bit (tests/test_published.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit
from solvent.engine.results import MarginResult

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

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
            asset_terms=tuple(result.held_terms),
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
        """(K, W) the figures of every account of `result`, a row each. The per-asset terms and Greeks come from the
        result's held rows (`MarginResult.held`), 0 for a traded asset an account does not hold: its dense views'
        entries, without building them; the rows are written by a compiled kernel, the GIL released."""
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
        leading = (*scalars, *(result.terms[name] for name in self.terms))
        columns = np.full((len(leading), result.n_accounts), math.nan)
        for j, column in enumerate(leading):
            if column is not None:
                columns[j] = column
        held = result.held
        by_asset = np.empty((len(self.asset_terms), held.n_rows))
        for t, name in enumerate(self.asset_terms):
            by_asset[t] = result.held_terms[name]
        where = np.full(held.n_assets, -1, dtype=np.int64)  # each asset's place among the traded ones
        where[list(self.traded_columns)] = np.arange(len(self.traded_columns), dtype=np.int64)
        out = np.empty((result.n_accounts, self.width))
        _pack(columns, held.offsets, held.asset, where, by_asset, result.held_greeks, len(self.traded), out)
        return out

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
#: Layers kept on top of the base before they are folded into a new one (each holds one re-margin's rows): a fold
#: copies the whole (N, W) base, so it comes every MAX_LAYERS re-margins; a read looks through at most this many.
MAX_LAYERS = 8


@dataclass(frozen=True, eq=False)
class Remargin:
    """One re-margin's figures, packed: `values` (K, W) in `layout` of `rows` (unique), margined in batch `seq`."""

    layout: Layout
    rows: IndexArray
    values: FloatArray
    seq: int

    @classmethod
    def of(cls, rows: IndexArray, result: MarginResult, seq: int) -> Remargin:
        layout = Layout.of(result)
        return cls(layout, rows, layout.pack(result), seq)


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
        """Keep `result`'s figures of `rows` (unique) as of batch `seq`."""
        self.add(Remargin.of(rows, result, seq))

    def add(self, remargin: Remargin) -> None:
        """Keep a packed re-margin. One of another layout (another model's terms, a haircut appearing with new
        parameters) starts the copies afresh: the other accounts have none until they are margined again."""
        n = self.base.as_of.size
        layout = remargin.layout
        if layout != self.layout:
            self.layout = layout
            self.base = PublishedFigures(
                layout, np.full((n, layout.width), math.nan), np.full(n, NO_COPY, dtype=np.int64)
            )
            self.layers = []
        if len(self.layers) == MAX_LAYERS:
            self._fold()
        index = np.full(n, -1, dtype=np.int32)
        index[remargin.rows] = np.arange(remargin.rows.size, dtype=np.int32)
        self.layers.append(Layer(index, remargin.values, remargin.seq))

    def _fold(self) -> None:
        """A new base: the old one with each account's newest layer row written over it (compiled, the GIL
        released: readers on the event loop go on while it copies)."""
        values, as_of = self.base.values.copy(), self.base.as_of.copy()
        written = np.zeros(as_of.size, dtype=np.bool_)
        for layer in reversed(self.layers):
            _write_layer(layer.index, layer.values, layer.seq, values, as_of, written)
        self.base = PublishedFigures(self.layout, values, as_of)
        self.layers = []

    def publish(self) -> PublishedFigures:
        """The figures now, immutable (the base and the layers are never written again)."""
        return PublishedFigures(self.layout, self.base.values, self.base.as_of, tuple(self.layers))


class FigureOutbox:
    """The engine process's side of the copies: `record` packs each re-margin (the same `Monitor.on_remargin`
    call as `FigureCopies.record`), `take` hands over those packed since the last call, for the HTTP process's
    `FigureCopies`."""

    def __init__(self) -> None:
        self.pending: list[Remargin] = []

    def record(self, rows: IndexArray, result: MarginResult, seq: int) -> None:
        self.pending.append(Remargin.of(rows, result, seq))

    def take(self) -> list[Remargin]:
        taken, self.pending = self.pending, []
        return taken


@jit()
def _pack(
    columns: FloatArray,
    offsets: IndexArray,
    asset: IndexArray,
    where: IndexArray,
    by_asset: FloatArray,
    greeks: FloatArray,
    n_traded: int,
    out: FloatArray,
) -> None:  # pragma: no cover - compiled
    """`Layout.pack` into `out` (K, W): each account's leading `columns` (C, K), then per asset term (by_asset
    (T, H) on the held rows, CSR by `offsets` (K + 1,) over `asset` (H,)) and per Greek (greeks (H, 3)) the value
    of each traded asset (`where` (A,): its place among them, -1 if not traded), 0 where the account holds none."""
    n_columns, n_terms = columns.shape[0], by_asset.shape[0]
    greeks_at = n_columns + n_terms * n_traded
    block = 256  # accounts a block: the transposing copy stays in cache
    for first in range(0, out.shape[0], block):
        last = min(first + block, out.shape[0])
        for j in range(n_columns):
            for k in range(first, last):
                out[k, j] = columns[j, k]
        for k in range(first, last):
            for j in range(n_columns, out.shape[1]):
                out[k, j] = 0.0
            for h in range(offsets[k], offsets[k + 1]):
                place = where[asset[h]]
                if place >= 0:
                    for t in range(n_terms):
                        out[k, n_columns + t * n_traded + place] = by_asset[t, h]
                    for c in range(3):
                        out[k, greeks_at + 3 * place + c] = greeks[h, c]


@jit()
def _write_layer(
    index: NDArray[np.int32], values: FloatArray, seq: int, out: FloatArray, as_of: IndexArray, written: BoolArray
) -> None:  # pragma: no cover - compiled
    """Write a layer into a base, newest layer first: the row of `values` (K, W) that `index` (N,) places for each
    account not `written` yet by a newer one, into `out` (N, W), and `seq` into `as_of` (N,)."""
    for row in range(index.shape[0]):
        at = index[row]
        if at >= 0 and not written[row]:
            out[row, :] = values[at, :]
            as_of[row] = seq
            written[row] = True
