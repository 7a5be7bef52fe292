"""Books of one asset: the basis/calendar contingency and the per-book liquidity close-out.

Spot, the perpetual and each dated expiry of one asset are different markets: the scenarios move them
together (one forward per asset), so a long spot / short perpetual account nets to no delta and no market
risk, yet it carries basis, funding and roll risk and must be closed on two books. Every formula, default
and source is in docs/model.md ("Basis and calendar contingency"; "Liquidity add-on").

A *book* of asset a: 0 spot, 1 the perpetual, 2 + k the k-th dated expiry of a (ascending; a future and
the options of one expiry share a book: they settle on the same forward). Per account n, asset a, book b:

    d[a, b] = sum of q x unit delta   over the positions on (a, b)     (units of a; options' delta included)
    v[a, b] = sum of q x unit vega    over the positions on (a, b)     (USD per vol point; options only)
    long_a  = sum_b max(d[a, b], 0)   short_a = sum_b max(-d[a, b], 0)  (vega likewise: vlong_a, vshort_a)

    basis_{n,a}     = rate x min(long_a, short_a) x P_a  +  vega_contingency x min(vlong_a, vshort_a)
    liquidity_{n,a} = walk_bid(long_a) + walk_ask(short_a)  +  (vlong_a + vshort_a) x vega cost per vol point

In the integrated collateral mode a balance of a is spot delta: it joins book 0 of the basis sums (it offsets
a short perpetual in the scenarios) but not the liquidity sums (its close-out is the collateral haircut's).

`book_terms_kernel` is one compiled pass over the sparse positions (CSR); `book_layout` numbers the books.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.factors.held import HeldAssets, every_asset
from solvent.factors.liquidity import BOOK, SQRT_LAW, VOL_POINT, PackedLiquidity, _walk
from solvent.market.state import FUTURE, OPTION, PERP, SPOT, InstrumentTable

FloatArray = NDArray[np.float64]

#: Book codes below the expiries.
SPOT_BOOK, PERP_BOOK, FIRST_EXPIRY_BOOK = 0, 1, 2


@dataclass(frozen=True, eq=False)
class BookLayout:
    """instrument_book (I,): the book of each instrument within its asset; n_books: B, the most books any asset
    could have (2 + its expiries); single: whether every asset's instruments sit in one book (then no account
    holds two books of an asset through its positions)."""

    instrument_book: NDArray[np.int32]
    n_books: int
    single: bool


_LAYOUTS: dict[int, tuple[InstrumentTable, BookLayout]] = {}


def book_layout(table: InstrumentTable) -> BookLayout:
    """The books of `table`'s instruments (computed once per table, by identity: a table is immutable)."""
    hit = _LAYOUTS.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    n = len(table)
    books = np.zeros(n, dtype=np.int32)
    expiries: dict[int, list[datetime]] = {}
    for i in range(n):
        kind = int(table.kind[i])
        expiry = table.expiry[i]
        if kind in (FUTURE, OPTION) and expiry is not None:
            expiries.setdefault(int(table.asset[i]), []).append(expiry)
    order = {a: {e: k for k, e in enumerate(sorted(set(es)))} for a, es in expiries.items()}
    for i in range(n):
        kind = int(table.kind[i])
        expiry = table.expiry[i]
        if kind == SPOT:
            books[i] = SPOT_BOOK
        elif kind == PERP:
            books[i] = PERP_BOOK
        else:
            assert expiry is not None, "futures and options carry an expiry (formats/schemas.py)"
            books[i] = FIRST_EXPIRY_BOOK + order[int(table.asset[i])][expiry]
    used = {(int(a), int(b)) for a, b in zip(table.asset.tolist(), books.tolist(), strict=True)}
    per_asset: dict[int, int] = {}
    for a, _ in used:
        per_asset[a] = per_asset.get(a, 0) + 1
    layout = BookLayout(
        instrument_book=books,
        n_books=int(books.max()) + 1 if n else 1,
        single=all(count == 1 for count in per_asset.values()),
    )
    if len(_LAYOUTS) >= 8:
        _LAYOUTS.clear()
    _LAYOUTS[id(table)] = (table, layout)
    return layout


