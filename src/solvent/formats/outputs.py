"""The output documents described as msgspec records, for their JSON Schemas (issue 12 item 18).

The writers build these documents as plain dicts (convert/results.py, engine/attribution.py, baselines/book.py,
stream/engine.py, lab/report.py); the records here only describe them, so that `solvent schema` generates the
outputs' JSON Schemas as it does the inputs' (solvent/jsonschemas.py) and tests/test_output_schemas.py validates
real CLI outputs against them. Records forbid unknown fields, so a key added to an output without its schema is
caught. The IM terms are generated from `IM_TERMS` and `ASSET_TERMS`, declared here (the engine reports exactly
these): a term declared there is required here.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from solvent.formats.provenance import Provenance

#: Every IM term of the multi-factor engine, in reporting order: the one declaration of the output schema's terms
#: (issue 12 item 18). Each is always reported, 0 where it does not apply (`apc_buffer` unless the
#: anti-procyclicality tool is the buffer, `liquidity` and `concentration` when disabled, `oracle` for a market
#: with one price per asset), so that a reader never has to tell "absent" from "zero". A new factor declares its
#: name here, before `risk_tier` (the tier scales the sum of the terms before it); `stable_price` alone comes after
#: the tier and outside MM (Mango's initial health: it limits borrowing power, never liquidates); `margin_book`
#: refuses (engine/results.py `complete_terms`) a term that is not declared.
IM_TERMS: Final[tuple[str, ...]] = (
    "market_risk",
    "apc_buffer",
    "liquidity",
    "basis",
    "concentration",
    "oracle",
    "risk_tier",
    "stable_price",
)
#: The IM terms with a per-asset split (`term_by_asset`), always reported too, in this order.
ASSET_TERMS: Final[tuple[str, ...]] = ("liquidity", "basis", "concentration", "oracle", "stable_price")


class _Out(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every output record."""


#: Every IM term, each required (a number, USD), in IM_TERMS order.
Terms = msgspec.defstruct(
    "Terms", [(name, float) for name in IM_TERMS], bases=(_Out,), kw_only=True, frozen=True, forbid_unknown_fields=True
)
#: Every per-asset term (ASSET_TERMS), each required: asset -> USD.
AssetTerms = msgspec.defstruct(
    "AssetTerms",
    [(name, dict[str, float]) for name in ASSET_TERMS],
    bases=(_Out,),
    kw_only=True,
    frozen=True,
    forbid_unknown_fields=True,
)


class RejectedSource(_Out, frozen=True, kw_only=True):
    """An oracle source not used, and why (a `Rejection` name: STALE, OUTLIER, FUTURE, INVALID)."""

    source: str
    reason: str


class Mark(_Out, frozen=True, kw_only=True):
    """What one asset was margined at (solvent.engine.results.AssetMark)."""

    price: float
    uncertainty: float
    oracle_status: Literal["OK", "DEVIATES_FROM_TWAP", "ALL_STALE", "TOO_FEW_SOURCES", "NO_TWAP", "DIRECT"]
    rejected_sources: list[RejectedSource]


class Greeks(_Out, frozen=True, kw_only=True):
    delta: float
    gamma: float
    vega: float


class MarginAccount(_Out, frozen=True, kw_only=True):
    """One account of solvent.margin/1 (docs/formats.md)."""

    account: str
    im: float
    mm: float
    equity: float
    health: float | None
    liquidatable: bool
    collateral: float
    unrealised_pnl: float
    breach_probability: float = 0.0  # absent when the predictive figures were not computed
    early_flag: bool = False
    loss_vol: float = 0.0
    hhi: float = 0.0  # absent when the engine did not compute it
    collateral_haircut: float = 0.0  # absent when `collateral.mode` is "none"
    terms: Terms  # type: ignore[valid-type]
    term_by_asset: AssetTerms  # type: ignore[valid-type]
    greeks: dict[str, Greeks]


