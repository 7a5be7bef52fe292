"""The demo's summary (terminal) and report (Markdown with PNG figures)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from solvent._extras import requires_extra
from solvent.engine.results import MarginResult
from solvent.formats.io import atomic_output
from solvent.formats.provenance import Provenance, markdown_header

PERCENTILES = (50, 90, 99, 99.9)
#: Health percentiles cover accounts whose MM is at least this (USD).
MIN_MM_FOR_HEALTH = 1.0
#: The health figure's log axis (accounts outside it are counted, not drawn) and its linear zoom near MM = 1.
HEALTH_RANGE = (0.1, 1000.0)
HEALTH_ZOOM = 3.0
FloatArray = NDArray[np.float64]


def distribution_rows(result: MarginResult) -> list[tuple[str, list[float]]]:
    """Percentiles of IM, MM, equity and health across accounts (health where MM >= 1 USD)."""
    finite_health = health_shown(result)
    rows = [
        ("IM (USD)", result.im),
        ("MM (USD)", result.mm),
        ("equity (USD)", result.equity),
        (f"health (equity / MM; MM >= {MIN_MM_FOR_HEALTH:g} USD)", finite_health),
    ]
    return [(name, [float(np.percentile(v, p)) if v.size else float("nan") for p in PERCENTILES]) for name, v in rows]


def term_shares(result: MarginResult) -> str:
    """Each IM term's total and share of total IM, e.g. "market_risk 9,512 (97.1%), liquidity 283 (2.9%)"."""
    total = float(result.im.sum())
    parts = []
    for name, values in result.terms.items():
        value = float(values.sum())
        share = f"{value / total:.1%}" if total > 0.0 else "-"
        parts.append(f"{name} {value:,.0f} ({share})")
    return ", ".join(parts)


def largest(result: MarginResult, count: int = 10) -> NDArray[np.int64]:
    """Rows of the `count` largest IMs, largest first."""
    return np.argsort(-result.im, kind="stable")[:count]


