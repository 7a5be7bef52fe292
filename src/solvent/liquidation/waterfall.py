"""The backstop waterfall for bankrupt accounts: insurance fund, auto-deleveraging (ADL), socialisation.

Pure: arrays in, an immutable `WaterfallResult` of transfers out; the streaming engine applies them. Every rule
and formula is in docs/model.md, "Backstop waterfall". In short, for each bankrupt account k, in ascending
account index (the fund and the counterparties are shared, so the order matters and is fixed):

    C_k = Σ c_p (market close-out cost of every position),  D_k = C_k − E_k > 0 (deficit if closed in the market)
    1. fund ≥ D_k: close everything in the market, the fund pays D_k, the account ends at 0.
    2. else the fund pays f_k = min(fund, max(−E_k, 0)); L_k = max(−E_k, 0) − f_k is carried by ADL
       counterparties through bankruptcy prices p_b = mark + sign(q) · L_k · w_p / (|q| · contract_size),
       w_p = the position's share of the account's linear notional; counterparties ranked by
       PnL% (at p_b) × leverage, positive scores only; ties by account, then position row.
    3. the rest (unmatched linear quantity, all options) is closed in the market at c_p × unmatched fraction
       and carries its share of L_k: the residual R_k is paid by the fund, then charged to solvent accounts
       pro rata to equity (each capped at its equity); what remains is `unresolved` (reported, never hidden).

Conventions chosen here (docs/model.md has the reasons): a counterparty's ADL loss never exceeds its equity
(its fill is capped at equity / (contract_size · |p_b − mark|)); leverage is linear gross notional over
equity at mark; an account whose equity exceeds what its close-out finally costs gives the surplus to the
fund (`fund_received`), so every bankrupt account ends at exactly 0 unless `unresolved` > 0.

Determinism: positions are first put in a canonical order (account, instrument, linear, quantity, entry,
mark, contract size, cost, input row), so every sum is taken in the same order whatever the input order;
the only loops are over bankrupt accounts and over each one's (instrument, side) groups. Candidate
selection, ranking and filling within a group are vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: ADL ranks this many of the best-scored counterparties first, four times more while they cannot meet the demand.
_FIRST_RANKED = 64


@dataclass(frozen=True, eq=False)
class WaterfallResult:
    """The transfers of one waterfall run. Every array is read-only.

    Per bankrupt account (K,), in `accounts` order (ascending account row, the processing order):
    `fund_paid` (USD the insurance fund paid toward the account, ≥ 0), `fund_received` (USD of leftover
    equity the fund took, ≥ 0; non-zero only for an account with positive equity whose final close-out cost
    less), `adl_loss` (USD carried by ADL counterparties), `market_cost` (slippage paid closing in the
    market), `socialised` (USD charged to solvent accounts) and `unresolved` (USD nobody covered: the venue
    is insolvent by that much).

    ADL fills (F,), parallel arrays in the order they were made: `adl_bankrupt` and `adl_counterparty`
    (account rows), `adl_row` (the counterparty's position row), `adl_instrument`, `adl_quantity` (closed
    from the counterparty's position, signed as it: the position becomes q − adl_quantity) and `adl_price`
    (the bankruptcy price). Market closes (P,): `close_row` (a bankrupt position row), `close_quantity`
    (closed in the market, signed as the position) and `close_cost` (USD slippage).

    Per account (N,): `charges` (USD socialised onto each solvent account, summed over bankrupt accounts)
    and `equity_change` (net change of every account's equity at unchanged marks; a bankrupt account ends
    at exactly 0, or at −unresolved).
    """

    fund_before: float
    fund_after: float
    accounts: IndexArray
    fund_paid: FloatArray
    fund_received: FloatArray
    adl_loss: FloatArray
    market_cost: FloatArray
    socialised: FloatArray
    unresolved: FloatArray
    adl_bankrupt: IndexArray
    adl_counterparty: IndexArray
    adl_row: IndexArray
    adl_instrument: IndexArray
    adl_quantity: FloatArray
    adl_price: FloatArray
    close_row: IndexArray
    close_quantity: FloatArray
    close_cost: FloatArray
    charges: FloatArray
    equity_change: FloatArray

    def __post_init__(self) -> None:
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @property
    def total_unresolved(self) -> float:
        """USD of deficit nobody covered (the venue's insolvency), summed over bankrupt accounts."""
        return float(self.unresolved.sum())


# ------------------------------------------------------------------------------------------- validation


def _floats(name: str, value: ArrayLike) -> FloatArray:
    """A float64 copy of a one-dimensional input (the caller's array is never touched)."""
    array = np.array(value, dtype=np.float64, copy=True)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _integers(name: str, value: ArrayLike) -> IndexArray:
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=True)


def _first(name: str, values: NDArray[np.generic], bad: BoolArray, rule: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{row}] {rule}, got {values[row].item()!r}")


@dataclass(frozen=True, eq=False)
class _Positions:
    """Validated positions in canonical order; `origin` maps each canonical row to its input row."""

    origin: IndexArray
    account: IndexArray
    instrument: IndexArray
    quantity: FloatArray
    entry: FloatArray
    mark: FloatArray
    size: FloatArray
    linear: BoolArray
    cost: FloatArray
    account_start: IndexArray  # (N + 1,) rows of account n: account_start[n]:account_start[n + 1]
    by_instrument: IndexArray  # canonical rows sorted by instrument (stable)
    instrument_sorted: IndexArray  # instrument[by_instrument], to find one instrument's rows by bisection

    def instrument_rows(self, instrument: int) -> IndexArray:
        """Canonical rows of one instrument, ascending."""
        lo, hi = np.searchsorted(self.instrument_sorted, [instrument, instrument + 1])
        return self.by_instrument[lo:hi]


def _positions(
    n_accounts: int,
    bankrupt_mask: BoolArray,
    pos_account: ArrayLike,
    pos_instrument: ArrayLike,
    pos_quantity: ArrayLike,
    pos_entry: ArrayLike,
    pos_mark: ArrayLike,
    contract_size: ArrayLike,
    is_linear: ArrayLike,
    pos_close_cost: ArrayLike,
) -> _Positions:
    account = _integers("pos_account", pos_account)
    instrument = _integers("pos_instrument", pos_instrument)
    quantity = _floats("pos_quantity", pos_quantity)
    entry = _floats("pos_entry", pos_entry)
    mark = _floats("pos_mark", pos_mark)
    size = _floats("contract_size", contract_size)
    cost = _floats("pos_close_cost", pos_close_cost)
    linear_in = np.asarray(is_linear)
    if linear_in.dtype != np.bool_ or linear_in.ndim != 1:
        raise ValueError(f"is_linear must be a one-dimensional bool array, got {linear_in.dtype} {linear_in.shape}")
    linear = linear_in.copy()
    m = account.shape[0]
    for name, array in (
        ("pos_instrument", instrument),
        ("pos_quantity", quantity),
        ("pos_entry", entry),
        ("pos_mark", mark),
        ("contract_size", size),
        ("is_linear", linear),
        ("pos_close_cost", cost),
    ):
        if array.shape != (m,):
            raise ValueError(f"{name} must have one value per position ({m}), got shape {array.shape}")
    _first(
        "pos_account", account, (account < 0) | (account >= n_accounts), f"must be an account row in [0, {n_accounts})"
    )
    _first("pos_instrument", instrument, instrument < 0, "must be an instrument index >= 0")
    _first("pos_quantity", quantity, ~np.isfinite(quantity), "must be finite")
    _first("contract_size", size, ~(np.isfinite(size) & (size > 0.0)), "must be finite and > 0")
    _first("pos_mark", mark, ~np.isfinite(mark), "must be finite")
    _first("pos_mark", mark, linear & ~(mark > 0.0), "of a linear position must be > 0")
    _first("pos_entry", entry, linear & ~(np.isfinite(entry) & (entry > 0.0)), "of a linear position must be > 0")
    read = bankrupt_mask[account]  # only the bankrupt accounts' costs are read
    _first("pos_close_cost", cost, read & ~(np.isfinite(cost) & (cost >= 0.0)), "of a bankrupt account must be >= 0")
    _first("pos_close_cost", cost, read & (quantity == 0.0) & (cost != 0.0), "of a flat position must be 0")

    # Canonical order: equal rows are interchangeable, so every later sum is independent of the input order.
    rows = np.arange(m, dtype=np.int64)
    order = np.lexsort((rows, cost, size, mark, entry, quantity, linear, instrument, account))
    account, instrument, quantity = account[order], instrument[order], quantity[order]
    entry, mark, size, linear, cost = entry[order], mark[order], size[order], linear[order], cost[order]
    by_instrument = np.argsort(instrument, kind="stable").astype(np.int64)
    _same_per_instrument(instrument, by_instrument, order, linear, size, mark)
    account_start = np.searchsorted(account, np.arange(n_accounts + 1)).astype(np.int64)
    return _Positions(
        origin=order.astype(np.int64),
        account=account,
        instrument=instrument,
        quantity=quantity,
        entry=entry,
        mark=mark,
        size=size,
        linear=linear,
        cost=np.where(bankrupt_mask[account], cost, 0.0),
        account_start=account_start,
        by_instrument=by_instrument,
        instrument_sorted=instrument[by_instrument],
    )


def _same_per_instrument(
    instrument: IndexArray,
    by_instrument: IndexArray,
    order: NDArray[np.intp],
    linear: BoolArray,
    size: FloatArray,
    mark: FloatArray,
) -> None:
    """Every row of an instrument must agree on is_linear, contract_size and pos_mark (they are the
    instrument's, and ADL matches quantities of one instrument at one bankruptcy price)."""
    same = instrument[by_instrument][1:] == instrument[by_instrument][:-1]
    for name, values in (("is_linear", linear), ("contract_size", size), ("pos_mark", mark)):
        sorted_values = values[by_instrument]
        differs = same & (sorted_values[1:] != sorted_values[:-1])
        if differs.any():
            i = int(np.flatnonzero(differs)[0])
            row = int(order[by_instrument[i + 1]])
            raise ValueError(
                f"{name}[{row}] must be the same for every position of instrument {int(instrument[by_instrument[i]])}"
                f", got {sorted_values[i + 1].item()!r} and {sorted_values[i].item()!r}"
            )


# -------------------------------------------------------------------------------------------------- ADL


def adl_fills(
    demand: float,
    bankruptcy_price: float,
    mark: float,
    size: float,
    candidate_rows: IndexArray,
    candidate_account: IndexArray,
    candidate_quantity: FloatArray,
    candidate_entry: FloatArray,
    account_equity: FloatArray,
    account_gross: FloatArray,
) -> tuple[IndexArray, FloatArray]:
    """Rank the candidate counterparties of one bankrupt (instrument, side) and fill `demand` units.

    Candidates (C,) are positions on the instrument opposite to the bankrupt side, held by accounts that are
    not bankrupt and have equity > 0 (`account_equity`, `account_gross`: (C,) their account's equity and
    linear gross notional). Score = sign(q) · (p_b − entry) / entry · gross / equity; only scores > 0 qualify;
    rank by score descending, then account, then `candidate_rows` ascending. Each fill is at most |q|, and an
    account's fills together lose at most its equity: Σ fill · size · |p_b − mark| ≤ equity. Returns (indices
    into the candidates in rank order, filled quantity > 0 of each), vectorised (no loop over candidates).

    What is left of the demand (and of an account's room) before a fill is the demand less the earlier fills,
    subtracted one at a time in rank order, exactly as a loop would: the fills never add up to more than the
    demand, and the last fill of a fully matched demand is exactly what the earlier ones left, so subtracting
    the fills in order from a position of |q| = demand leaves exactly 0 (never `cumsum − fill`, whose
    cancellation next to a large candidate over- or under-fills a small remainder).
    """
    pnl = np.sign(candidate_quantity) * (bankruptcy_price - candidate_entry) / candidate_entry
    with np.errstate(over="ignore", invalid="ignore"):  # a tiny equity: leverage +inf ranks first (0 · inf is NaN: out)
        score = pnl * (account_gross / account_equity)
    keep = np.flatnonzero(score > 0.0)
    if keep.size == 0 or demand <= 0.0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    loss_per_unit = size * abs(bankruptcy_price - mark)
    # Rank only the best-scored candidates while they can meet the demand: every candidate scoring at least the
    # k-th best (ties included) is a prefix of the full ranking, and a prefix that meets the demand fills exactly
    # what the full ranking would (later candidates get nothing; an account's room depends only on its earlier
    # candidates). k grows fourfold until the prefix meets the demand or holds every candidate.
    k = _FIRST_RANKED
    while True:
        if k < keep.size:
            cut = np.partition(score[keep], keep.size - k)[keep.size - k]
            prefix = keep[score[keep] >= cut]
        else:
            prefix = keep
        rank = prefix[np.lexsort((candidate_rows[prefix], candidate_account[prefix], -score[prefix]))]
        available = np.abs(candidate_quantity[rank])
        if loss_per_unit > 0.0:
            # Quantity an account can absorb before its equity reaches 0, shared by its candidates in rank order.
            with np.errstate(over="ignore"):  # a tiny loss per unit: room +inf, no cap
                capacity = account_equity[rank] / loss_per_unit
            available = np.minimum(available, _room(candidate_account[rank], available, capacity))
        left = np.subtract.accumulate(np.concatenate(([demand], available)))  # demand left before each fill
        if prefix.size == keep.size or left[-1] <= 0.0:
            break
        k *= 4
    fill = np.clip(left[:-1], 0.0, available)
    filled = fill > 0.0
    return rank[filled].astype(np.int64), fill[filled]


def _room(account: IndexArray, available: FloatArray, capacity: FloatArray) -> FloatArray:
    """(C,) what each candidate's account can still absorb before it (≥ 0): the account's `capacity` less the
    `available` of its earlier candidates (in the given order), subtracted one at a time per account, so a
    small account's room is exact whatever the other accounts hold. Vectorised over accounts; the loop is over
    the depth of an account's candidate list (one per venue in the streaming engine's store)."""
    within = np.argsort(account, kind="stable")  # by account, the given order within each
    first = np.r_[True, account[within][1:] != account[within][:-1]]
    group = np.cumsum(first) - 1
    depth = np.arange(within.size) - np.flatnonzero(first)[group]
    left = capacity[within][first]  # per account, what it can still absorb
    room = np.empty(available.size)
    by_depth = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(int(depth.max()) + 2))
    for d in range(int(depth.max()) + 1):
        at = by_depth[bounds[d] : bounds[d + 1]]  # at most one candidate per account
        room[within[at]] = left[group[at]]
        left[group[at]] -= available[within[at]]
    return np.maximum(room, 0.0)


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class _State:
    """The running state of one run (private, mutated only inside `run_waterfall`)."""

    fund: float
    equity: FloatArray  # (N,) current equity of every account
    quantity: FloatArray  # (M,) current quantities, canonical order
    gross: FloatArray  # (N,) current linear gross notional
    bankrupt: BoolArray
    close_out: FloatArray  # (N,) C_k, Σ c_p of each bankrupt account
    adl: list[tuple[int, IndexArray, FloatArray, float]]  # (bankrupt account, canonical rows, signed qty, p_b)
    closes: list[tuple[IndexArray, FloatArray, FloatArray]]  # (canonical rows, signed quantity, cost)
    charges: FloatArray


