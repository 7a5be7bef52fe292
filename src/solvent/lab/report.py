"""The stress lab's reports: a self-contained HTML page with figures (PNG, embedded) and a JSON summary.

The page says what the numbers say, including where the multi-factor model loses: its findings are
computed from the summary (coverage, capital locked, bad debt, liquidations), never written by hand.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from solvent.formats.io import atomic_output
from solvent.lab.margin_backtest import HistoryBacktest
from solvent.lab.stress import HistoryComparison, StressRun, comparison, comparison_findings, stress_findings


def _png(draw: Any) -> str:
    """Run `draw(ax)` on a fresh figure and return it as an <img> tag (base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 3.4), dpi=100)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def backtest_findings(summary: dict[str, Any]) -> list[str]:
    """Plain sentences from one run's summary: per portfolio, the model closest to the target coverage, the
    one locking least capital, and how `multi` compares (where it loses, said so)."""
    coverage = summary["coverage"]
    target = 1.0 - coverage
    models = summary["models"]
    out = []
    portfolios = list(next(iter(models.values())).keys()) if models else []
    for portfolio in portfolios:
        rows = {m: models[m][portfolio] for m in models}
        rate = {m: r["backtest"]["exception_rate"] for m, r in rows.items()}
        capital = {m: r["capital_locked"] for m, r in rows.items()}
        zone = {m: r["backtest"]["zone"] for m, r in rows.items()}
        covered = [m for m in rows if not rows[m]["backtest"]["kupiec"]["reject"] and zone[m] != "red"]
        cheapest = min(capital, key=lambda m: capital[m])
        text = (
            f"{portfolio}: {len(covered)} of {len(rows)} models pass Kupiec at the 5% level outside the red zone"
            + (f" ({', '.join(covered)})" if covered else "")
            + f"; least capital: {cheapest} ({capital[cheapest]:.1%} of notional, exception rate "
            f"{rate[cheapest]:.2%} against a target of {target:.2%})."
        )
        if "multi" in rows:
            multi = "multi"
            losses = []
            for other in rows:
                if other == multi:
                    continue
                if other in covered and capital[other] < capital[multi]:
                    losses.append(
                        f"{other} covers too with less capital ({capital[other]:.1%} vs {capital[multi]:.1%})"
                    )
                if rate[other] < rate[multi] and capital[other] <= capital[multi]:
                    losses.append(f"{other} has fewer exceptions for no more capital")
            if multi not in covered:
                losses.insert(0, f"multi fails coverage ({rate[multi]:.2%} exceptions, zone {zone[multi]})")
            if losses:
                out.append(text + " Where multi loses: " + "; ".join(losses) + ".")
            else:
                out.append(text + " multi is not beaten on coverage-for-capital here.")
        else:
            out.append(text)
    return out


