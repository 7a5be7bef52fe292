"""The lab's reports (`lab.report`, `lab.charts`): one source of truth per figure, tables formatted per column,
no hidden or empty series, and the HTML page as headless Chromium renders it.

A cumulative chart ends at its table's total: "notional liquidated" once ended 6-14% below the table, because
the chart summed the liquidation events of each margin cycle and so missed the accounts liquidated when the
venue opened (the engine's start publishes them before the first cycle) and valued fills at their price, not
at the mark the engine's total uses; the chart now plots that total, cycle by cycle.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_html import read_page
from rich.console import Console

from solvent.console import RunProgress
from solvent.lab.cascade import CascadeConfig, PopulationSpec
from solvent.lab.charts import MODEL_STYLE, Chart, Panel, Series, draw
from solvent.lab.episodes import load_crashes
from solvent.lab.margin_backtest import HistoryBacktest, run_backtest
from solvent.lab.report import (
    NOT_RUN,
    UNDEFINED,
    backtest_charts,
    backtest_table,
    html_table,
    stress_charts,
    stress_table,
    write_stress_report,
)
from solvent.lab.stress import StressRun, episode_venue, run_episode
from solvent.market.synthetic import synthetic_history
from solvent.params import MarginParams
from solvent.stream.engine import StreamEngine

MODELS = ["static", "dydx", "multi"]
#: A quick episode at 15-minute steps, 120 accounts: a few seconds per model.
EPISODE = "2024-08-05"
SPEC = PopulationSpec(n_accounts=120)
STEP = 900.0
CONFIG = CascadeConfig(block_seconds=STEP)
SEED = 5


@pytest.fixture(scope="module")
def run() -> StressRun:
    library = load_crashes()
    episode = next(e for e in library.episodes if e.id == EPISODE)
    return run_episode(
        episode, MODELS, MarginParams(), spec=SPEC, config=CONFIG, step_seconds=STEP, seed=SEED, library=library
    )


@pytest.fixture(scope="module")
def intents_run() -> StressRun:
    """The traders' intents as drawn (`solvent stress --intents`): some open below their model's MM."""
    library = load_crashes()
    episode = next(e for e in library.episodes if e.id == EPISODE)
    return run_episode(
        episode,
        MODELS,
        MarginParams(),
        spec=SPEC,
        config=CONFIG,
        step_seconds=STEP,
        seed=SEED,
        library=library,
        fair=False,
    )


@pytest.fixture(scope="module")
def backtest_run() -> HistoryBacktest:
    """300 daily closes: 50 backtested dates after the warm-up."""
    return run_backtest(
        synthetic_history(300, seed=11), ["static", "vol_only", "multi"], MarginParams(), assets=("BTC",)
    )


def _chart(charts: tuple[Chart, ...], title: str) -> Chart:
    return next(c for c in charts if c.title.startswith(title))


def _drawn_lines(chart: Chart) -> dict[str, Any]:
    """The matplotlib lines `draw` made, by label."""
    figure = draw(chart)
    return {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}


@pytest.mark.parametrize(
    ("title", "column"),
    [("Notional liquidated", "notional liquidated"), ("Bad debt", "bad debt"), ("Insurance fund", None)],
)
@pytest.mark.parametrize("model", MODELS)
def test_a_cumulative_chart_ends_at_its_table_total(run: StressRun, title: str, column: str | None, model: str) -> None:
    chart = _chart(stress_charts(run), title)
    table = stress_table(run.summary()).set_index("model")
    series = chart.series(model)
    drawn = _drawn_lines(chart)[model].get_ydata()
    np.testing.assert_array_equal(drawn, series.y)  # the figure plots the series, nothing else
    if column is None:  # the fund has no table column: its end is the engine's
        assert series.y[-1] == run.results[model].totals["fund_end"]
    else:
        assert series.y[-1] == table.loc[model, column]


def test_liquidations_at_the_start_are_in_the_chart(intents_run: StressRun) -> None:
    """A population that opens with accounts below MM (the intents as drawn; a fair population has none): the
    venue liquidates them as it opens, before the first cycle, and the cumulative chart counts them from its first
    point on (it once left them out)."""
    library = load_crashes()
    episode = next(e for e in library.episodes if e.id == EPISODE)
    venue = episode_venue(episode, spec=SPEC, step_seconds=STEP, seed=SEED, library=library)
    opening = {
        m: StreamEngine.start(venue.book, venue.market, MarginParams(), model=m, insurance_fund=CONFIG.insurance_fund)
        for m in MODELS
    }
    at_start = {m: engine.totals.liquidated_notional for m, engine in opening.items()}
    assert all(v > 0.0 for v in at_start.values()), at_start
    for model, result in intents_run.results.items():
        assert result.liquidated[0] >= at_start[model]
        assert np.all(np.diff(result.liquidated) >= 0.0)  # cumulative
        assert result.liquidated[-1] == result.totals["liquidated_notional"]


@pytest.mark.parametrize("model", MODELS)
def test_the_capital_chart_draws_the_table_mean(run: StressRun, model: str) -> None:
    chart = _chart(stress_charts(run), "Requirement over time")
    capital = stress_table(run.summary()).set_index("model").loc[model, "IM / notional"]
    assert chart.series(f"{model} mean").y[0] == capital
    assert capital == pytest.approx(float(np.mean(chart.series(model).y)), rel=1e-12)


def test_the_exception_chart_marks_the_tables_exceptions_against_each_models_im(
    backtest_run: HistoryBacktest,
) -> None:
    _, requirements, breaches = backtest_charts(backtest_run)
    table = backtest_table(backtest_run.summary())
    long_rows = table[table["portfolio"] == "long BTC"].set_index("model")
    assert [p.title.split(":")[0] for p in breaches.panels] == list(backtest_run.models)
    for model, panel in zip(backtest_run.models, breaches.panels, strict=True):
        im = next(s for s in panel.series if s.label == "IM")
        np.testing.assert_array_equal(im.y, requirements.series(model).y)
        marked = next(s for s in panel.series if s.kind == "breach")
        assert f"{marked.x.size}/{backtest_run.tested.size}" == long_rows.loc[model, "exceptions"]
        assert marked.base is not None and np.all(marked.y > marked.base)  # each drawn from the IM up to the loss


def test_columns_are_formatted_by_kind_and_noise_is_zero() -> None:
    frame = pd.DataFrame(
        {
            "model": ["static", "multi"],
            "bad debt": [5.116e7, 1234.4],
            "IM / notional": [0.1, 0.2614],
            "APC cost": [1.455e-16, -2e-17],
            "flag hit rate": [np.nan, 0.5],
        }
    )
    table = read_page(str(html_table(frame))).tables[0]
    assert table.header == list(frame.columns)
    assert table.rows == [
        ["static", "$51,160,000", "10.0%", "0.0%", UNDEFINED],
        ["multi", "$1,234", "26.1%", "0.0%", "50.0%"],
    ]
    missing = pd.DataFrame({"model": ["vol_only"], "bad debt, sum": [None]})
    assert read_page(str(html_table(missing, na_rep=NOT_RUN))).tables[0].rows == [["vol_only", "n/a"]]


def test_overlapping_models_stay_visible_and_empty_series_leave_the_legend() -> None:
    x = np.arange(50.0)
    same = np.full(50, 0.1)
    chart = Chart(
        "two equal requirements",
        (
            Panel(
                (
                    Series("static", x, same, "static"),
                    Series("dydx", x, same, "dydx"),
                    Series("exceptions (0)", x[:0], same[:0], kind="breach", base=same[:0]),
                ),
                "share",
            ),
        ),
    )
    figure = draw(chart)
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["static"].get_marker() == MODEL_STYLE["static"][2] != lines["dydx"].get_marker()
    assert lines["static"].get_linestyle() != lines["dydx"].get_linestyle()
    assert lines["static"].get_markevery() != lines["dydx"].get_markevery()  # markers do not sit on each other
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["static", "dydx"]
    figure.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()][-1].endswith("%")
    assert ax.yaxis.get_offset_text().get_text() == ""


def test_amount_axes_are_dollars_with_separators_not_offsets() -> None:
    x = np.arange(3.0)
    chart = Chart(
        "fund", (Panel((Series("multi", x, np.array([51_160_000.0, 51_160_100.0, 51_160_200.0]), "multi"),), "usd"),)
    )
    figure = draw(chart)
    figure.canvas.draw()
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\$\d{1,3}(,\d{3})*", label) for label in labels), labels
    assert ax.yaxis.get_offset_text().get_text() == ""


def test_progress_prints_a_line_per_run_when_piped() -> None:
    out = io.StringIO()
    with RunProgress(3, Console(file=out, width=200)) as progress:
        for label in ("2020-03-12: static", "2020-03-12: multi", "2021-05-19: static"):
            progress.start(label)
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["1/3 runs", "2/3 runs", "3/3 runs"]
    assert all(re.search(r"elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d: ", line) for line in lines)
    assert lines[-1].endswith("2021-05-19: static done")


#: After the page loads: each image's decoded and shown size, each table's rows and height.
CHECK = """<script>window.addEventListener("load", () => { document.body.dataset.check = JSON.stringify({
images: Array.from(document.images, i => ({alt: i.alt, width: i.naturalWidth, shown: i.getBoundingClientRect().width})),
tables: Array.from(document.querySelectorAll("table"), t => ({rows: t.rows.length, height: t.offsetHeight}))}); });
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (`make test` installs it with apt)"
)
def test_the_page_in_headless_chromium_shows_every_table_and_figure(run: StressRun, tmp_path: Path) -> None:
    report, _ = write_stress_report([run], tmp_path / "out", {"accounts": 120, "step_seconds": 900.0})
    page = report.read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    dom = _chromium("--window-size=1280,1000", "--dump-dom", checked.as_uri()).stdout
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, "the page's load handler did not run"
    check = json.loads(unescape(found.group(1)))
    titles = [c.title for c in stress_charts(run)]
    assert [i["alt"] for i in check["images"]] == titles
    assert all(i["width"] == 900 and i["shown"] > 600 for i in check["images"])  # decoded, drawn near full width
    # The comparison (one row per model) and the episode's table, each with a header row, both laid out.
    assert [t["rows"] for t in check["tables"]] == [len(MODELS) + 1] * 2
    assert all(t["height"] > 20 * (len(MODELS) + 1) for t in check["tables"])
    shot = tmp_path / "page.png"
    _chromium("--window-size=1280,3000", f"--screenshot={shot}", report.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100  # text, tables and figures, not a blank page
