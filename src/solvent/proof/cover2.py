"""Cover 2: the loss if the two account groups with the largest uncovered stress loss default, against the
insurance fund (CPMI-IOSCO PFMI 2012, Principle 4, key consideration 4.4; ../shared/REFERENCES.md).

The stress scenarios are the engine's own extreme-but-plausible ones: the scenario set its margin run is built on
(`params.scenarios`: the SPAN-like grid with its extreme moves, filtered historical simulation over a stressed
lookback, or the stressed-correlation Monte Carlo), each scenario one joint move the whole venue meets at once,
P&L as the risk arrays give it (their weights applied). In scenario s an account with equity E and scenario P&L
P_s leaves the venue an uncovered loss max(0, -(E + P_s)) if it defaults; a group (an account and its isolated
sub-accounts, the PFMI's participant and its affiliates) leaves the sum of its members'. The Cover-2 loss is,
over scenarios, the largest sum of the two largest groups' losses; the coverage ratio is the insurance fund over
it (>= 1: the fund covers the two largest defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from solvent.engine.book import Book
from solvent.engine.kernel import scenario_pnl_numpy
from solvent.engine.riskarrays import RiskArrays

FloatArray = NDArray[np.float64]
#: Accounts per block of the dense (accounts x scenarios) P&L.
CHUNK = 20_000


@dataclass(frozen=True)
class Defaulter:
    """One defaulting group: its name (the parent account), its member accounts and its uncovered loss (USD)."""

    group: str
    accounts: tuple[str, ...]
    uncovered_loss: float


@dataclass(frozen=True)
class Cover2:
    """The Cover-2 figure: the scenario that sets it (its label and index), the loss (USD), the defaulters
    behind it (the largest first, up to two), the insurance fund (USD) and the coverage ratio fund / loss
    (None where no group loses more than its equity in any scenario)."""

    scenario: str
    scenario_index: int
    loss: float
    defaulters: tuple[Defaulter, ...]
    insurance_fund: float
    coverage_ratio: float | None
    n_scenarios: int

    def to_dict(self) -> dict[str, Any]:
        """The `cover2` record of solvent.solvency/1."""
        return {
            "scenario": self.scenario,
            "scenario_index": self.scenario_index,
            "n_scenarios": self.n_scenarios,
            "loss": self.loss,
            "insurance_fund": self.insurance_fund,
            "coverage_ratio": self.coverage_ratio,
            "defaulters": [
                {"group": d.group, "accounts": list(d.accounts), "uncovered_loss": d.uncovered_loss}
                for d in self.defaulters
            ],
        }


def account_groups(account_ids: Sequence[str], parent: Sequence[str | None]) -> tuple[NDArray[np.int64], list[str]]:
    """((N,) each account's group code, the groups' names): an isolated sub-account joins its parent's group."""
    keys = [p if p is not None else a for a, p in zip(account_ids, parent, strict=True)]
    names, codes = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return codes.astype(np.int64), [str(name) for name in names]


def group_losses(
    book: Book,
    arrays: RiskArrays,
    equity: FloatArray,
    groups: NDArray[np.int64],
    n_groups: int,
    extra_delta: FloatArray | None = None,
) -> sparse.csc_matrix:
    """(groups x scenarios) uncovered loss, sparse: the sum over each group's accounts of max(0, -(E + P_s)).

    `extra_delta` (N, A): units of each asset held besides the positions (collateral in the integrated mode)."""
    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    vals: list[FloatArray] = []
    n = book.n_accounts
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        offsets = book.pos_offsets[lo : hi + 1] - book.pos_offsets[lo]
        part = slice(int(book.pos_offsets[lo]), int(book.pos_offsets[hi]))
        pnl = scenario_pnl_numpy(offsets, book.pos_instrument[part], book.pos_quantity[part], arrays)
        if extra_delta is not None:
            pnl = pnl + extra_delta[lo:hi] @ arrays.asset_pnl
        uncovered = np.maximum(-(equity[lo:hi, np.newaxis] + pnl), 0.0)
        account, scenario = np.nonzero(uncovered)
        rows.append(groups[lo + account])
        cols.append(scenario)
        vals.append(uncovered[account, scenario])
    shape = (n_groups, arrays.n_scenarios)
    losses = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    out = losses.tocsc()
    out.sort_indices()  # ties between groups then go to the first group by name, whatever the accounts' order
    return out


def top_two(losses: sparse.csc_matrix) -> tuple[FloatArray, NDArray[np.int64]]:
    """Per scenario (column): ((S,) the sum of its two largest losses, (S, 2) their rows, -1 where fewer)."""
    n_scen = losses.shape[1]
    total = np.zeros(n_scen)
    who = np.full((n_scen, 2), -1, dtype=np.int64)
    for s in range(n_scen):
        start, stop = losses.indptr[s], losses.indptr[s + 1]
        values = losses.data[start:stop]
        if values.size == 0:
            continue
        best = np.argsort(-values, kind="stable")[:2]
        total[s] = float(values[best].sum())
        who[s, : best.size] = losses.indices[start:stop][best]
    return total, who


def cover2(
    book: Book,
    arrays: RiskArrays,
    labels: Sequence[str],
    equity: FloatArray,
    insurance_fund: float,
    extra_delta: FloatArray | None = None,
) -> Cover2:
    """The Cover-2 figure of `book` (equity (N,) USD, as margined) on the scenarios of `arrays` (`labels`)."""
    codes, names = account_groups(book.account_ids.tolist(), book.parent.tolist())
    losses = group_losses(book, arrays, equity, codes, len(names), extra_delta)
    total, who = top_two(losses)
    worst = int(np.argmax(total)) if total.size else 0
    column = losses.getcol(worst).toarray().ravel() if total.size else np.zeros(0)
    defaulters = tuple(
        Defaulter(names[g], tuple(sorted(book.account_ids[codes == g].tolist())), float(column[g]))
        for g in (who[worst].tolist() if total.size else [])
        if g >= 0
    )
    loss = float(total[worst]) if total.size else 0.0
    return Cover2(
        scenario=labels[worst] if total.size else "",
        scenario_index=worst,
        loss=loss,
        defaulters=defaulters,
        insurance_fund=insurance_fund,
        coverage_ratio=insurance_fund / loss if loss > 0.0 else None,
        n_scenarios=int(total.size),
    )
