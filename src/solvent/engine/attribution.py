"""Attribution: each position's share of an account's market-risk margin (the Euler allocation).

Not in the hot path: for one account, or a few, on demand (`solvent margin --explain ACCOUNT`). The risk
arrays are built once, by the same code path as `margin_book` (`scenario_risk_arrays`).

Within each scenario group g the measure is a weighted sum of the account's losses L = -P&L,
M_g = Σ_s w_s L_s, with tail weights w over the group's losses sorted descending (ties by scenario
index, so the choice is deterministic), m = n (1 - c) (`measures.tail_mass`), j = floor(m):

  ES     1/m on the j largest losses and (m - j)/m on the (j+1)-th   (m < 1: 1 on the largest)
  VaR    1 on the (j+1)-th largest
  worst  1 on the largest

A group whose M_g is not > 0 is floored away and gets no weight. L is linear in the positions,
L_s = Σ_p -P&L_{p,s}, so position p's contribution C_p = Σ_s w_s (-P&L_{p,s}) and Σ_p C_p = Σ_g max(M_g, 0)
= market_risk. Where the tail is unique, C_p = q_p ∂market_risk/∂q_p (the measure is homogeneous of
degree 1 in the quantities): the Euler allocation. A position with C_p < 0 offsets the requirement.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.engine.book import Book
from solvent.engine.measures import tail_mass
from solvent.engine.results import AssetMark
from solvent.engine.riskarrays import RiskArrays, scenario_risk_arrays
from solvent.errors import InputError
from solvent.formats.provenance import Provenance, stamped
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState
from solvent.params import MarginParams
from solvent.scenarios import ScenarioSet

FloatArray = NDArray[np.float64]

EXPLAIN_SCHEMA = "solvent.explain/1"


# ------------------------------------------------------------------------ pure functions over arrays


def rank_weights(n: int, confidence: float, measure: str) -> FloatArray:
    """(k,) weights of the k largest of n losses (descending) whose weighted sum is the measure."""
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if measure == "worst":
        return np.ones(1, dtype=np.float64)
    m = tail_mass(n, confidence)
    whole = math.floor(m)
    if measure == "var":
        weights = np.zeros(min(whole, n - 1) + 1, dtype=np.float64)
        weights[-1] = 1.0
        return weights
    if measure != "es":
        raise ValueError(f"unknown risk measure {measure!r}")
    if m < 1.0:
        return np.ones(1, dtype=np.float64)
    weights = np.full(min(whole + 1, n), 1.0 / m, dtype=np.float64)
    if whole < n:
        weights[whole] = (m - whole) / m
    return weights


def es_standard_error(losses: FloatArray, group_offsets: NDArray[np.int64], confidence: float) -> float:
    """The sampling standard error of Σ_g max(ES_g, 0) over i.i.d. equally likely scenarios (Monte Carlo draws).

    Per group of n losses with ES > 0 (losses with P&L weights applied): the asymptotic variance of the
    empirical ES, (Var(L | L >= VaR) + c (ES - VaR)^2) / (n (1 - c)) (Yamai and Yoshiba, "Comparative analyses
    of expected shortfall and value-at-risk: their estimation error, decomposition, and optimization", Monetary
    and Economic Studies 20(1), 2002), the tail variance over the losses at or beyond the VaR. Groups are
    summed in standard deviations (they share the draws: an upper bound). Stratified draws (`mc.stratified`)
    make the true error smaller: this is a conservative figure.
    """
    total = 0.0
    for start, stop in itertools.pairwise(group_offsets.tolist()):
        n = stop - start
        if n < 2:
            continue
        ordered = -np.sort(-losses[start:stop])
        m = tail_mass(n, confidence)
        whole = math.floor(m)
        var = float(ordered[min(whole, n - 1)])
        es = float(ordered[0]) if m < 1.0 else (float(ordered[:whole].sum()) + (m - whole) * var) / m
        if not es > 0.0:
            continue
        beyond = ordered[: min(whole, n - 1) + 1]
        spread = float(beyond.var()) if beyond.size > 1 else 0.0
        total += math.sqrt((spread + confidence * (es - var) ** 2) / (n * (1.0 - confidence)))
    return total


def tail_weights(
    losses: FloatArray, group_offsets: NDArray[np.int64], confidence: float, measure: str
) -> tuple[FloatArray, FloatArray]:
    """(w (S,), M (G,)): scenario weights with Σ_s w_s L_s = Σ_g max(M_g, 0), and each group's measure M_g.

    losses (S,) is one account's loss per scenario; group_offsets (G + 1,) the scenario groups. Ties among
    the losses go to the lower scenario index (a stable sort). w is 0 outside the tails and in every
    group whose measure is not > 0 (floored at 0, as in the margin kernel).
    """
    weights = np.zeros(losses.shape[0], dtype=np.float64)
    values = np.zeros(group_offsets.shape[0] - 1, dtype=np.float64)
    for g, (start, stop) in enumerate(itertools.pairwise(group_offsets.tolist())):
        by_rank = rank_weights(stop - start, confidence, measure)
        if by_rank.size == 0:
            continue
        tail = start + np.argsort(-losses[start:stop], kind="stable")[: by_rank.size]
        values[g] = float(by_rank @ losses[tail])
        if values[g] > 0.0:
            weights[tail] = by_rank
    return weights, values


def position_pnl(pos_instrument: NDArray[np.int32], pos_quantity: FloatArray, arrays: RiskArrays) -> FloatArray:
    """(P, S) scenario P&L of each position on its own: quantity x its risk-array row.

    A linear position's row is linear_weight x its asset's row, an option's its own row, exactly as in
    `kernel.scenario_pnl_numpy` (which sums these rows per account).
    """
    weight = arrays.linear_weight[pos_instrument]
    linear_rows = weight[:, np.newaxis] * arrays.asset_pnl[arrays.instrument_asset[pos_instrument]]
    per_unit = np.where((weight != 0.0)[:, np.newaxis], linear_rows, arrays.dense_rows(pos_instrument))
    return np.asarray(pos_quantity[:, np.newaxis] * per_unit, dtype=np.float64)


def position_contributions(
    pos_offsets: NDArray[np.int64],
    pos_instrument: NDArray[np.int32],
    pos_quantity: FloatArray,
    arrays: RiskArrays,
    confidence: float,
    measure: str,
) -> FloatArray:
    """(P,) every position's Euler contribution to its account's market-risk term, for K accounts in CSR
    form at once: the vectorised form of what `attribute_margin` reports per account (ties alike).

    Per account the scenario losses are ranked within each group (a stable sort, so ties go to the lower
    scenario index), the measure's rank weights put on its tail, groups whose measure is not > 0 dropped;
    a position's contribution is -(its P&L row . those weights). Dense (P, S) and (K, S) work: meant for the
    few accounts a liquidation slices, not a whole venue.
    """
    n_accounts = pos_offsets.shape[0] - 1
    account = np.repeat(np.arange(n_accounts), np.diff(pos_offsets))
    pnl = position_pnl(pos_instrument, pos_quantity, arrays)
    losses = np.zeros((n_accounts, arrays.n_scenarios))
    np.add.at(losses, account, -pnl)
    weights = np.zeros_like(losses)
    rows = np.arange(n_accounts)[:, np.newaxis]
    for start, stop in itertools.pairwise(arrays.group_offsets.tolist()):
        by_rank = rank_weights(stop - start, confidence, measure)
        if by_rank.size == 0:
            continue
        tail = start + np.argsort(-losses[:, start:stop], axis=1, kind="stable")[:, : by_rank.size]
        value = (losses[rows, tail] * by_rank).sum(axis=1)
        weights[rows, tail] = np.where(value[:, np.newaxis] > 0.0, by_rank, 0.0)
    contribution: FloatArray = -np.einsum("ps,ps->p", pnl, weights[account]) + 0.0
    return contribution


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PositionContribution:
    """One position's contribution to the market-risk term (USD); share = contribution / market_risk.

    position is the position's index within the account in the book's canonical order (sorted by instrument
    id, venue and entry price, one instrument's positions at one entry price merged: engine/book.py). share is
    NaN when the account's market risk is 0.
    """

    position: int
    instrument: str
    asset: str
    quantity: float
    contribution: float
    share: float


@dataclass(frozen=True)
class AssetContribution:
    """The sum of the contributions of an account's positions on one asset."""

    asset: str
    contribution: float
    share: float


@dataclass(frozen=True)
class TailScenario:
    """A scenario with weight in the Euler allocation: its index, group, label, weight and the account's loss."""

    scenario: int
    group: int
    label: str
    weight: float
    loss: float


@dataclass(frozen=True)
class Attribution:
    """One account's market-risk term split over its positions (and summed per asset).

    terms: every IM term of the account (as `margin_book` reports them, summing to its IM);
    add_ons_by_asset: each add-on with a per-asset split (liquidity, concentration, oracle), by asset;
    marks: what each asset of the account's positions was margined at (price, uncertainty, oracle status,
    rejected sources). All three are filled by `solvent.api.explain_margin`; `attribute_margin` leaves them empty.

    positions and assets are ordered by contribution, largest first (drivers, then offsets); ties keep
    the portfolio's order. tail lists the scenarios with weight, by group and then by loss, largest first.
    market_risk = Σ_g max(M_g, 0) = Σ contributions to rounding; it equals the `market_risk` term of
    `margin_book` for the account to rounding (the kernel nets linear positions before summing).
    standard_error: the Monte Carlo standard error of market_risk (`mc` scenarios and measure "es"; None
    otherwise): `es_standard_error`.
    """

    account_id: str
    market_risk: float
    positions: tuple[PositionContribution, ...]
    assets: tuple[AssetContribution, ...]
    tail: tuple[TailScenario, ...]
    measure: str
    confidence: float
    scenario_method: str
    n_scenarios: int
    terms: Mapping[str, float] = field(default_factory=dict)
    add_ons_by_asset: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    marks: Mapping[str, AssetMark] = field(default_factory=dict)  # what each asset of the positions was margined at
    standard_error: float | None = None

    def to_document(self, market_time: str) -> dict[str, Any]:
        """The `solvent.explain/1` JSON document (a share is null when the market risk is 0)."""

        def share(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "schema": EXPLAIN_SCHEMA,
            "market_time": market_time,
            "account": self.account_id,
            "scenario_method": self.scenario_method,
            "n_scenarios": self.n_scenarios,
            "measure": self.measure,
            "confidence": self.confidence,
            "market_risk": self.market_risk,
            "standard_error": self.standard_error,
            "positions": [
                {
                    "position": p.position,
                    "instrument": p.instrument,
                    "asset": p.asset,
                    "quantity": p.quantity,
                    "contribution": p.contribution,
                    "share": share(p.share),
                }
                for p in self.positions
            ],
            "assets": [
                {"asset": a.asset, "contribution": a.contribution, "share": share(a.share)} for a in self.assets
            ],
            "tail": [
                {"scenario": t.scenario, "group": t.group, "label": t.label, "weight": t.weight, "loss": t.loss}
                for t in self.tail
            ],
            "terms": dict(self.terms),
            "add_ons_by_asset": {term: dict(by_asset) for term, by_asset in self.add_ons_by_asset.items()},
            "marks": {asset: mark.to_dict() for asset, mark in self.marks.items()},
        }

    def to_json(self, market_time: str, provenance: Provenance | None = None) -> bytes:
        """The `solvent.explain/1` document as indented JSON bytes (with what made it, when given)."""
        document = stamped(self.to_document(market_time), provenance)
        return msgspec.json.format(msgspec.json.encode(document), indent=2)


# ------------------------------------------------------------------------------------------- assembly


def attribute_margin(
    book: Book,
    state: MarketState,
    params: MarginParams,
    account_ids: Sequence[str],
    history: PriceHistory | None = None,
    source: str = "<portfolio>",
) -> tuple[Attribution, ...]:
    """The market-risk attribution of each of `account_ids` (risk arrays built once for all of them).

    An account id not in `book` raises InputError naming it.
    """
    rows = {str(account): n for n, account in enumerate(book.account_ids.tolist())}
    missing = [a for a in account_ids if a not in rows]
    if missing:
        raise InputError(source, "account", f"unknown account {missing[0]!r}")
    scenarios, arrays = scenario_risk_arrays(state, params, history)
    out = []
    for account in account_ids:
        n = rows[account]
        rows_of_account = slice(int(book.pos_offsets[n]), int(book.pos_offsets[n + 1]))
        instrument = book.pos_instrument[rows_of_account]
        quantity = book.pos_quantity[rows_of_account]
        pnl = position_pnl(instrument, quantity, arrays)
        losses = -pnl.sum(axis=0)
        weights, _ = tail_weights(losses, arrays.group_offsets, params.confidence, params.measure)
        contribution = -(pnl @ weights) + 0.0  # + 0.0: no negative zeros in the report
        total = float(weights @ losses)
        asset_of = state.instruments.asset[instrument]
        standard_error = None
        if scenarios.name == "mc" and params.measure == "es":
            standard_error = es_standard_error(losses, arrays.group_offsets, params.confidence)
        out.append(
            Attribution(
                account_id=account,
                market_risk=total,
                standard_error=standard_error,
                positions=_positions(instrument, quantity, asset_of, contribution, total, state),
                assets=_assets(asset_of, contribution, total, state),
                tail=_tail(weights, losses, scenarios),
                measure=params.measure,
                confidence=params.confidence,
                scenario_method=scenarios.name,
                n_scenarios=scenarios.n_scenarios,
            )
        )
    return tuple(out)


def _share(contribution: float, total: float) -> float:
    return contribution / total if total != 0.0 else math.nan


def _positions(
    instrument: NDArray[np.int32],
    quantity: FloatArray,
    asset_of: NDArray[np.int32],
    contribution: FloatArray,
    total: float,
    state: MarketState,
) -> tuple[PositionContribution, ...]:
    """Per position, largest contribution first (ties in the book's canonical order)."""
    return tuple(
        PositionContribution(
            position=p,
            instrument=state.instruments.ids[int(instrument[p])],
            asset=state.assets[int(asset_of[p])],
            quantity=float(quantity[p]),
            contribution=float(contribution[p]),
            share=_share(float(contribution[p]), total),
        )
        for p in np.argsort(-contribution, kind="stable").tolist()
    )


def _assets(
    asset_of: NDArray[np.int32], contribution: FloatArray, total: float, state: MarketState
) -> tuple[AssetContribution, ...]:
    """Per asset held, largest contribution first (ties in the market's asset order)."""
    held = np.unique(asset_of)
    sums = np.array([contribution[asset_of == a].sum() for a in held.tolist()], dtype=np.float64)
    return tuple(
        AssetContribution(state.assets[int(held[k])], float(sums[k]), _share(float(sums[k]), total))
        for k in np.argsort(-sums, kind="stable").tolist()
    )


def _tail(weights: FloatArray, losses: FloatArray, scenarios: ScenarioSet) -> tuple[TailScenario, ...]:
    """The scenarios with weight, by group, then by loss (largest first), then by index."""
    tail = np.flatnonzero(weights > 0.0)
    tail = tail[np.lexsort((tail, -losses[tail], scenarios.group[tail]))]
    return tuple(
        TailScenario(int(s), int(scenarios.group[s]), scenarios.labels[s], float(weights[s]), float(losses[s]))
        for s in tail.tolist()
    )