def run_waterfall(
    bankrupt: ArrayLike,
    equity: ArrayLike,
    fund: float,
    *,
    pos_account: ArrayLike,
    pos_instrument: ArrayLike,
    pos_quantity: ArrayLike,
    pos_entry: ArrayLike,
    pos_mark: ArrayLike,
    contract_size: ArrayLike,
    is_linear: ArrayLike,
    pos_close_cost: ArrayLike,
    account_gross: ArrayLike | None = None,
) -> WaterfallResult:
    """Resolve the bankrupt accounts one by one, in ascending account row (docs/model.md, "Backstop waterfall").

    bankrupt: (K,) distinct account rows. equity: (N,) equity at mark of every account, USD. fund: the insurance
    fund, USD ≥ 0. Positions (M,) of every account: pos_account (account row), pos_instrument (instrument
    index), pos_quantity (signed), pos_entry (entry price; NaN allowed for options), pos_mark (USD per unit of
    the underlying for linear instruments, per contract for options), contract_size, is_linear (bool), and
    pos_close_cost (c_p ≥ 0: USD slippage of closing the position fully in the market now; only the bankrupt
    accounts' rows are read). Every bankrupt account must have a deficit D_k = Σ c_p − E_k > 0.
    account_gross: (N,) each account's linear gross notional Σ|q|·size·mark, ≥ 0 (the leverage of the ADL
    ranking); by default computed from the positions given. A caller that passes only the positions the
    waterfall can touch (the bankrupt accounts' and those on their linear instruments) passes it for all.

    Raises ValueError naming the offending value. Nothing passed in is modified.
    """
    equity_now = _floats("equity", equity)
    n = equity_now.shape[0]
    _first("equity", equity_now, ~np.isfinite(equity_now), "must be finite")
    fund_before = float(fund)
    if not (np.isfinite(fund_before) and fund_before >= 0.0):
        raise ValueError(f"fund must be finite and >= 0, got {fund!r}")
    accounts = _integers("bankrupt", bankrupt)
    _first("bankrupt", accounts, (accounts < 0) | (accounts >= n), f"must be an account row in [0, {n})")
    accounts = np.sort(accounts)
    repeated = accounts[1:] == accounts[:-1]
    if repeated.any():
        raise ValueError(f"bankrupt must hold distinct account rows, got {int(accounts[1:][repeated][0])} twice")
    bankrupt_mask = np.zeros(n, dtype=np.bool_)
    bankrupt_mask[accounts] = True
    book = _positions(
        n,
        bankrupt_mask,
        pos_account,
        pos_instrument,
        pos_quantity,
        pos_entry,
        pos_mark,
        contract_size,
        is_linear,
        pos_close_cost,
    )
    close_out = np.asarray(np.bincount(book.account, weights=book.cost, minlength=n), dtype=np.float64)
    deficit = close_out[accounts] - equity_now[accounts]
    bad = ~(deficit > 0.0)
    if bad.any():
        k = int(accounts[np.flatnonzero(bad)[0]])
        cost_k, equity_k = float(close_out[k]), float(equity_now[k])
        raise ValueError(
            f"bankrupt account {k} has no deficit: close-out cost {cost_k!r} - equity {equity_k!r} "
            f"= {cost_k - equity_k!r}, must be > 0"
        )

    if account_gross is None:
        notional = np.where(book.linear, np.abs(book.quantity) * book.size * book.mark, 0.0)
        gross = np.asarray(np.bincount(book.account, weights=notional, minlength=n), dtype=np.float64)
    else:
        gross = _floats("account_gross", account_gross).copy()
        if gross.shape != (n,):
            raise ValueError(f"account_gross must be ({n},), got shape {gross.shape}")
        _first("account_gross", gross, ~(np.isfinite(gross) & (gross >= 0.0)), "must be finite and >= 0")
    state = _State(
        fund=fund_before,
        equity=equity_now,
        quantity=book.quantity.copy(),
        gross=gross,
        bankrupt=bankrupt_mask,
        close_out=close_out,
        adl=[],
        closes=[],
        charges=np.zeros(n),
    )
    per_account = np.zeros((6, accounts.size))
    final_equity = state.equity.copy()
    for j, k in enumerate(accounts.tolist()):
        per_account[:, j] = _resolve(int(k), book, state)
        final_equity[k] = -per_account[5, j]  # exactly 0 unless unresolved
    initial = _floats("equity", equity)
    final_equity[~bankrupt_mask] = state.equity[~bankrupt_mask]
    return _result(book, state, accounts, per_account, fund_before, final_equity - initial)