class MarginDocument(_Out, frozen=True, kw_only=True):
    """solvent.margin/1: `solvent margin --format json`."""

    schema: Literal["solvent.margin/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    market_time: str
    scenario_method: str
    n_scenarios: int
    oracle_status: dict[str, str]
    warnings: list[str]
    marks: dict[str, Mark]
    accounts: list[MarginAccount]


class ExplainPosition(_Out, frozen=True, kw_only=True):
    position: int
    instrument: str
    asset: str
    quantity: float
    contribution: float
    share: float | None


class ExplainAsset(_Out, frozen=True, kw_only=True):
    asset: str
    contribution: float
    share: float | None


class TailScenario(_Out, frozen=True, kw_only=True):
    scenario: int
    group: int
    label: str
    weight: float
    loss: float


class ExplainDocument(_Out, frozen=True, kw_only=True):
    """solvent.explain/1: `solvent margin --explain ACCOUNT --format json`."""

    schema: Literal["solvent.explain/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    market_time: str
    account: str
    scenario_method: str
    n_scenarios: int
    measure: str
    confidence: float
    market_risk: float
    standard_error: float | None  # the Monte Carlo standard error of market_risk (mc, es); null otherwise
    positions: list[ExplainPosition]
    assets: list[ExplainAsset]
    tail: list[TailScenario]
    terms: Terms  # type: ignore[valid-type]
    add_ons_by_asset: AssetTerms  # type: ignore[valid-type]
    marks: dict[str, Mark]


class BaselineAccount(_Out, frozen=True, kw_only=True):
    account: str
    im: float
    mm: float
    fallback_im: float
    im_multifactor: float = 0.0  # with the multi-factor IM to compare with (always, from the CLI)
    ratio: float | None = None


class BaselineTotals(_Out, frozen=True, kw_only=True):
    im: float
    mm: float
    im_multifactor: float = 0.0


class BaselineDocument(_Out, frozen=True, kw_only=True):
    """solvent.baseline/1: `solvent margin --baseline NAME --format json`."""

    schema: Literal["solvent.baseline/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    rule: str
    source: str
    market_time: str
    notes: list[str]
    totals: BaselineTotals
    accounts: list[BaselineAccount]


class StreamSummary(_Out, frozen=True, kw_only=True):
    """solvent.stream-summary/1: `solvent stream --summary` (docs/formats.md gives each key's meaning)."""

    schema: Literal["solvent.stream-summary/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    records: int
    batches: int
    events: int
    rejected: int
    accounts: int
    accounts_liquidatable_now: int
    accounts_in_margin_call_now: int
    accounts_ever_liquidatable: int
    liquidatable_at_start: int
    flagged_before_breach: int
    lead_seconds_median: float | None
    lead_seconds_min: float | None
    liquidation_trades: int
    liquidated_notional: float
    fees_to_fund: float
    insurance_fund_start: float
    insurance_fund_end: float
    insurance_fund_paid: float
    adl_fills: int
    socialised_loss: float
    unresolved_loss: float
    batch_ms_median: float
    batch_ms_p99: float
    batch_ms_max: float
    feed: str
    block_ms: int | None


class BacktestRun(_Out, frozen=True, kw_only=True):
    """solvent.backtest/1: one asset's backtest; `models` is model -> portfolio -> {capital_locked, backtest,
    procyclicality} (docs/formats.md)."""

    schema: Literal["solvent.backtest/1"]
    assets: list[str]
    first_date: str | None
    last_date: str | None
    window: dict[str, str | None]
    observations: int
    windows: Literal["independent", "overlapping"]
    tested_observations: int
    notional: float
    mpor_steps: int
    coverage: float
    models: dict[str, dict[str, dict[str, Any]]]


class PortfolioBacktestDocument(_Out, frozen=True, kw_only=True):
    """solvent.portfolio-backtest/1: `solvent backtest --portfolio` (portfolio.json); `models` is model ->
    pooled exceptions, accounts by verdict, largest shortfall, most exceptions (docs/formats.md)."""

    schema: Literal["solvent.portfolio-backtest/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    first_date: str
    last_date: str
    observations: int
    windows: Literal["independent", "overlapping"]
    mpor_steps: int
    coverage: float
    accounts: int
    accounts_with_positions: int
    models: dict[str, dict[str, Any]]


class BacktestReport(_Out, frozen=True, kw_only=True):
    """solvent.backtest-report/1: `solvent backtest` (summary.json)."""

    schema: Literal["solvent.backtest-report/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    history: str
    baseline_params: str | None = None
    runs: list[BacktestRun]
    findings: list[str]


class StressBacktest(_Out, frozen=True, kw_only=True):
    """The history backtest inside a stress report (`backtest`, with `--history`)."""

    history: str
    assets: list[str]
    assets_from: Literal["episodes", "history"]
    runs: list[BacktestRun]


class StressReport(_Out, frozen=True, kw_only=True):
    """solvent.stress-report/1: `solvent stress` (summary.json); the episodes' and the comparison's contents
    are described in docs/formats.md."""

    schema: Literal["solvent.stress-report/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    settings: dict[str, Any]
    comparison: dict[str, Any]
    backtest: StressBacktest | None
    episodes: list[dict[str, Any]]
    findings: list[str]


class StressSweep(_Out, frozen=True, kw_only=True):
    """solvent.stress-sweep/1: `solvent stress --sweep` (sweep.json): one record per run, in the sweep's order
    (episode, model, median leverage, step, APC), and the findings computed from them (docs/formats.md)."""

    schema: Literal["solvent.stress-sweep/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py); absent from a library call without one
    settings: dict[str, Any]
    records: list[dict[str, Any]]
    findings: list[str]