@jit(inline=True)
def asset_books_terms(
    bd: FloatArray,
    bv: FloatArray,
    base: int,
    n_books: int,
    collateral: float,
    a: int,
    price: float,
    rate: float,
    vega_rate: float,
    liq_on: bool,
    kind: NDArray[np.int8],
    curves: FloatArray,
    knots: NDArray[np.int64],
    adv: FloatArray,
    vol_spread: FloatArray,
    daily_vol: float,
    stress: float,
    half_spread: float,
    coefficient: float,
) -> tuple[float, float]:
    """(liquidity, basis) of one account on asset a from its book deltas bd[base : base + n_books] and vegas
    bv[...] (collateral: spot units of a in the integrated mode, else 0), as the module docstring defines them."""
    long_q = 0.0
    short_q = 0.0
    long_v = 0.0
    short_v = 0.0
    for b in range(n_books):
        d = bd[base + b]
        if d > 0.0:
            long_q += d
        elif d < 0.0:
            short_q -= d
        v = bv[base + b]
        if v > 0.0:
            long_v += v
        elif v < 0.0:
            short_v -= v
    liquidity = 0.0
    if liq_on:
        if kind[a] == BOOK:
            if long_q > 0.0:
                liquidity += price * _walk(long_q * stress, curves[0, a], knots[0, a]) / stress
            if short_q > 0.0:
                liquidity += price * _walk(short_q * stress, curves[1, a], knots[1, a]) / stress
        elif kind[a] == SQRT_LAW:
            if long_q > 0.0:
                impact = coefficient * daily_vol * math.sqrt(long_q * stress / adv[a])
                liquidity += price * long_q * (half_spread + impact)
            if short_q > 0.0:
                impact = coefficient * daily_vol * math.sqrt(short_q * stress / adv[a])
                liquidity += price * short_q * (half_spread + impact)
        spread = vol_spread[a]
        if spread == spread:  # not NaN
            liquidity += (long_v + short_v) * (spread / 2.0 / VOL_POINT) * stress
    if collateral != 0.0:  # the spot book, with the balance: recompute the basis sides
        long_q = 0.0
        short_q = 0.0
        for b in range(n_books):
            d = bd[base + b] + collateral if b == SPOT_BOOK else bd[base + b]
            if d > 0.0:
                long_q += d
            elif d < 0.0:
                short_q -= d
    basis = rate * min(long_q, short_q) * price + vega_rate * min(long_v, short_v)
    return liquidity, basis