def _resolve(k: int, book: _Positions, state: _State) -> tuple[float, float, float, float, float, float]:
    """Resolve bankrupt account k; returns (fund_paid, fund_received, adl_loss, market_cost, socialised,
    unresolved) and records its transfers in `state`."""
    rows = np.arange(book.account_start[k], book.account_start[k + 1], dtype=np.int64)
    q = state.quantity[rows]  # never touched before: bankrupt accounts are not counterparties
    cost = book.cost[rows]
    e = float(state.equity[k])
    open_rows = q != 0.0
    total_cost = float(state.close_out[k])
    if state.fund >= total_cost - e:  # 1. the fund covers the whole deficit
        paid = total_cost - e
        state.fund -= paid
        state.closes.append((rows[open_rows], q[open_rows], cost[open_rows]))
        return paid, 0.0, 0.0, total_cost, 0.0, 0.0

    mark_loss = max(-e, 0.0)
    paid = min(state.fund, mark_loss)  # 2. the fund toward the mark loss, then ADL for the rest
    state.fund -= paid
    carried = mark_loss - paid
    unmatched = np.ones(rows.size)  # fraction of each position ADL left to the market
    left = q.copy()  # quantity of each position ADL left to the market, signed as the position
    adl_loss = 0.0
    linear = book.linear[rows] & open_rows
    total_notional = float((np.abs(q) * book.size[rows] * book.mark[rows])[linear].sum())
    if total_notional > 0.0:
        # (instrument, side) groups, in ascending instrument, shorts before longs.
        key = book.instrument[rows] * 2 + (q > 0.0)
        for value in np.unique(key[linear]).tolist():
            group = np.flatnonzero(linear & (key == value))
            unmatched[group], left[group], loss = _deleverage(k, rows[group], carried / total_notional, book, state)
            adl_loss += loss

    # 3. the rest in the market, then the fund, solvent accounts, unresolved
    closing = open_rows & (left != 0.0)
    close_cost = cost * unmatched
    market_cost = float(close_cost.sum())
    state.closes.append((rows[closing], left[closing], close_cost[closing]))
    residual = -(e + paid + adl_loss - market_cost)
    if residual <= 0.0:  # the account's own equity covered its close-out: the surplus goes to the fund
        state.fund -= residual
        return paid, -residual, adl_loss, market_cost, 0.0, 0.0
    from_fund = min(state.fund, residual)
    state.fund -= from_fund
    socialised, unresolved = _socialise(residual - from_fund, state)
    return paid + from_fund, 0.0, adl_loss, market_cost, socialised, unresolved