def print_summary(result: MarginResult, timings: Mapping[str, float], console: Console) -> None:
    """Totals, distributions, largest requirements, liquidatable accounts and time taken."""
    console.print(
        f"[bold]{result.n_accounts:,} accounts[/]  scenarios: {result.scenario_method} x {result.n_scenarios}  "
        f"total IM {result.im.sum():,.0f}  total MM {result.mm.sum():,.0f}  total equity {result.equity.sum():,.0f}"
    )
    console.print(f"IM by term: {term_shares(result)}")
    dist = Table(title="Distribution across accounts")
    dist.add_column("")
    for p in PERCENTILES:
        dist.add_column(f"p{p:g}", justify="right")
    for name, values in distribution_rows(result):
        dist.add_row(name, *[f"{v:,.2f}" for v in values])
    console.print(dist)
    top = Table(title="Largest requirements")
    for name in ("account", "IM", "MM", "equity", "health", "liquidatable"):
        top.add_column(name, justify="right" if name not in ("account", "liquidatable") else "left")
    for n in largest(result):
        top.add_row(
            str(result.account_ids[n]),
            f"{result.im[n]:,.0f}",
            f"{result.mm[n]:,.0f}",
            f"{result.equity[n]:,.0f}",
            f"{result.health[n]:.2f}",
            "yes" if result.liquidatable[n] else "no",
        )
    console.print(top)
    n_liq = int(result.liquidatable.sum())
    console.print(
        f"liquidatable: [bold red]{n_liq:,}[/] accounts ({n_liq / max(result.n_accounts, 1):.2%}), "
        f"equity short of MM {np.maximum(result.mm - result.equity, 0).sum():,.0f} USD"
    )
    console.print("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))


def health_shown(result: MarginResult) -> FloatArray:
    """The healths the report shows, in its table and its figure: those of accounts with MM >= MIN_MM_FOR_HEALTH
    (an account with a near-zero MM, a tight hedge, has an astronomically large health)."""
    shown: FloatArray = result.health[np.isfinite(result.health) & (result.mm >= MIN_MM_FOR_HEALTH)]
    return shown


def _figure(path: Path, draw: str, result: MarginResult) -> None:
    with requires_extra("report"):
        from matplotlib.figure import Figure
        from matplotlib.ticker import StrMethodFormatter

    fig = Figure(figsize=(7, 4) if draw == "im" else (10, 4), dpi=110)
    if draw == "im":
        ax = fig.subplots()
        positive = result.im[result.im > 0]
        low, high = (max(float(positive.min()), 1.0), float(positive.max())) if positive.size else (1.0, 10.0)
        ax.hist(positive, bins=list(np.logspace(np.log10(low), np.log10(max(high, low * 10)), 60)), color="#3465a4")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(StrMethodFormatter("${x:,.0f}"))
        ax.set_xlabel("initial margin per account (USD, log scale)")
        ax.set_ylabel("accounts")
        ax.set_title("Initial margin across accounts")
    else:
        _health_figure(fig, health_shown(result))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")


def _health_figure(fig: Any, health: FloatArray) -> None:
    """Two panels: every account on a log axis (HEALTH_RANGE, the rest counted in the title), and the accounts
    near MM = 1 on a linear one (HEALTH_ZOOM), where liquidation begins."""
    with requires_extra("report"):
        from matplotlib.ticker import StrMethodFormatter

    full, zoom = fig.subplots(1, 2)
    low, high = HEALTH_RANGE
    inside = health[(health >= low) & (health <= high)]
    full.hist(inside, bins=list(np.logspace(np.log10(low), np.log10(high), 80)), color="#4e9a06")
    full.set_xscale("log")
    full.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    full.set_title(
        f"All {health.size:,} accounts: {int((health < low).sum()):,} below {low:g}, "
        f"{int((health > high).sum()):,} above {high:g} not drawn",
        fontsize="medium",
    )
    near = health[health <= HEALTH_ZOOM]
    zoom.hist(near, bins=list(np.arange(0.0, HEALTH_ZOOM + 1e-9, 0.05)), color="#4e9a06")
    zoom.set_title(f"Near MM: the {near.size:,} accounts with health <= {HEALTH_ZOOM:g}", fontsize="medium")
    for ax in (full, zoom):
        ax.axvline(1.0, color="#cc0000", linestyle="--", label="MM = 1 (liquidation)")
        ax.set_xlabel("health = equity / MM")
        ax.set_ylabel("accounts")
        ax.legend()
    fig.suptitle(f"Account health (accounts with MM >= {MIN_MM_FOR_HEALTH:g} USD)")


def write_report(
    result: MarginResult,
    timings: Mapping[str, float],
    out_dir: str | os.PathLike[str],
    inputs: Mapping[str, str],
    provenance: Provenance | None = None,
) -> Path:
    """Write report.md with two figures into `out_dir` (under its title, the provenance when given); returns the
    report's path."""
    out = Path(out_dir)
    _figure(out / "im_distribution.png", "im", result)
    _figure(out / "health_distribution.png", "health", result)
    lines = [
        "# solvent demo report",
        "",
        *([] if provenance is None else [markdown_header(provenance)]),
        f"{result.n_accounts:,} accounts, scenarios `{result.scenario_method}` x {result.n_scenarios}.",
        "",
        f"- total IM: {result.im.sum():,.0f} USD; total MM: {result.mm.sum():,.0f} USD",
        f"- IM by term (USD, share of IM): {term_shares(result)}",
        f"- total equity: {result.equity.sum():,.0f} USD",
        f"- liquidatable: {int(result.liquidatable.sum()):,} accounts",
        "",
        "## Distribution across accounts",
        "",
        "| | " + " | ".join(f"p{p:g}" for p in PERCENTILES) + " |",
        "|---|" + "---:|" * len(PERCENTILES),
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{v:,.2f}" for v in values) + " |" for name, values in distribution_rows(result)
    ]
    lines += ["", "![IM distribution](im_distribution.png)", "", "![Health](health_distribution.png)", ""]
    lines += ["## Largest requirements", "", "| account | IM | MM | equity | health |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {result.account_ids[n]} | {result.im[n]:,.0f} | {result.mm[n]:,.0f} | {result.equity[n]:,.0f} | "
        f"{result.health[n]:.2f} |"
        for n in largest(result)
    ]
    lines += ["", "## Time taken", ""] + [f"- {k}: {v:.2f} s" for k, v in timings.items()]
    lines += ["", "## Inputs (re-run with `solvent margin`)", ""] + [f"- {k}: `{v}`" for k, v in inputs.items()]
    path = out / "report.md"
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