@jit(parallel=True)
def _book_terms_kernel(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    held_offsets: NDArray[np.int64],
    held_asset: NDArray[np.int64],
    instrument_asset: NDArray[np.int32],
    instrument_book: NDArray[np.int32],
    unit_greeks: FloatArray,
    n_books: int,
    extra_delta: FloatArray,
    price: FloatArray,
    rate: float,
    vega_rate: float,
    liq_on: bool,
    kind: NDArray[np.int8],
    curves: FloatArray,
    knots: NDArray[np.int64],
    adv: FloatArray,
    vol_spread: FloatArray,
    daily_vol: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
    out_liquidity: FloatArray,
    out_basis: FloatArray,
    out_totals: FloatArray,
) -> None:
    """Outputs: (H,) liquidity and basis on the held rows (held_offsets (N + 1,), held_asset (H,), ascending per
    account, every asset of its positions among them), zero on entry (only the assets of an account's positions
    are written), and (2, N) their row sums, added in ascending asset order from 0 as a dense row sum adds them.
    extra_delta (N, A) or (0, A): collateral spot units (integrated)."""
    n_accounts = pos_offsets.shape[0] - 1
    n_assets = price.shape[0]
    has_extra = extra_delta.shape[0] > 0
    n_chunks = min(n_accounts, 256)
    for c in prange(n_chunks):
        bd = np.zeros(n_assets * n_books)
        bv = np.zeros(n_assets * n_books)
        seen = np.zeros(n_assets, dtype=np.bool_)
        held = np.empty(n_assets, dtype=np.int64)
        row_of = np.empty(n_assets, dtype=np.int64)  # each held asset's row
        lo = c * n_accounts // n_chunks
        hi = (c + 1) * n_accounts // n_chunks
        for acct in range(lo, hi):
            for h in range(held_offsets[acct], held_offsets[acct + 1]):
                row_of[held_asset[h]] = h
            n_held = 0
            for p in range(pos_offsets[acct], pos_offsets[acct + 1]):
                i = pos_instrument[p]
                q = pos_quantity[p]
                a = instrument_asset[i]
                slot = a * n_books + instrument_book[i]
                bd[slot] += q * unit_greeks[i, 0]
                bv[slot] += q * unit_greeks[i, 2]
                if not seen[a]:
                    seen[a] = True
                    held[n_held] = a
                    n_held += 1
            for k in range(n_held):
                a = held[k]
                base = a * n_books
                liquidity, basis = asset_books_terms(
                    bd,
                    bv,
                    base,
                    n_books,
                    extra_delta[acct, a] if has_extra else 0.0,
                    a,
                    price[a],
                    rate,
                    vega_rate,
                    liq_on,
                    kind,
                    curves,
                    knots,
                    adv,
                    vol_spread,
                    daily_vol[a],
                    stress,
                    half_spread,
                    coefficient,
                )
                if liq_on:
                    out_liquidity[row_of[a]] = liquidity
                out_basis[row_of[a]] = basis
                for b in range(n_books):
                    bd[base + b] = 0.0
                    bv[base + b] = 0.0
                seen[a] = False
            liquidity_total = 0.0  # ascending assets; the rows not written are 0, and x + 0.0 == x here
            basis_total = 0.0
            for h in range(held_offsets[acct], held_offsets[acct + 1]):
                liquidity_total += out_liquidity[h]
                basis_total += out_basis[h]
            out_totals[0, acct] = liquidity_total
            out_totals[1, acct] = basis_total