def _deleverage(
    k: int, group: IndexArray, loss_per_notional: float, book: _Positions, state: _State
) -> tuple[float, FloatArray, float]:
    """ADL of one (instrument, side) group of bankrupt account k's linear positions; returns (the fraction of
    the group's quantity left unmatched, (G,) the quantity of each row left unmatched, signed as the row,
    USD of mark loss moved onto the counterparties).

    p_b = mark + sign(q) · L_k · w_p / (|q| · size) = mark · (1 + sign(q) · L_k / Σ notional): the same for
    every position of the group, so the group is matched as one quantity and each of its rows keeps the
    same unmatched fraction. What is left is the demand less the fills, subtracted one at a time in the
    order they are made (and booked): exactly 0 when the demand is met, and for a group of one row exactly
    what booking the fills leaves of the position, so the fills and the market close together close it
    exactly (no dust left, never past 0).
    """
    first = int(group[0])
    side = 1.0 if state.quantity[first] > 0.0 else -1.0
    mark, size, instrument = float(book.mark[first]), float(book.size[first]), int(book.instrument[first])
    demand = float(np.abs(state.quantity[group]).sum())
    price = mark + side * loss_per_notional * mark
    rows = book.instrument_rows(instrument)
    account = book.account[rows]
    q = state.quantity[rows]
    eligible = (q * side < 0.0) & ~state.bankrupt[account] & (state.equity[account] > 0.0)
    rows, account, q = rows[eligible], account[eligible], q[eligible]
    picked, fill = adl_fills(
        demand,
        price,
        mark,
        size,
        book.origin[rows],
        account,
        q,
        book.entry[rows],
        state.equity[account],
        state.gross[account],
    )
    if picked.size == 0:
        return 1.0, state.quantity[group].copy(), 0.0
    rows, account, signed = rows[picked], account[picked], np.sign(q[picked]) * fill
    state.quantity[rows] -= signed
    loss = fill * size * abs(price - mark)
    np.subtract.at(state.equity, account, loss)
    np.subtract.at(state.gross, account, fill * size * mark)
    state.adl.append((k, rows, signed, price))
    remaining = float(np.subtract.accumulate(np.concatenate(([demand], fill)))[-1])  # >= 0: fill <= what is left
    fraction = remaining / demand
    left = np.array([side * remaining]) if group.size == 1 else state.quantity[group] * fraction
    return fraction, left, float(loss.sum())


