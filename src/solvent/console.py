"""Human-readable rendering of results for the terminal (rich)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from solvent.baselines.book import BaselineResult
from solvent.engine.attribution import Attribution
from solvent.engine.results import MarginResult
from solvent.engine.rollup import parent_rollup

MAX_TABLE_ROWS = 200
FloatArray = NDArray[np.float64]


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _dollars(value: float) -> str:
    """A report's amount: whole dollars with thousands separators."""
    return f"${value:,.0f}"


def _health(value: float) -> str:
    return "inf" if math.isinf(value) and value > 0 else f"{value:.3f}"


def fitted_table(
    title: str, columns: list[tuple[str, str]], rows: list[list[str]], width: int | None, keep: int = 1
) -> Table:
    """A table of the `columns` (name, justify), in their order, that fit `width` terminal cells with every cell
    whole: the first `keep` always, then the next ones while the table still fits; a caption names the columns
    left out (every figure is in the JSON and Parquet outputs). A number is never cut or wrapped."""
    natural = [
        max([Text.from_markup(name).cell_len] + [Text.from_markup(row[c]).cell_len for row in rows])
        for c, (name, _) in enumerate(columns)
    ]
    shown, used = [], 1  # the left border
    for c, cells in enumerate(natural):
        if c >= keep and width is not None and used + cells + 3 > width:
            break  # the columns are in order of priority: the rest are left out
        shown.append(c)
        used += cells + 3  # padding on both sides and the column's right border
    table = Table(title=title)
    for c in shown:
        name, justify = columns[c]
        table.add_column(name, justify=justify, no_wrap=True, min_width=natural[c])  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[c] for c in shown))
    hidden = [columns[c][0] for c in range(len(columns)) if c not in shown]
    if hidden:
        table.caption = (
            f"{len(hidden)} columns left out at this width: {', '.join(hidden)} (a wider terminal shows them)"
        )
    return table


def margin_table(result: MarginResult, width: int | None = None) -> Table:
    """Per account: IM, MM, equity, health, liquidatable, IM terms and net delta per traded asset (the columns that
    fit `width` whole, in that order of priority: `fitted_table`)."""
    order = np.argsort(-result.im, kind="stable")
    shown = order[:MAX_TABLE_ROWS] if result.n_accounts > MAX_TABLE_ROWS else np.arange(result.n_accounts)
    title = f"Margin ({result.scenario_method}, {result.n_scenarios} scenarios)"
    if len(shown) < result.n_accounts:
        title += f" - {len(shown)} largest IM of {result.n_accounts}; use --format json|parquet --out F for all"
    columns = [("account", "left"), ("IM", "right"), ("MM", "right"), ("equity", "right"), ("health", "right")]
    columns.append(("liq", "left"))
    # Every term is in the JSON and Parquet output; the table leaves out those at 0 for every account it shows.
    terms = {name: values for name, values in result.terms.items() if np.any(values[shown])}
    columns += [(term, "right") for term in terms]
    index = {name: a for a, name in enumerate(result.assets)}
    for asset in result.traded_assets:
        columns += [(f"Δ {asset}", "right"), (f"vega {asset}", "right")]
    rows = []
    for n in shown:
        cells = [
            str(result.account_ids[n]),
            _money(result.im[n]),
            _money(result.mm[n]),
            _money(result.equity[n]),
            _health(result.health[n]),
            "[bold red]yes[/]" if result.liquidatable[n] else "no",
        ]
        cells += [_money(values[n]) for values in terms.values()]
        for asset in result.traded_assets:
            cells.append(f"{result.greeks[n, index[asset], 0]:,.4f}")
            cells.append(f"{result.greeks[n, index[asset], 2]:,.2f}")
        rows.append(cells)
    return fitted_table(title, columns, rows, width, keep=6)


def print_margin(result: MarginResult, console: Console) -> None:
    """Print the margin table, one line of totals and a warning line per degraded oracle."""
    console.print(margin_table(result, console.width))
    console.print(
        f"accounts {result.n_accounts:,}  IM {_money(float(result.im.sum()))}  "
        f"MM {_money(float(result.mm.sum()))}  equity {_money(float(result.equity.sum()))}  "
        f"liquidatable {int(result.liquidatable.sum()):,}"
    )
    for warning in result.oracle_warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")
    print_isolated_note(result, console)


