"""Equity: collateral at market prices plus the mark-to-market of positions, per account; the book's collateral haircuts
and integrated-mode deltas at those prices (the array kernels are factors/haircuts.py's)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.engine.book import HOME_VENUE, Book
from solvent.errors import InputError
from solvent.factors.haircuts import CollateralHaircuts, collateral_deltas, collateral_haircuts
from solvent.factors.held import HeldAssets
from solvent.market.oracle import pessimistic_prices
from solvent.market.state import MarketState
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]


def collateral_columns(book: Book, state: MarketState, source: str = "<portfolio>") -> NDArray[np.int64]:
    """(C,) the market column of each of `book.collateral_assets`; an unquoted asset is an InputError."""
    index = state.asset_index
    missing = [a for a in book.collateral_assets if a not in index]
    if missing:
        code = book.collateral_assets.index(missing[0])
        row = int(np.flatnonzero(book.col_asset == code)[0])
        account = int(np.searchsorted(book.col_offsets, row, side="right") - 1)
        raise InputError(source, f"accounts[{account}].collateral.{missing[0]}", "asset is not in the market")
    return np.array([index[a] for a in book.collateral_assets], dtype=np.int64)


def collateral_row_values(
    book: Book, state: MarketState, source: str = "<portfolio>", pessimistic_k: float = 0.0
) -> FloatArray:
    """(R,) USD value of every collateral row (balance x price; pessimistic prices as `collateral_value`)."""
    columns = collateral_columns(book, state, source)
    if not book.col_asset.size:
        return np.zeros(0)
    prices = state.price[columns]
    values: FloatArray = book.col_amount * prices[book.col_asset]
    if pessimistic_k > 0.0 and state.has_oracle:
        low, high = pessimistic_prices(prices, state.oracle_uncertainty[columns], pessimistic_k)
        values = book.col_amount * np.where(book.col_amount > 0.0, low[book.col_asset], high[book.col_asset])
    return values


def collateral_value(
    book: Book, state: MarketState, source: str = "<portfolio>", pessimistic_k: float = 0.0
) -> FloatArray:
    """(N,) collateral at market prices (before any haircut); every collateral asset must be quoted.

    With `pessimistic_k` k > 0 and oracle sources, a balance is valued at max(P - kU, 0) and a debt
    (negative balance) at P + kU (`oracle.pessimistic_prices`). Haircuts: factors/haircuts.py.
    """
    values = collateral_row_values(book, state, source, pessimistic_k)
    return np.bincount(book.collateral_account(), weights=values, minlength=book.n_accounts).astype(np.float64)


@jit(parallel=True)
def _position_value_kernel(
    offsets: NDArray[np.int64],
    instrument: NDArray[np.int32],
    quantity: FloatArray,
    entry: FloatArray,
    gain_weight: FloatArray,
    size: FloatArray,
    forward: FloatArray,
    unit_value: FloatArray,
    out: FloatArray,
) -> None:
    """out[n] = the value of account n's positions: offsets (N+1,); instrument, quantity, entry (NaN for
    options), gain_weight (P,), the weight of a linear position's gain (a loss counts in full); size,
    forward, unit_value (I,); out (N,)."""
    for n in prange(offsets.shape[0] - 1):
        total = 0.0
        for p in range(offsets[n], offsets[n + 1]):
            i = instrument[p]
            if entry[p] == entry[p]:  # a linear product (options carry NaN)
                pnl = quantity[p] * size[i] * (forward[i] - entry[p])
                total += pnl * gain_weight[p] if pnl > 0.0 else pnl
            total += quantity[p] * unit_value[i]
        out[n] = total


def gain_weights(book: Book, remote_pnl_haircut: float) -> FloatArray:
    """(P,) the weight of each position's unrealised gain: 1 at the home venue, 1 - h at another venue."""
    return np.where(book.pos_venue == HOME_VENUE, 1.0, 1.0 - remote_pnl_haircut)


def position_value(
    book: Book, state: MarketState, unit_value: FloatArray, remote_pnl_haircut: float = 0.0
) -> FloatArray:
    """(N,) unrealised P&L of linear positions (size x (forward - entry)) plus options' premium value.

    A linear position held at another venue (`book.pos_venue`) counts a gain at (1 - remote_pnl_haircut)
    and a loss in full.
    """
    out = np.empty(book.n_accounts)
    _position_value_kernel(
        book.pos_offsets,
        book.pos_instrument,
        book.pos_quantity,
        book.pos_entry,
        gain_weights(book, remote_pnl_haircut),
        state.instruments.contract_size,
        state.forward,
        unit_value,
        out,
    )
    return out


def position_value_numpy(
    book: Book, state: MarketState, unit_value: FloatArray, remote_pnl_haircut: float = 0.0
) -> FloatArray:
    """The plain twin of `position_value`."""
    inst = book.pos_instrument
    size = state.instruments.contract_size[inst]
    linear_pnl = np.where(np.isnan(book.pos_entry), 0.0, size * (state.forward[inst] - np.nan_to_num(book.pos_entry)))
    pnl = book.pos_quantity * linear_pnl
    pnl = np.where(pnl > 0.0, pnl * gain_weights(book, remote_pnl_haircut), pnl)
    per_position = pnl + book.pos_quantity * unit_value[inst]
    return np.bincount(book.position_account(), weights=per_position, minlength=book.n_accounts).astype(np.float64)


def integrated_deltas(book: Book, state: MarketState, params: MarginParams, source: str) -> FloatArray | None:
    """(N, A) collateral spot deltas for the kernel in the integrated mode; None in the other modes."""
    if params.collateral.mode != "integrated":
        return None
    return collateral_deltas(book, state, collateral_columns(book, state, source))


def book_haircuts(
    book: Book,
    state: MarketState,
    params: MarginParams,
    greeks: FloatArray,
    source: str,
    held: HeldAssets | None = None,
) -> CollateralHaircuts | None:
    """The haircuts of `book` (modes "haircut", "integrated") at the prices equity uses; None in mode "none".
    greeks: (N, A, 3), or (H, 3) on the rows of `held`."""
    if params.collateral.mode == "none":
        return None
    columns = collateral_columns(book, state, source)
    values = collateral_row_values(book, state, source, params.oracle.pessimistic_k)
    return collateral_haircuts(book, state, params, columns, values, greeks, held)