def _socialise(amount: float, state: _State) -> tuple[float, float]:
    """Charge `amount` to the solvent accounts (not bankrupt, equity > 0) pro rata to equity, each at most its
    equity; returns (charged, unresolved)."""
    solvent = ~state.bankrupt & (state.equity > 0.0)
    base = np.where(solvent, state.equity, 0.0)
    total = float(base.sum())
    if total <= 0.0:
        return 0.0, amount
    ratio = min(amount / total, 1.0)
    charge = base * ratio  # ≤ equity, since ratio ≤ 1
    state.equity -= charge
    state.charges += charge
    return float(charge.sum()), (0.0 if amount <= total else amount - total)


def _result(
    book: _Positions,
    state: _State,
    accounts: IndexArray,
    per_account: FloatArray,
    fund_before: float,
    equity_change: FloatArray,
) -> WaterfallResult:
    if state.adl:
        adl_bankrupt = np.concatenate([np.full(rows.size, k, dtype=np.int64) for k, rows, _, _ in state.adl])
        adl_rows = np.concatenate([rows for _, rows, _, _ in state.adl])
        adl_quantity = np.concatenate([qty for _, _, qty, _ in state.adl])
        adl_price = np.concatenate([np.full(rows.size, price) for _, rows, _, price in state.adl])
    else:
        adl_bankrupt, adl_rows = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        adl_quantity, adl_price = np.zeros(0), np.zeros(0)
    close_rows = np.concatenate([np.zeros(0, dtype=np.int64), *(rows for rows, _, _ in state.closes)])
    close_quantity = np.concatenate([np.zeros(0), *(qty for _, qty, _ in state.closes)])
    close_cost = np.concatenate([np.zeros(0), *(cost for _, _, cost in state.closes)])
    return WaterfallResult(
        fund_before=fund_before,
        fund_after=state.fund,
        accounts=accounts,
        fund_paid=per_account[0].copy(),
        fund_received=per_account[1].copy(),
        adl_loss=per_account[2].copy(),
        market_cost=per_account[3].copy(),
        socialised=per_account[4].copy(),
        unresolved=per_account[5].copy(),
        adl_bankrupt=adl_bankrupt,
        adl_counterparty=book.account[adl_rows],
        adl_row=book.origin[adl_rows],
        adl_instrument=book.instrument[adl_rows],
        adl_quantity=adl_quantity,
        adl_price=adl_price,
        close_row=book.origin[close_rows],
        close_quantity=close_quantity,
        close_cost=close_cost,
        charges=state.charges,
        equity_change=equity_change,
    )