def print_isolated_note(result: MarginResult, console: Console, limit: int = 10) -> None:
    """A note per parent with isolated sub-accounts: their totals (each is margined on its own collateral)."""
    rollup = parent_rollup(result)
    for g in range(min(rollup.n_parents, limit)):
        console.print(
            f"note: {rollup.parent_ids[g]} has {int(rollup.n_isolated[g])} isolated sub-account(s), margined on "
            f"their own collateral: IM {_money(float(rollup.im[g]))}  MM {_money(float(rollup.mm[g]))}  "
            f"equity {_money(float(rollup.equity[g]))}  liquidatable {int(rollup.short[g])}"
        )
    if rollup.n_parents > limit:
        console.print(f"note: and {rollup.n_parents - limit:,} more parents with isolated sub-accounts")


def _share(value: float) -> str:
    return f"{value:.1%}" if math.isfinite(value) else "-"


def _role(contribution: float) -> str:
    if contribution > 0.0:
        return "[red]driver[/]"
    return "[green]offset[/]" if contribution < 0.0 else "-"


def explain_tables(attribution: Attribution) -> tuple[Table, Table, Table]:
    """Positions (drivers first, offsets last), contributions per asset, and the tail scenarios."""
    a = attribution
    title = (
        f"Market-risk attribution: {a.account_id} ({a.scenario_method}, {a.n_scenarios} scenarios, "
        f"{a.measure} {a.confidence:g})"
    )
    positions = Table(title=title)
    positions.add_column("#", justify="right")
    positions.add_column("instrument")
    positions.add_column("asset")
    for name in ("quantity", "contribution", "share"):
        positions.add_column(name, justify="right")
    positions.add_column("role")
    for p in a.positions:
        positions.add_row(
            str(p.position),
            p.instrument,
            p.asset,
            f"{p.quantity:,.4f}",
            _money(p.contribution),
            _share(p.share),
            _role(p.contribution),
        )
    assets = Table(title="By asset")
    assets.add_column("asset")
    assets.add_column("contribution", justify="right")
    assets.add_column("share", justify="right")
    for row in a.assets:
        assets.add_row(row.asset, _money(row.contribution), _share(row.share))
    tail = Table(title="Tail scenarios (weight in the measure)")
    tail.add_column("scenario", justify="right")
    tail.add_column("group", justify="right")
    tail.add_column("label")
    tail.add_column("weight", justify="right")
    tail.add_column("loss", justify="right")
    for t in a.tail:
        tail.add_row(str(t.scenario), str(t.group), t.label, f"{t.weight:.4f}", _money(t.loss))
    return positions, assets, tail


def terms_table(attribution: Attribution) -> Table:
    """Every IM term of the account, with each add-on's split by asset where it has one."""
    assets = sorted({asset for by_asset in attribution.add_ons_by_asset.values() for asset in by_asset})
    table = Table(title=f"IM terms: {attribution.account_id}")
    table.add_column("term")
    table.add_column("total", justify="right")
    for asset in assets:
        table.add_column(asset, justify="right")
    for term, total in attribution.terms.items():
        by_asset = attribution.add_ons_by_asset.get(term, {})
        table.add_row(term, _money(total), *[_money(by_asset[a]) if a in by_asset else "" for a in assets])
    table.add_row("IM", _money(sum(attribution.terms.values())), *["" for _ in assets])
    return table


def marks_table(attribution: Attribution) -> Table:
    """What each asset of the account's positions was margined at: price, uncertainty, oracle status, and the
    oracle sources rejected with the reason."""
    table = Table(title=f"Prices margined at: {attribution.account_id}")
    table.add_column("asset")
    table.add_column("price", justify="right")
    table.add_column("uncertainty", justify="right")
    table.add_column("oracle status")
    table.add_column("rejected sources")
    for asset, mark in attribution.marks.items():
        rejected = ", ".join(f"{name} ({reason})" for name, reason in mark.rejected) or "-"
        table.add_row(asset, f"{mark.price:,.6g}", _money(mark.uncertainty), mark.oracle_status, rejected)
    return table


