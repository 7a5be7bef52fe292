"""The stress lab's reports: a self-contained HTML page with figures (PNG, embedded) and a JSON summary.

The page says what the numbers say, including where the multi-factor model loses: its findings are
computed from the summary (coverage, capital locked, bad debt, liquidations), never written by hand.
One source of truth per figure: each table is a DataFrame and each figure a `charts.Chart` of series, built
from the same run (a cumulative chart ends at its table's total: tests/test_lab_report.py). pandas' Styler
formats the tables per column (`FORMATS`: % for shares, $ with thousands separators for amounts), a jinja2
template lays out the page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from solvent._extras import check_extra, requires_extra
from solvent.formats.io import atomic_output
from solvent.formats.provenance import Provenance, header_lines, html_script, stamped
from solvent.lab.backtest import exceptions
from solvent.lab.charts import Chart, Panel, Series, data_uri
from solvent.lab.comparison import HistoryComparison, comparison, comparison_findings
from solvent.lab.margin_backtest import HistoryBacktest
from solvent.lab.stress import StressRun, stress_findings

with requires_extra("report"):
    import pandas as pd
    from jinja2 import Environment
    from markupsafe import Markup

check_extra("report")  # matplotlib too, drawn once a run is done: a missing one is named before the run starts

USD = "${:,.0f}"
SHARE = "{:.1%}"
RATE = "{:.2%}"
COUNT = "{:,.0f}"
P_VALUE = "{:.3f}"
RATIO = "{:.2f}"
SECONDS = "{:,.0f}"
#: The format of every numeric column of the reports' tables, by its header.
FORMATS: dict[str, str] = {
    "bad debt": USD,
    "fund paid": USD,
    "socialised": USD,
    "accounts liquidated": COUNT,
    "liquidation trades": COUNT,
    "notional liquidated": USD,
    "IM / notional": SHARE,
    "peak / trough": RATIO,
    "flag hit rate": SHARE,
    "false alarms": COUNT,
    "median lead (s)": SECONDS,
    "episode runs": COUNT,
    "bad debt, sum": USD,
    "liquidation trades, sum": COUNT,
    "notional liquidated, sum": USD,
    "IM / notional, mean": SHARE,
    "flag hit rate, mean": SHARE,
    "history IM / notional": SHARE,
    "exception rate": RATE,
    "Kupiec p (worst)": P_VALUE,
    "cond. coverage p (worst)": P_VALUE,
    "peak / trough (max)": RATIO,
    "rate": RATE,
    "Kupiec p": P_VALUE,
    "Christoffersen ind. p": P_VALUE,
    "cond. coverage p": P_VALUE,
    "max 1-step rise": SHARE,
    "max 5-step rise": SHARE,
    "max 30-step rise": SHARE,
    "APC cost": SHARE,
}
#: Below this, a figure is floating-point noise (a static model's 1e-16 swing) and is shown as 0.
NOISE = 1e-12
#: The table's mark for a figure that is not defined (no breach to lead, no rise to measure).
UNDEFINED = "–"
#: The comparison's mark for a model that did not run on a side.
NOT_RUN = "n/a"


#: A table, its leading text columns (the row's names) aligned left.
TABLE = Environment(autoescape=True).from_string('<div class="lead-{{ lead }}">{{ table }}</div>')


def html_table(frame: pd.DataFrame, na_rep: str = UNDEFINED) -> Markup:
    """`frame` as an HTML table, each column formatted by `FORMATS` (its header), noise shown as 0."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].mask(frame[column].abs() < NOISE, 0.0)
    formats = {c: FORMATS[c] for c in frame.columns if c in FORMATS}
    styler = frame.style.hide(axis="index").format(formats, na_rep=na_rep)
    lead = next((k for k, c in enumerate(frame.columns) if c in FORMATS), len(frame.columns))
    return Markup(TABLE.render(lead=lead, table=Markup(styler.to_html(exclude_styles=True))))