def _backtest_section(run: HistoryBacktest) -> str:
    summary = run.summary()
    rows = []
    for model, per_portfolio in summary["models"].items():
        for portfolio, record in per_portfolio.items():
            b = record["backtest"]
            p = record["procyclicality"]
            rows.append(
                [
                    model,
                    portfolio,
                    record["capital_locked"],
                    f"{b['exceptions']}/{b['observations']}",
                    b["exception_rate"],
                    b["kupiec"]["p_value"],
                    b["christoffersen"]["p_value_ind"],
                    b["christoffersen"]["p_value_cc"],
                    b["zone"],
                    p["peak_to_trough"],
                    p["max_increase"]["1"],
                    p["max_increase"]["5"],
                    p["max_increase"]["30"],
                    math.nan if p["apc_cost"] is None else p["apc_cost"],
                ]
            )
    header = [
        "model",
        "portfolio",
        "IM / notional",
        "exceptions",
        "rate",
        "Kupiec p",
        "Christoffersen ind. p",
        "cond. coverage p",
        "zone",
        "peak / trough",
        "max 1-step rise",
        "max 5-step rise",
        "max 30-step rise",
        "APC cost",
    ]
    dates = run.dates.astype("datetime64[s]").astype(object)
    asset = run.assets[0]
    long_row = run.portfolios.index(f"long {asset}")

    def prices(ax: Any) -> None:
        for a, name in enumerate(run.assets):
            ax.plot(dates, run.prices[:, a] / run.prices[0, a], label=f"{name} (first date = 1)")
        ax.set_title("Price path")
        ax.legend()

    def requirements(ax: Any) -> None:
        for model in run.models:
            ax.plot(dates, run.requirement[model][long_row] / run.notional, label=model, linewidth=1.0)
        ax.set_title(f"IM / notional over time, long {asset}")
        ax.legend(ncol=4, fontsize="small")

    def exceptions(ax: Any) -> None:
        loss = run.loss[long_row] / run.notional
        ax.plot(dates, loss, color="grey", linewidth=0.6, label=f"realised loss over {run.mpor_steps} steps")
        for model in run.models:
            hit = loss > run.requirement[model][long_row] / run.notional
            ax.scatter(np.array(dates)[hit], loss[hit], s=10, label=f"{model} exceptions ({int(hit.sum())})")
        ax.set_title(f"Exceptions, long {asset}")
        ax.legend(ncol=3, fontsize="small")

    findings = "".join(f"<li>{html.escape(s)}</li>" for s in backtest_findings(summary))
    title = ", ".join(run.assets)
    return (
        f"<h2>{html.escape(title)}: {summary['first_date']} to {summary['last_date']} "
        f"({summary['observations']} dates, MPOR {run.mpor_steps} steps, coverage {run.coverage:.2%}; "
        f"{summary['windows']} windows: {summary['tested_observations']} dates tested)</h2>"
        f"<h3>Findings</h3><ul>{findings}</ul>"
        f"{_table(header, rows)}"
        f"{_png(prices)}{_png(requirements)}{_png(exceptions)}"
    )