def print_explain(attribution: Attribution, console: Console) -> None:
    """Print the attribution tables and the line they sum to."""
    positions, assets, tail = explain_tables(attribution)
    console.print(positions)
    console.print(assets)
    console.print(tail if attribution.tail else "no tail scenarios: every scenario group's measure is <= 0")
    if attribution.terms:
        console.print(terms_table(attribution))
    if attribution.marks:
        console.print(marks_table(attribution))
    total = sum(p.contribution for p in attribution.positions)
    error = "" if attribution.standard_error is None else f" (Monte Carlo s.e. {_money(attribution.standard_error)})"
    console.print(
        f"account {attribution.account_id}  market_risk {_money(attribution.market_risk)}{error}  "
        f"sum of contributions {_money(total)}"
    )


def baseline_table(baseline: BaselineResult, multifactor_im: FloatArray) -> Table:
    """Per account: multi-factor IM, the baseline's IM and MM, and baseline IM / multi-factor IM."""
    ratio = baseline.ratio(multifactor_im)
    order = np.argsort(-multifactor_im, kind="stable")
    shown = order[:MAX_TABLE_ROWS] if baseline.n_accounts > MAX_TABLE_ROWS else np.arange(baseline.n_accounts)
    title = f"Baseline {baseline.rule} vs the multi-factor model"
    if len(shown) < baseline.n_accounts:
        title += f" - {len(shown)} largest IM of {baseline.n_accounts}; use --format json for all"
    table = Table(title=title)
    table.add_column("account")
    for name in ("multi-factor IM", f"{baseline.rule} IM", f"{baseline.rule} MM", "ratio"):
        table.add_column(name, justify="right")
    for n in shown:
        cells = [
            str(baseline.account_ids[n]),
            _money(multifactor_im[n]),
            _money(baseline.im[n]),
            _money(baseline.mm[n]),
        ]
        table.add_row(*cells, f"{ratio[n]:.2f}" if math.isfinite(ratio[n]) else "-")
    return table


def print_baseline(baseline: BaselineResult, multifactor_im: FloatArray, console: Console) -> None:
    """Print the comparison table, one line of totals and the rule's notes."""
    console.print(baseline_table(baseline, multifactor_im))
    console.print(
        f"accounts {baseline.n_accounts:,}  multi-factor IM {_money(float(multifactor_im.sum()))}  "
        f"{baseline.rule} IM {_money(float(baseline.im.sum()))}  {baseline.rule} MM {_money(float(baseline.mm.sum()))}"
    )
    for note in baseline.notes:
        console.print(f"note: {note}")


def print_stream_summary(summary: dict[str, object], console: Console) -> None:
    """The figures of a replay (`solvent stream`), one per row."""
    table = Table(title="Stream")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in summary.items():
        if name == "schema":
            continue
        text = _money(value) if isinstance(value, float) else str(value)
        table.add_row(name.replace("_", " "), text)
    console.print(table)


def print_backtest(summary: dict[str, Any], console: Console) -> None:
    """One backtest run: per model and portfolio, capital, exceptions, the tests and the zone."""
    title = (
        f"Backtest {', '.join(summary['assets'])}: {summary['first_date']} to {summary['last_date']} "
        f"({summary['windows']} windows)"
    )
    names = ("model", "portfolio", "exceptions", "zone", "IM/notional", "Kupiec p", "cond. cov. p", "peak/trough")
    columns = [(name, "left" if name in ("model", "portfolio", "zone") else "right") for name in names]
    rows = []
    for model, per_portfolio in summary["models"].items():
        for portfolio, record in per_portfolio.items():
            b = record["backtest"]
            rows.append(
                [
                    model,
                    portfolio,
                    f"{b['exceptions']}/{b['observations']}",
                    b["zone"],
                    f"{record['capital_locked']:.1%}",
                    f"{b['kupiec']['p_value']:.3f}",
                    f"{b['christoffersen']['p_value_cc']:.3f}",
                    f"{record['procyclicality']['peak_to_trough']:.2f}",
                ]
            )
    console.print(fitted_table(title, columns, rows, console.width, keep=4))