@dataclasses.dataclass(frozen=True, eq=False)
class Section:
    """One part of a page: a heading (and an <h1> `part` before it), paragraphs, findings, tables, charts."""

    heading: str
    text: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    tables: tuple[Markup, ...] = ()
    charts: tuple[Chart, ...] = ()
    part: str = ""


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ style }}</style>{{ script }}</head>
<body>
<h1>{{ heading }}</h1>
{% if provenance %}<p class="provenance">{% for line in provenance %}{{ line }}<br>{% endfor %}</p>
{% endif -%}
{% for paragraph in intro %}<p>{{ paragraph }}</p>
{% endfor %}
{%- for s in sections %}
{% if s.part %}<h1>{{ s.part }}</h1>{% endif %}
<section>
<h2>{{ s.heading }}</h2>
{% for paragraph in s.text %}<p>{{ paragraph }}</p>
{% endfor %}
{%- if s.findings %}<h3>Findings</h3>
<ul>{% for f in s.findings %}<li>{{ f }}</li>{% endfor %}</ul>{% endif %}
{% for table in s.tables %}{{ table }}
{% endfor %}
{%- for chart in s.charts %}<figure><img alt="{{ chart.title }}" src="{{ chart | data_uri }}"></figure>
{% endfor %}
</section>
{%- endfor %}
</body></html>
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; }
.lead-1 td:first-child, .lead-2 td:nth-child(-n+2) { text-align: left; }
figure { margin: 0.5em 0; } img { max-width: 100%; display: block; }
"""


def render_page(
    title: str,
    heading: str,
    intro: Sequence[str],
    sections: Sequence[Section],
    provenance: Provenance | None = None,
) -> str:
    """The self-contained HTML page (text escaped; tables and figures embedded); with a provenance, its header
    lines under the title and its JSON in the head (read back by `solvent provenance`)."""
    environment = Environment(autoescape=True)
    environment.filters["data_uri"] = data_uri
    template = environment.from_string(PAGE)
    return template.render(
        title=title,
        heading=heading,
        intro=intro,
        sections=sections,
        style=STYLE,
        script=Markup(html_script(provenance)) if provenance is not None else "",
        provenance=header_lines(provenance) if provenance is not None else [],
    )


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


def backtest_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Per model and portfolio of one backtest summary: capital, exceptions, the tests, procyclicality."""
    rows = []
    for model, per_portfolio in summary["models"].items():
        for portfolio, record in per_portfolio.items():
            b, p = record["backtest"], record["procyclicality"]
            rows.append(
                {
                    "model": model,
                    "portfolio": portfolio,
                    "IM / notional": record["capital_locked"],
                    "exceptions": f"{b['exceptions']}/{b['observations']}",
                    "rate": b["exception_rate"],
                    "Kupiec p": b["kupiec"]["p_value"],
                    "Christoffersen ind. p": b["christoffersen"]["p_value_ind"],
                    "cond. coverage p": b["christoffersen"]["p_value_cc"],
                    "zone": b["zone"],
                    "peak / trough": p["peak_to_trough"],
                    "max 1-step rise": p["max_increase"]["1"],
                    "max 5-step rise": p["max_increase"]["5"],
                    "max 30-step rise": p["max_increase"]["30"],
                    "APC cost": np.nan if p["apc_cost"] is None else p["apc_cost"],
                }
            )
    return pd.DataFrame(rows)


def backtest_charts(run: HistoryBacktest) -> tuple[Chart, Chart, Chart]:
    """The price path, each model's IM / notional on the long portfolio of the first asset, and its
    exceptions: one panel per model, its IM line under the realised loss, each breach drawn to its depth."""
    dates = run.dates
    asset = run.assets[0]
    long_row = run.portfolios.index(f"long {asset}")
    prices = Chart(
        "Price path (first date = 100%)",
        (
            Panel(
                tuple(Series(name, dates, run.prices[:, a] / run.prices[0, a]) for a, name in enumerate(run.assets)),
                "share",
                "date",
            ),
        ),
    )
    share = {model: run.requirement[model][long_row] / run.notional for model in run.models}
    requirements = Chart(
        f"IM / notional over time, long {asset}",
        (Panel(tuple(Series(model, dates, share[model], model) for model in run.models), "share", "date"),),
    )
    loss = run.loss[long_row] / run.notional
    panels = []
    for model in run.models:
        tested = run.tested  # as the table counts them: on the tested dates (non-overlapping windows by default)
        hit = np.zeros(dates.size, dtype=bool)
        hit[tested] = exceptions(run.requirement[model][long_row, tested], run.loss[long_row, tested])
        count = int(hit.sum())
        panels.append(
            Panel(
                (
                    Series(f"realised loss over {run.mpor_steps} steps", dates, loss, kind="reference"),
                    Series("IM", dates, share[model], model),
                    Series(f"exceptions ({count})", dates[hit], loss[hit], kind="breach", base=share[model][hit]),
                ),
                "share",
                "date",
                f"{model}: {count} exception{'' if count == 1 else 's'} in {run.tested.size} tested dates",
            )
        )
    breaches = Chart(f"Exceptions, long {asset}: realised loss against IM (share of notional)", tuple(panels))
    return prices, requirements, breaches


def backtest_section(run: HistoryBacktest) -> Section:
    """One backtest run: its findings, table and figures."""
    summary = run.summary()
    return Section(
        heading=f"{', '.join(run.assets)}: {summary['first_date']} to {summary['last_date']} "
        f"({summary['observations']} dates, MPOR {run.mpor_steps} steps, coverage {run.coverage:.2%}; "
        f"{summary['windows']} windows: {summary['tested_observations']} dates tested)",
        findings=tuple(backtest_findings(summary)),
        tables=(html_table(backtest_table(summary)),),
        charts=backtest_charts(run),
    )


