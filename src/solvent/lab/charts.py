"""The lab's figures as data: a `Chart` holds the very series it plots, so a test can hold a chart against its
table (the last point of a cumulative series is the table's total) and `draw` only turns series into lines.

Every model keeps one colour, line style and marker in every chart (`MODEL_STYLE`), so a model that overlaps
another (vol_only under multi, static under dydx) still shows; shares are drawn on % axes, amounts on $ axes,
never in offset or scientific notation; a series with no point has no legend entry.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from solvent._extras import requires_extra

FloatArray = NDArray[np.float64]
Kind = Literal["line", "mean", "stack", "breach", "reference"]
Unit = Literal["usd", "share"]

#: (colour, line style, marker) per model, the same in every chart.
MODEL_STYLE: dict[str, tuple[str, str, str]] = {
    "multi": ("#1f77b4", "-", "o"),
    "vol_only": ("#ff7f0e", "--", "s"),
    "static": ("#2ca02c", "-", "^"),
    "dydx": ("#d62728", "--", "v"),
    "synthetix": ("#9467bd", "-.", "D"),
    "drift": ("#8c564b", ":", "P"),
    "deribit": ("#e377c2", "-.", "X"),
}
#: Markers per line (spread along it, offset per model so that two equal lines show both).
MARKERS_PER_LINE = 12
REFERENCE_COLOUR = "#555555"
BREACH_COLOUR = "#cc0000"


@dataclass(frozen=True, eq=False)
class Series:
    """One plotted series: y against x (hours, or datetime64 dates). `model` styles it (`MODEL_STYLE`).
    kind "line"; "mean": a horizontal line at y[0] (a table's average); "stack": stacked with the panel's other
    stack series; "breach": points at y with a segment down to `base` (how far a loss went past the margin);
    "reference": a thin grey line (the exogenous path, the realised loss)."""

    label: str
    x: NDArray[Any]
    y: FloatArray
    model: str | None = None
    kind: Kind = "line"
    base: FloatArray | None = None

    @property
    def empty(self) -> bool:
        return not bool(np.any(np.isfinite(self.y)))


@dataclass(frozen=True, eq=False)
class Panel:
    """One set of axes: its series, the unit of its y axis, its x label and (in small multiples) its title."""

    series: tuple[Series, ...]
    unit: Unit
    x_label: str = "hours"
    title: str = ""


@dataclass(frozen=True, eq=False)
class Chart:
    """A figure: its title and one panel, or several stacked (small multiples sharing the x axis)."""

    title: str
    panels: tuple[Panel, ...]

    def series(self, label: str) -> Series:
        """The series labelled `label` (KeyError if none)."""
        for panel in self.panels:
            for s in panel.series:
                if s.label == label:
                    return s
        raise KeyError(label)


def draw(chart: Chart) -> Any:
    """A matplotlib Figure of `chart` (no pyplot: nothing global is touched)."""
    with requires_extra("report"):
        from matplotlib import rc_context
        from matplotlib.figure import Figure

    n = len(chart.panels)
    with rc_context({"axes.formatter.useoffset": False, "axes.formatter.limits": (-99, 99)}):
        figure = Figure(figsize=(9.0, 3.4 if n == 1 else 1.0 + 2.1 * n), dpi=100)
        axes = figure.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
        for ax, panel in zip(axes, chart.panels, strict=True):
            _draw_panel(ax, panel)
        if n == 1:
            axes[0].set_title(chart.title)
        else:
            figure.suptitle(chart.title)
        axes[-1].set_xlabel(chart.panels[-1].x_label)
        figure.tight_layout()
    return figure


def png(chart: Chart) -> bytes:
    """`chart` drawn as PNG bytes."""
    buffer = io.BytesIO()
    draw(chart).savefig(buffer, format="png")
    return buffer.getvalue()


def data_uri(chart: Chart) -> str:
    """`chart` as a data: URI (a self-contained page embeds it)."""
    return "data:image/png;base64," + base64.b64encode(png(chart)).decode()


def _draw_panel(ax: Any, panel: Panel) -> None:
    with requires_extra("report"):
        from matplotlib.ticker import PercentFormatter, StrMethodFormatter

    drawn = [s for s in panel.series if not s.empty]
    stacks = [s for s in drawn if s.kind == "stack"]
    if stacks:
        ax.stackplot(stacks[0].x, *[s.y for s in stacks], labels=[s.label for s in stacks], alpha=0.8)
    lines = [s for s in drawn if s.kind != "stack"]
    for k, s in enumerate(lines):
        colour, style, marker = MODEL_STYLE.get(s.model or "", (REFERENCE_COLOUR, "-", ""))
        if s.kind == "reference":
            ax.plot(s.x, s.y, color=REFERENCE_COLOUR, linewidth=0.7, label=s.label)
        elif s.kind == "mean":
            ax.axhline(float(s.y[0]), color=colour, linestyle=":", linewidth=1.0, label=s.label)
        elif s.kind == "breach":
            ax.vlines(s.x, s.base, s.y, color=BREACH_COLOUR, linewidth=1.0)
            ax.scatter(s.x, s.y, s=14, color=BREACH_COLOUR, zorder=3, label=s.label)
        else:
            every = max(1, s.y.size // MARKERS_PER_LINE)
            ax.plot(
                s.x,
                s.y,
                color=colour,
                linestyle=style,
                marker=marker,
                markevery=(k * every // max(len(lines), 1) % every, every),
                markersize=4,
                linewidth=1.1,
                label=s.label,
            )
    ax.yaxis.set_major_formatter(PercentFormatter(1.0) if panel.unit == "share" else StrMethodFormatter("${x:,.0f}"))
    if panel.title:
        ax.set_title(panel.title, fontsize="medium")
    if drawn:
        ax.legend(fontsize="small", ncol=min(4, len(drawn)))