def print_portfolio_backtest(summary: dict[str, Any], console: Console) -> None:
    """A portfolio (dirty) backtest: per model, the pooled exception rates and the accounts by zone."""
    title = (
        f"Portfolio backtest, {summary['accounts_with_positions']} accounts: {summary['first_date']} to "
        f"{summary['last_date']} ({summary['windows']} windows)"
    )
    table = Table(title=title)
    for name in ("model", "mean total IM", "exceptions", "path exc.", "rejected", "green/yellow/red"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for model, r in summary["models"].items():
        zones = r["zones"]
        table.add_row(
            model,
            _money(r["mean_total_im"]),
            f"{r['exceptions']}/{r['observations']}",
            f"{r['path_exceptions']}/{r['observations']}",
            str(r["accounts_rejected"]),
            f"{zones['green']}/{zones['yellow']}/{zones['red']}",
        )
    console.print(table)


def print_stress(summary: dict[str, Any], console: Console) -> None:
    """One episode under each model: bad debt, liquidations, capital, the predictive flag."""
    table = Table(title=f"{summary['name']} ({summary['episode']})")
    for name in ("model", "bad debt", "liquidated accts", "notional liq.", "IM/notional", "hit rate", "false alarms"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for model, r in summary["models"].items():
        table.add_row(
            model,
            _dollars(r["bad_debt"]),
            f"{r['accounts_liquidated']:,}",
            _dollars(r["liquidated_notional"]),
            f"{r['capital_locked']:.1%}",
            "-" if r["hit_rate"] is None else f"{r['hit_rate']:.0%}",
            str(r["false_alarms"]),
        )
    console.print(table)


def print_comparison(table: dict[str, Any], console: Console) -> None:
    """The stress comparison: per model, the episodes aggregated next to the history's backtest ("n/a": the model
    did not run on that side)."""
    out = Table(title="Model comparison (episodes and history)")
    columns = (
        "model",
        "bad debt",
        "liq. trades",
        "notional liq.",
        "IM/notional",
        "hit rate",
        "hist. IM/notional",
        "exceptions",
        "Kupiec p",
        "cond. cov. p",
        "zone",
        "peak/trough",
    )
    for name in columns:
        out.add_column(name, justify="left" if name in ("model", "zone") else "right")

    def show(value: Any, form: str) -> str:
        return "n/a" if value is None else format(value, form)

    for model, record in table.items():
        e, h = record["episodes"] or {}, record["history"] or {}
        out.add_row(
            model,
            "n/a" if e.get("bad_debt") is None else _dollars(e["bad_debt"]),
            show(e.get("liquidation_trades"), ",d"),
            "n/a" if e.get("liquidated_notional") is None else _dollars(e["liquidated_notional"]),
            show(e.get("capital_locked"), ".1%"),
            show(e.get("hit_rate"), ".0%"),
            show(h.get("capital_locked"), ".1%"),
            f"{h['exceptions']}/{h['observations']}" if h else "n/a",
            show(h.get("kupiec_p_value"), ".3f"),
            show(h.get("cc_p_value"), ".3f"),
            h.get("zone", "n/a"),
            show(h.get("peak_to_trough"), ".2f"),
        )
    console.print(out)


class RunProgress:
    """Overall progress of a batch of runs (`solvent stress`: episodes x models): on a terminal a rich progress
    bar with the elapsed time and an ETA; when the console is piped or a file, one line per finished run
    ("3/24 runs, elapsed 0:00:41, ETA 0:04:51: 2020-03-12: multi done"), the ETA from the mean time per run.
    `start(label)` begins a run, ending the one before; the last ends with the context."""

    def __init__(self, total: int, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
            transient=True,
        )
        self.task = self.bar.add_task("starting", total=total)
        self.running: str | None = None

    def __enter__(self) -> RunProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.finish()
        self.bar.stop()

    def start(self, label: str) -> None:
        self.finish()
        self.running = label
        self.bar.update(self.task, description=label)

    def finish(self) -> None:
        """End the running run, if any (counted once)."""
        if self.running is None:
            return
        label, self.running = self.running, None
        self.bar.advance(self.task)
        if not self.live:
            task = self.bar.tasks[0]
            done, total, elapsed = int(task.completed), int(task.total or 0), task.elapsed or 0.0
            eta = elapsed / done * (total - done) if done else 0.0
            self.console.print(
                f"{done}/{total} runs, elapsed {timedelta(seconds=round(elapsed))}, "
                f"ETA {timedelta(seconds=round(eta))}: {label} done",
                highlight=False,
            )