def _write(out: Path, page: str, document: dict[str, Any]) -> tuple[Path, Path]:
    """`out/report.html` (`page`) and `out/summary.json` (`document`), each written atomically."""
    html_path, json_path = out / "report.html", out / "summary.json"
    with atomic_output(html_path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    with atomic_output(json_path) as tmp:
        Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    return html_path, json_path


BACKTEST_INTRO = (
    "Each model margins a long and a short perpetual of constant notional per asset, every date, from the "
    "history up to that date only; an exception is a realised loss over the margin period of risk above the "
    "initial margin. Kupiec (1995) tests the exception rate, Christoffersen (1998) their independence (the "
    "losses of consecutive dates overlap when the MPOR is longer than a step, which clusters exceptions), the "
    "Basel traffic light the count; procyclicality after Murphy, Vasios and Vause (2014)."
)


def write_backtest_report(
    runs: Sequence[HistoryBacktest],
    out_dir: str | Path,
    source: str,
    baseline_params: str | None = None,
    provenance: Provenance | None = None,
) -> tuple[Path, Path]:
    """`report.html` and `summary.json` (`solvent.backtest-report/1`) for `runs`, written atomically.
    `baseline_params`: the venue rules' parameters file the runs used, recorded when given; `provenance`: what
    made the runs, in both files."""
    summaries = [run.summary() for run in runs]
    document: dict[str, Any] = {"schema": "solvent.backtest-report/1", "history": source}
    if baseline_params is not None:
        document["baseline_params"] = baseline_params
    document |= {
        "runs": summaries,
        "findings": [sentence for s in summaries for sentence in backtest_findings(s)],
    }
    sections = [backtest_section(run) for run in runs]
    page = render_page("solvent backtest", f"Margin backtest: {source}", [BACKTEST_INTRO], sections, provenance)
    return _write(Path(out_dir), page, stamped(document, provenance))


def stress_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Per model of one episode's summary: losses, liquidations, capital, procyclicality, the flag."""
    rows = []
    for model, r in summary["models"].items():
        cyc = r["procyclicality"]
        rows.append(
            {
                "model": model,
                "bad debt": r["bad_debt"],
                "fund paid": r["insurance_fund_paid"],
                "socialised": r["socialised_loss"] + r["unresolved_loss"],
                "accounts liquidated": r["accounts_liquidated"],
                "liquidation trades": r["liquidation_trades"],
                "notional liquidated": r["liquidated_notional"],
                "IM / notional": r["capital_locked"],
                "peak / trough": np.nan if cyc is None else cyc["peak_to_trough"],
                "flag hit rate": np.nan if r["hit_rate"] is None else r["hit_rate"],
                "false alarms": r["false_alarms"],
                "median lead (s)": np.nan if r["lead_seconds_median"] is None else r["lead_seconds_median"],
            }
        )
    return pd.DataFrame(rows)


def stress_charts(run: StressRun) -> tuple[Chart, ...]:
    """The episode's figures, each from the series its table reports: the price path, IM / notional (with its
    mean, the table's figure), the requirement by factor, and the cumulative notional liquidated, insurance fund
    and bad debt (whose last points are the table's totals)."""
    results = run.results
    hours = {m: r.seconds / 3600.0 for m, r in results.items()}
    start = run.path.prices[0]
    first = run.path.assets[0]
    path_hours = run.path.seconds / 3600.0
    price_series = [
        Series(f"{name} path", path_hours, run.path.prices[:, j] / start[j], kind="reference")
        for j, name in enumerate(run.path.assets)
    ]
    price_series += [Series(f"{first} traded, {m}", hours[m], r.traded[:, 0] / start[0], m) for m, r in results.items()]
    im_series = []
    for m, r in results.items():
        im_series.append(Series(m, r.im_seconds / 3600.0, r.im_share, m))
        im_series.append(
            Series(f"{m} mean", r.im_seconds[:1] / 3600.0, np.array([r.totals["capital_locked"]]), m, "mean")
        )
    model = "multi" if "multi" in results else next(iter(results))
    factors = results[model].factors
    factor_hours = results[model].factor_seconds / 3600.0

    def in_usd(title: str, attribute: str) -> Chart:
        series = tuple(Series(m, hours[m], getattr(r, attribute), m) for m, r in results.items())
        return Chart(title, (Panel(series, "usd"),))

    return (
        Chart(
            "Price path (start = 100%): exogenous, and traded after liquidation impact",
            (Panel(tuple(price_series), "share"),),
        ),
        Chart(
            "Requirement over time: total IM / total notional (dotted: its mean, the table's IM / notional)",
            (Panel(tuple(im_series), "share"),),
        ),
        Chart(
            f"Requirement by factor over time, {model}: each IM term / total notional",
            (
                Panel(
                    tuple(Series(n, factor_hours, v, kind="stack") for n, v in factors.items() if np.any(v != 0.0)),
                    "share",
                ),
            ),
        ),
        in_usd("Notional liquidated, cumulative (USD)", "liquidated"),
        in_usd("Insurance fund (USD)", "fund"),
        in_usd("Bad debt, cumulative: losses beyond the accounts' collateral (USD)", "bad_debt"),
    )


def stress_section(run: StressRun) -> Section:
    """One episode under every model: what ran, the findings, the table and the figures."""
    summary = run.summary()
    return Section(
        heading=f"{summary['name']} ({summary['episode']})",
        text=(
            f"{len(run.results)} models; perpetuals on {', '.join(summary['assets'])}, collateral "
            f"{summary['collateral']}; {summary['seconds'] / 3600.0:.1f} hours simulated.",
        ),
        findings=tuple(stress_findings(summary)),
        tables=(html_table(stress_table(summary)),),
        charts=stress_charts(run),
    )


def comparison_table(table: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The comparison across models: the episodes' aggregates next to the history's (None: not run)."""
    rows = []
    for model, record in table.items():
        e, h = record["episodes"] or {}, record["history"] or {}
        rows.append(
            {
                "model": model,
                "episode runs": e.get("runs"),
                "bad debt, sum": e.get("bad_debt"),
                "liquidation trades, sum": e.get("liquidation_trades"),
                "notional liquidated, sum": e.get("liquidated_notional"),
                "IM / notional, mean": e.get("capital_locked"),
                "flag hit rate, mean": e.get("hit_rate"),
                "median lead (s)": e.get("lead_seconds_median"),
                "history IM / notional": h.get("capital_locked"),
                "exceptions": f"{h['exceptions']}/{h['observations']}" if h else None,
                "exception rate": h.get("exception_rate"),
                "Kupiec p (worst)": h.get("kupiec_p_value"),
                "cond. coverage p (worst)": h.get("cc_p_value"),
                "zone (worst)": f"{h['zone']} ({h['zone_portfolio']})" if h else None,
                "peak / trough (max)": h.get("peak_to_trough"),
            }
        )
    return pd.DataFrame(rows)


def comparison_section(table: dict[str, dict[str, Any]], history: HistoryComparison | None) -> Section:
    """The comparison across models, episodes and history side by side; "n/a" where a model did not run."""
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
    note = (
        "Per model: the episodes' bad debt, liquidation trades and notional summed over the runs, capital locked "
        "and the flag's hit rate averaged over them (the hit rate over the runs where it is defined), the median "
        f"of their median lead times; next to the backtest on the {source}. Exceptions are summed over the "
        "reference portfolios, capital locked is their mean; each test reports its worst portfolio (lowest "
        "p-value, worst zone, largest peak-to-trough). n/a: the model did not run on that side."
    )
    return Section(
        heading="Model comparison (episodes and history)",
        text=(note,),
        findings=tuple(comparison_findings(table)),
        tables=(html_table(comparison_table(table), na_rep=NOT_RUN),),
    )


def _setting(value: Any) -> str:
    """A command's option as the page says it: numbers with thousands separators and no trailing ".0"."""
    return f"{value:,.10g}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def write_stress_report(
    runs: Sequence[StressRun],
    out_dir: str | Path,
    settings: dict[str, Any],
    *,
    models: Sequence[str] | None = None,
    history: HistoryComparison | None = None,
    provenance: Provenance | None = None,
) -> tuple[Path, Path]:
    """`report.html` and `summary.json` (`solvent.stress-report/1`) for `runs`, written atomically. `models`:
    the rows of the comparison (default every model of the runs, in order); `history`: the same models
    backtested on a price history, whose columns are otherwise n/a; `provenance`: what made the runs, in both
    files."""
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
    intro = (
        "Each episode of the crash library drives the streaming engine along its seeded path; liquidations are "
        "executed against the book and move the price, which can trigger more; the insurance fund, "
        "auto-deleveraging and socialised losses absorb what collateral does not. Every model faces the same "
        "traders, path and books. Settings: " + ", ".join(f"{k} = {_setting(v)}" for k, v in settings.items()) + "."
    )
    sections = [comparison_section(table, history), *(stress_section(run) for run in runs)]
    if history is not None:
        backtests_shown = [backtest_section(run) for run in history.runs]
        sections += [dataclasses.replace(backtests_shown[0], part="History backtest"), *backtests_shown[1:]]
    heading = "Stress lab: crash episodes under each margin model"
    page = render_page("solvent stress", heading, [intro], sections, provenance)
    return _write(Path(out_dir), page, stamped(document, provenance))