def _write(out: Path, title: str, body: str, document: dict[str, Any]) -> tuple[Path, Path]:
    """`out/report.html` (a page of `body`) and `out/summary.json` (`document`), each written atomically."""
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
    html_path, json_path = out / "report.html", out / "summary.json"
    with atomic_output(html_path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    with atomic_output(json_path) as tmp:
        Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    return html_path, json_path


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
"""


def write_backtest_report(
    runs: Sequence[HistoryBacktest], out_dir: str | Path, source: str, baseline_params: str | None = None
) -> tuple[Path, Path]:
    """`report.html` and `summary.json` (`solvent.backtest-report/1`) for `runs`, written atomically.
    `baseline_params`: the venue rules' parameters file the runs used, recorded when given."""
    summaries = [run.summary() for run in runs]
    document: dict[str, Any] = {"schema": "solvent.backtest-report/1", "history": source}
    if baseline_params is not None:
        document["baseline_params"] = baseline_params
    document |= {
        "runs": summaries,
        "findings": [sentence for s in summaries for sentence in backtest_findings(s)],
    }
    title = "solvent backtest"
    page = (
        f"<h1>Margin backtest: {html.escape(source)}</h1>"
        "<p>Each model margins a long and a short perpetual of constant notional per asset, every date, from the "
        "history up to that date only; an exception is a realised loss over the margin period of risk above the "
        "initial margin. Kupiec (1995) tests the exception rate, Christoffersen (1998) their independence (the "
        "losses of consecutive dates overlap when the MPOR is longer than a step, which clusters exceptions), the "
        "Basel traffic light the count; procyclicality after Murphy, Vasios and Vause (2014).</p>"
        + "".join(_backtest_section(run) for run in runs)
    )
    return _write(Path(out_dir), title, page, document)


def _stress_section(run: StressRun) -> str:
    summary = run.summary()
    header = [
        "model",
        "bad debt (USD)",
        "fund paid",
        "socialised",
        "accounts liquidated",
        "liquidation trades",
        "notional liquidated",
        "IM / notional",
        "peak / trough",
        "flag hit rate",
        "false alarms",
        "median lead (s)",
    ]
    rows = []
    for model, r in summary["models"].items():
        cyc = r["procyclicality"]
        rows.append(
            [
                model,
                r["bad_debt"],
                r["insurance_fund_paid"],
                r["socialised_loss"] + r["unresolved_loss"],
                r["accounts_liquidated"],
                r["liquidation_trades"],
                r["liquidated_notional"],
                r["capital_locked"],
                math.nan if cyc is None else cyc["peak_to_trough"],
                math.nan if r["hit_rate"] is None else r["hit_rate"],
                r["false_alarms"],
                math.nan if r["lead_seconds_median"] is None else r["lead_seconds_median"],
            ]
        )
    hours = {m: res.seconds / 3600.0 for m, res in run.results.items()}
    first = run.path.assets[0]

    def prices(ax: Any) -> None:
        start = run.path.prices[0]
        for j, name in enumerate(run.path.assets):
            ax.plot(run.path.seconds / 3600.0, run.path.prices[:, j] / start[j], label=f"{name} path", linewidth=1.0)
        for model, result in run.results.items():
            ax.plot(
                hours[model],
                result.traded[:, 0] / start[0],
                linestyle="--",
                linewidth=0.8,
                label=f"{first} traded, {model}",
            )
        ax.set_xlabel("hours")
        ax.set_title("Price path (start = 1): exogenous, and traded after liquidation impact")
        ax.legend(fontsize="small", ncol=3)

    def series(attribute: str, title: str, scale: float = 1.0, seconds: str = "seconds") -> Any:
        def draw(ax: Any) -> None:
            for model, result in run.results.items():
                x = getattr(result, seconds) / 3600.0
                ax.plot(x, getattr(result, attribute) * scale, label=model, linewidth=1.0)
            ax.set_xlabel("hours")
            ax.set_title(title)
            ax.legend(fontsize="small")

        return draw

    def liquidations(ax: Any) -> None:
        for model, result in run.results.items():
            ax.plot(hours[model], np.cumsum(result.liquidated), label=model, linewidth=1.0)
        ax.set_xlabel("hours")
        ax.set_title("Notional liquidated, cumulative (USD)")
        ax.legend(fontsize="small")

    def by_factor(ax: Any) -> None:
        model = "multi" if "multi" in run.results else next(iter(run.results))
        result = run.results[model]
        names = list(result.factors)
        if names:
            ax.stackplot(result.factor_seconds / 3600.0, *[result.factors[n] for n in names], labels=names, alpha=0.8)
        ax.set_xlabel("hours")
        ax.set_title(f"Requirement by factor over time, {model}: each IM term / total notional")
        ax.legend(fontsize="small", loc="upper left", ncol=3)

    findings = "".join(f"<li>{html.escape(s)}</li>" for s in stress_findings(summary))
    return (
        f"<h2>{html.escape(summary['name'])} ({html.escape(summary['episode'])})</h2>"
        f"<p>{len(run.results)} models; perpetuals on {html.escape(', '.join(summary['assets']))}, collateral "
        f"{html.escape(summary['collateral'])}; {summary['seconds'] / 3600.0:.1f} hours simulated.</p>"
        f"<h3>Findings</h3><ul>{findings}</ul>"
        f"{_table(header, rows)}"
        f"{_png(prices)}"
        f"{_png(series('im_share', 'Requirement over time: total IM / total notional', seconds='im_seconds'))}"
        f"{_png(by_factor)}"
        f"{_png(liquidations)}"
        f"{_png(series('fund', 'Insurance fund (USD)'))}"
        f"{_png(series('bad_debt', 'Bad debt, cumulative: losses beyond the accounts collateral (USD)'))}"
    )


def _comparison_section(table: dict[str, dict[str, Any]], history: HistoryComparison | None) -> str:
    """The comparison across models, episodes and history side by side; "n/a" where a model did not run."""
    header = [
        "model",
        "episode runs",
        "bad debt, sum (USD)",
        "liquidation trades, sum",
        "notional liquidated, sum",
        "IM / notional, mean",
        "flag hit rate, mean",
        "median lead (s)",
        "history IM / notional",
        "exceptions",
        "exception rate",
        "Kupiec p (worst)",
        "cond. coverage p (worst)",
        "zone (worst)",
        "peak / trough (max)",
    ]
    rows = []
    for model, record in table.items():
        e, h = record["episodes"] or {}, record["history"] or {}
        rows.append(
            [
                model,
                e.get("runs", 0),
                e.get("bad_debt"),
                e.get("liquidation_trades"),
                e.get("liquidated_notional"),
                e.get("capital_locked"),
                e.get("hit_rate"),
                e.get("lead_seconds_median"),
                h.get("capital_locked"),
                f"{h['exceptions']}/{h['observations']}" if h else None,
                h.get("exception_rate"),
                h.get("kupiec_p_value"),
                h.get("cc_p_value"),
                f"{h['zone']} ({h['zone_portfolio']})" if h else None,
                h.get("peak_to_trough"),
            ]
        )
    if history is None:
        source = "no price history given (--history): its columns are n/a"
    else:
        first = history.runs[0]
        origin = "those the episodes trade" if history.from_episodes else "every asset of the history, none traded"
        source = (
            f"history {history.source}: {', '.join(history.assets)} ({origin}), each asset on its own dates, a "
            f"long and a short perpetual of constant notional, coverage {first.coverage:.2%}, MPOR "
            f"{first.mpor_steps} steps"
        )
    findings = "".join(f"<li>{html.escape(s)}</li>" for s in comparison_findings(table))
    return (
        "<h2>Model comparison (episodes and history)</h2>"
        f"{_table(header, rows)}"
        "<p>Per model: the episodes' bad debt, liquidation trades and notional summed over the runs, capital locked "
        "and the flag's hit rate averaged over them (the hit rate over the runs where it is defined), the median "
        "of their median lead times; next to the backtest on the "
        + html.escape(source)
        + ". Exceptions are summed over the reference portfolios, capital locked is their mean; each test "
        "reports its worst portfolio (lowest p-value, worst zone, largest peak-to-trough). n/a: the model did not "
        "run on that side.</p>"
        f"<h3>Findings</h3><ul>{findings}</ul>"
    )


def write_stress_report(
    runs: Sequence[StressRun],
    out_dir: str | Path,
    settings: dict[str, Any],
    *,
    models: Sequence[str] | None = None,
    history: HistoryComparison | None = None,
) -> tuple[Path, Path]:
    """`report.html` and `summary.json` (`solvent.stress-report/1`) for `runs`, written atomically. `models`:
    the rows of the comparison (default every model of the runs, in order); `history`: the same models
    backtested on a price history, whose columns are otherwise n/a."""
    summaries = [run.summary() for run in runs]
    if models is None:
        models = list(dict.fromkeys(m for run in runs for m in run.results))
    backtests = None if history is None else history.summary()
    table = comparison(models, summaries, None if backtests is None else backtests["runs"])
    document = {
        "schema": "solvent.stress-report/1",
        "settings": settings,
        "comparison": table,
        "backtest": backtests,
        "episodes": summaries,
        "findings": comparison_findings(table) + [sentence for s in summaries for sentence in stress_findings(s)],
    }
    title = "solvent stress"
    page = (
        "<h1>Stress lab: crash episodes under each margin model</h1>"
        "<p>Each episode of the crash library drives the streaming engine along its seeded path; liquidations are "
        "executed against the book and move the price, which can trigger more; the insurance fund, "
        "auto-deleveraging and socialised losses absorb what collateral does not. Every model faces the same "
        "traders, path and books. Settings: "
        + html.escape(", ".join(f"{k} = {v}" for k, v in settings.items()))
        + ".</p>"
        + _comparison_section(table, history)
        + "".join(_stress_section(run) for run in runs)
        + (
            ""
            if history is None
            else "<h1>History backtest</h1>" + "".join(_backtest_section(run) for run in history.runs)
        )
    )
    return _write(Path(out_dir), title, page, document)
