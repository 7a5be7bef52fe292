"""The compared models across the stress episodes and a price history: `solvent stress --history`'s table and
findings (the episodes themselves: `lab.stress`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvent.baselines import BaselineParams
from solvent.errors import InputError
from solvent.lab.backtest import ZONES
from solvent.lab.margin_backtest import HistoryBacktest, run_backtest
from solvent.lab.models import MODEL_NAMES, check_models
from solvent.lab.stress import RELATIVE_TIE
from solvent.market.history import PriceHistory
from solvent.params import MarginParams


@dataclass(frozen=True, eq=False)
class HistoryComparison:
    """The compared models backtested on a price history: one `HistoryBacktest` per asset, each on its own
    dates (as `solvent backtest` runs them). `from_episodes`: the assets are those of the history that the
    episodes trade (else every asset of the history, none of them being traded)."""

    source: str
    assets: tuple[str, ...]
    from_episodes: bool
    runs: tuple[HistoryBacktest, ...]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the history file, the assets and where they come from, and every run's summary."""
        return {
            "history": self.source,
            "assets": list(self.assets),
            "assets_from": "episodes" if self.from_episodes else "history",
            "runs": [run.summary() for run in self.runs],
        }


def backtest_assets(history: PriceHistory, traded: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The assets of `history` that a comparison backtests, and whether they came from `traded`: those of
    `traded` (the assets the episodes trade perpetuals on, in the order met) that the history has, or every
    asset of the history when it has none of them."""
    overlap = tuple(a for a in dict.fromkeys(traded) if a in history.assets)
    return (overlap, True) if overlap else (history.assets, False)


def run_history(
    history: PriceHistory,
    models: Sequence[str],
    params: MarginParams,
    *,
    traded: Sequence[str],
    source: str,
    progress: Callable[[str], None] | None = None,
    baselines: BaselineParams | None = None,
) -> HistoryComparison:
    """`run_backtest` (its defaults; the venue rules with `baselines`) of `models` on each asset of
    `backtest_assets(history, traded)` on its own dates. A history the backtest cannot run on (too short after
    the warm-up, say) is an InputError naming `source`."""
    chosen = check_models([m for m in models if m in MODEL_NAMES])
    assets, from_episodes = backtest_assets(history, traded)
    runs = []
    for asset in assets:
        if progress is not None:
            progress(asset)
        try:
            runs.append(run_backtest(history, chosen, params, assets=(asset,), source=source, baselines=baselines))
        except ValueError as error:
            raise InputError(source, asset, str(error)) from None
    return HistoryComparison(source=source, assets=assets, from_episodes=from_episodes, runs=tuple(runs))


def comparison(
    models: Sequence[str], episodes: Sequence[dict[str, Any]], backtests: Sequence[dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Per model of `models`, the episodes' totals aggregated over the runs (`episodes`: `StressRun.summary()`
    records) and the history's tests aggregated over the reference portfolios (`backtests`:
    `HistoryBacktest.summary()` records, None without a history). A side the model did not run on is None:
    nothing is made up for it (docs/model.md, "Stress comparison", defines every field)."""
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        records = [e["models"][model] for e in episodes if model in e["models"]]
        rows = [(p, r) for b in backtests or () for p, r in b["models"].get(model, {}).items()]
        out[model] = {
            "episodes": _episode_totals(records) if records else None,
            "history": _history_totals(rows) if rows else None,
        }
    return out


def _defined(value: Any) -> bool:
    """A number, neither None (JSON's null) nor NaN."""
    return value is not None and math.isfinite(value)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _episode_totals(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sums of the losses and liquidations, means of capital locked and hit rate (over the runs where they are
    defined), the median of the runs' median lead times."""
    capital = [float(r["capital_locked"]) for r in records if _defined(r["capital_locked"])]
    hits = [float(r["hit_rate"]) for r in records if _defined(r["hit_rate"])]
    leads = [float(r["lead_seconds_median"]) for r in records if _defined(r["lead_seconds_median"])]
    return {
        "runs": len(records),
        "bad_debt": math.fsum(float(r["bad_debt"]) for r in records),
        "liquidation_trades": sum(int(r["liquidation_trades"]) for r in records),
        "liquidated_notional": math.fsum(float(r["liquidated_notional"]) for r in records),
        "accounts_liquidated": sum(int(r["accounts_liquidated"]) for r in records),
        "capital_locked": _mean(capital),
        "hit_rate": _mean(hits),
        "hit_rate_runs": len(hits),
        "lead_seconds_median": float(np.median(leads)) if leads else None,
    }


def _history_totals(rows: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Exceptions and observations summed over the reference portfolios, capital locked their mean, and for
    each test the worst portfolio (lowest p-value, worst zone, highest peak-to-trough; the first on ties)."""
    observations = sum(int(r["backtest"]["observations"]) for _, r in rows)
    exceptions = sum(int(r["backtest"]["exceptions"]) for _, r in rows)
    kupiec = min(rows, key=lambda row: float(row[1]["backtest"]["kupiec"]["p_value"]))
    cc = min(rows, key=lambda row: float(row[1]["backtest"]["christoffersen"]["p_value_cc"]))
    zone = max(rows, key=lambda row: ZONES.index(row[1]["backtest"]["zone"]))
    swing = max(rows, key=lambda row: float(row[1]["procyclicality"]["peak_to_trough"]))
    return {
        "portfolios": len(rows),
        "coverage": float(rows[0][1]["backtest"]["coverage"]),
        "observations": observations,
        "exceptions": exceptions,
        "exception_rate": exceptions / observations,
        "capital_locked": math.fsum(float(r["capital_locked"]) for _, r in rows) / len(rows),
        "kupiec_p_value": float(kupiec[1]["backtest"]["kupiec"]["p_value"]),
        "kupiec_portfolio": kupiec[0],
        "kupiec_rejected": sum(bool(r["backtest"]["kupiec"]["reject"]) for _, r in rows),
        "cc_p_value": float(cc[1]["backtest"]["christoffersen"]["p_value_cc"]),
        "cc_portfolio": cc[0],
        "zone": zone[1]["backtest"]["zone"],
        "zone_portfolio": zone[0],
        "peak_to_trough": float(swing[1]["procyclicality"]["peak_to_trough"]),
        "peak_to_trough_portfolio": swing[0],
    }


def _money(value: float) -> str:
    return f"${value:,.0f}"


def _share(value: float) -> str:
    return f"{value:.1%}"


#: What multi is compared with every other model on: (side, field, lower is better, format, what, where).
_CRITERIA: tuple[tuple[str, str, bool, Callable[[Any], str], str, str], ...] = (
    ("episodes", "bad_debt", True, _money, "less bad debt", "over the episodes"),
    ("episodes", "liquidated_notional", True, _money, "less notional liquidated", "over the episodes"),
    ("episodes", "capital_locked", True, _share, "less capital locked", "in the episodes"),
    ("episodes", "hit_rate", False, lambda v: f"{v:.0%}", "a higher flag hit rate", "in the episodes"),
    ("history", "exceptions", True, str, "fewer exceptions", "on the history"),
    ("history", "capital_locked", True, _share, "less capital locked", "on the history"),
    ("history", "kupiec_rejected", True, str, "fewer portfolios failing Kupiec", "on the history"),
    ("history", "zone", True, str, "a better worst Basel zone", "on the history"),
    ("history", "peak_to_trough", True, lambda v: f"{v:.3f}", "a lower peak-to-trough", "on the history"),
)


def _multi_versus(table: dict[str, dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """(where another model beats multi, where multi beats another, the models level with multi on every
    figure of a side), criterion by criterion, on the fields both models have; values within `RELATIVE_TIE`
    of each other (bad debt: or 10^-6 USD) are a tie."""
    losses: list[str] = []
    wins: list[str] = []
    decided: set[tuple[str, str]] = set()  # (model, side) with a figure apart from multi's
    compared: dict[tuple[str, str], None] = {}  # (model, side) with a figure to compare, in order met
    multi = table["multi"]
    for side, field, lower, show, what, where in _CRITERIA:
        mine = multi[side][field] if multi[side] is not None else None
        if not _comparable(mine):
            continue
        for other, record in table.items():
            theirs = record[side][field] if other != "multi" and record[side] is not None else None
            if not _comparable(theirs):
                continue
            compared[(other, side)] = None
            a, b = _rank(field, theirs), _rank(field, mine)
            if math.isclose(a, b, rel_tol=RELATIVE_TIE, abs_tol=1e-6 if field == "bad_debt" else 0.0):
                continue  # a tie (multi and vol_only margin one perpetual alike, to rounding)
            decided.add((other, side))
            if (a < b) if lower else (a > b):
                losses.append(f"{other} has {what} {where} ({show(theirs)} vs {show(mine)})")
            else:
                wins.append(f"{what} than {other} {where} ({show(mine)} vs {show(theirs)})")
    where_side = {"episodes": "over the episodes", "history": "on the history"}
    level = [f"{other} {where_side[side]}" for other, side in compared if (other, side) not in decided]
    return losses, wins, level


def _comparable(value: Any) -> bool:
    return isinstance(value, str) or _defined(value)


def _rank(field: str, value: Any) -> float:
    """`value` as a number to compare (a zone by its severity)."""
    return float(ZONES.index(value)) if field == "zone" else float(value)


def comparison_findings(table: dict[str, dict[str, Any]]) -> list[str]:
    """Plain sentences on a `comparison`: the leaders over the episodes and on the history, then where multi
    loses and where it wins, criterion by criterion (both said, from the same numbers), and which models are
    level with it on every figure of a side."""
    out = []
    episodes = {m: r["episodes"] for m, r in table.items() if r["episodes"] is not None}
    history = {m: r["history"] for m, r in table.items() if r["history"] is not None}
    if episodes:
        runs = max(r["runs"] for r in episodes.values())
        least_debt = min(episodes, key=lambda m: episodes[m]["bad_debt"])
        text = (
            f"Over {runs} episode run{'s' if runs != 1 else ''}: least bad debt in total under {least_debt} "
            f"({_money(episodes[least_debt]['bad_debt'])})"
        )
        capital = {m: r["capital_locked"] for m, r in episodes.items() if _defined(r["capital_locked"])}
        if capital:
            cheapest = min(capital, key=lambda m: capital[m])
            text += f"; least capital locked on average under {cheapest} ({_share(capital[cheapest])} of notional)"
        out.append(text + ".")
    if history:
        target = 1.0 - next(iter(history.values()))["coverage"]
        closest = min(history, key=lambda m: abs(history[m]["exception_rate"] - target))
        cheapest = min(history, key=lambda m: history[m]["capital_locked"])
        passing = [m for m, r in history.items() if r["kupiec_rejected"] == 0 and r["zone"] != "red"]
        out.append(
            f"On the history: closest to the target exception rate of {target:.2%} is {closest} "
            f"({history[closest]['exception_rate']:.2%}); least capital locked under {cheapest} "
            f"({_share(history[cheapest]['capital_locked'])} of notional); {len(passing)} of {len(history)} models "
            "pass Kupiec on every reference portfolio outside the red zone"
            + (f" ({', '.join(passing)})." if passing else ".")
        )
    if "multi" in table and len(table) > 1:
        losses, wins, level = _multi_versus(table)
        out.append(
            "Where multi loses in the comparison: " + "; ".join(losses) + "."
            if losses
            else "multi is not beaten in the comparison."
        )
        out.append(
            "Where multi wins in the comparison: " + "; ".join(wins) + "."
            if wins
            else "multi beats no other model in the comparison."
        )
        if level:
            out.append("Level with multi on every figure: " + "; ".join(level) + ".")
    return out