def book_terms_kernel(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    instrument_asset: NDArray[np.int32],
    unit_greeks: FloatArray,
    layout: BookLayout,
    extra_delta: FloatArray | None,
    price: FloatArray,
    rate: float,
    vega_rate: float,
    packed: PackedLiquidity | None,
    daily_vol: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
    held: HeldAssets | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(liquidity close-out per book, basis contingency, (2, N) the row sums of both, added in ascending asset
    order) in one pass over the CSR positions: (N, A) each, or (H,) on the rows of `held` (the assets of each
    account's positions among them, `factors.held.held_assets`).

    `packed` None: no liquidity inputs (the liquidity output is then 0). `extra_delta` (N, A): collateral as
    spot delta (the integrated mode), joining the spot book of the basis sums only.
    """
    n = pos_offsets.shape[0] - 1
    n_assets = price.shape[0]
    layout_held = every_asset(n, n_assets) if held is None else held
    out_liquidity = np.zeros(layout_held.n_rows)  # the kernel writes the assets of the positions only
    out_basis = np.zeros(layout_held.n_rows)
    out_totals = np.empty((2, n))
    if packed is None:
        kind = np.zeros(n_assets, dtype=np.int8)
        curves = np.zeros((2, n_assets, 4, 2))
        knots = np.zeros((2, n_assets), dtype=np.int64)
        adv = np.full(n_assets, np.nan)
        vol_spread = np.full(n_assets, np.nan)
    else:
        kind, curves, knots, adv, vol_spread = packed.kind, packed.curves, packed.knots, packed.adv, packed.vol_spread
    extra = np.zeros((0, n_assets)) if extra_delta is None else np.ascontiguousarray(extra_delta, dtype=np.float64)
    if n:
        _book_terms_kernel(
            pos_offsets,
            pos_instrument,
            pos_quantity,
            layout_held.offsets,
            layout_held.asset,
            instrument_asset,
            layout.instrument_book,
            unit_greeks,
            layout.n_books,
            extra,
            price,
            rate,
            vega_rate,
            packed is not None,
            kind,
            curves,
            knots,
            adv,
            vol_spread,
            daily_vol,
            stress,
            half_spread,
            coefficient,
            out_liquidity,
            out_basis,
            out_totals,
        )
    if held is None:
        return out_liquidity.reshape(n, n_assets), out_basis.reshape(n, n_assets), out_totals
    return out_liquidity, out_basis, out_totals


# ----------------------------------------------------------------------------------- one account, and the twin


def account_books(
    instrument: NDArray[np.int32],
    quantity: FloatArray,
    unit_greeks: FloatArray,
    instrument_asset: NDArray[np.int32],
    layout: BookLayout,
    n_assets: int,
) -> FloatArray:
    """(A, B, 2) one account's delta (units) and vega (USD per vol point) per asset and book, summed in position
    order from 0 (as the kernel sums them) from its positions (instrument, quantity: (P,))."""
    out = np.zeros((n_assets, layout.n_books, 2))
    for i, q in zip(np.asarray(instrument).tolist(), np.asarray(quantity, dtype=np.float64).tolist(), strict=True):
        a, b = int(instrument_asset[i]), int(layout.instrument_book[i])
        out[a, b, 0] += q * unit_greeks[i, 0]
        out[a, b, 1] += q * unit_greeks[i, 2]
    return out


@jit()
def books_terms(
    books: FloatArray,
    price: FloatArray,
    rate: float,
    vega_rate: float,
    liq_on: bool,
    kind: NDArray[np.int8],
    curves: FloatArray,
    knots: NDArray[np.int64],
    adv: FloatArray,
    vol_spread: FloatArray,
    daily_vol: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
) -> tuple[float, float]:
    """(liquidity, basis) of one account summed over assets from its books (A, B, 2) (`account_books`), each asset
    by `asset_books_terms`, the kernel's own formula (no collateral)."""
    n_assets, n_books = books.shape[0], books.shape[1]
    bd = np.ascontiguousarray(books[:, :, 0]).ravel()
    bv = np.ascontiguousarray(books[:, :, 1]).ravel()
    liquidity = 0.0
    basis = 0.0
    for a in range(n_assets):
        liq, bas = asset_books_terms(
            bd,
            bv,
            a * n_books,
            n_books,
            0.0,
            a,
            price[a],
            rate,
            vega_rate,
            liq_on,
            kind,
            curves,
            knots,
            adv,
            vol_spread,
            daily_vol[a],
            stress,
            half_spread,
            coefficient,
        )
        liquidity += liq
        basis += bas
    return liquidity, basis


def book_sides(books: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(long, short, long vega, short vega) (..., A) of books (..., A, B, 2): the sums of the positive and of the
    negative book figures, each >= 0."""
    delta, vega = books[..., 0], books[..., 1]
    return (
        np.maximum(delta, 0.0).sum(axis=-1),
        np.maximum(-delta, 0.0).sum(axis=-1),
        np.maximum(vega, 0.0).sum(axis=-1),
        np.maximum(-vega, 0.0).sum(axis=-1),
    )


def basis_numpy(books: FloatArray, price: FloatArray, rate: float, vega_rate: float) -> FloatArray:
    """(..., A) the basis contingency from books (..., A, B, 2) (collateral already in the spot book): the slow twin."""
    long_q, short_q, long_v, short_v = book_sides(books)
    out: FloatArray = rate * np.minimum(long_q, short_q) * price + vega_rate * np.minimum(long_v, short_v)
    return out
