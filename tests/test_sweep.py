"""`solvent stress --sweep` (issue 13 item 7; `solvent.lab.sweep`): independent runs, on Ray or serially, the same
records bit for bit; findings computed from the records."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from solvent.baselines import BaselineParams
from solvent.cli import main
from solvent.lab.cascade import PopulationSpec
from solvent.lab.sweep import SweepRun, SweepSettings, run_sweep, sweep_findings, sweep_runs, with_apc
from solvent.params import MarginParams

SETTINGS = SweepSettings(
    spec=PopulationSpec(n_accounts=60),
    seed=2,
    params=MarginParams(),
    baselines=BaselineParams(),
    insurance_fund=1_000_000.0,
)
RUNS = sweep_runs(["2024-08-05"], ["static", "multi"], [5.0], [900.0], [True])


def test_runs_are_every_combination_episode_major() -> None:
    runs = sweep_runs(["a", "b"], ["static", "multi"], [3.0, 20.0], [60.0], [True, False])
    assert len(runs) == 2 * 2 * 2 * 1 * 2
    assert runs[0] == SweepRun("a", "static", 3.0, 60.0, True)
    assert runs[-1] == SweepRun("b", "multi", 20.0, 60.0, False)
    assert [r.episode for r in runs] == ["a"] * 8 + ["b"] * 8


def test_apc_on_is_the_released_buffer_and_off_is_no_tool() -> None:
    on, off = with_apc(MarginParams(), True).volatility, with_apc(MarginParams(), False).volatility
    assert (on.apc_mode, on.apc_buffer_release, off.apc_mode) == ("buffer", True, "none")


def test_serial_records_come_in_order_with_progress() -> None:
    seen: list[tuple[int, int, str]] = []
    records = run_sweep(RUNS, SETTINGS, use_ray=False, progress=lambda k, n, run, s: seen.append((k, n, run.model)))
    assert [r["model"] for r in records] == ["static", "multi"]
    assert seen == [(1, 2, "static"), (2, 2, "multi")]
    for record in records:
        assert record["liquidatable_at_start"] == 0 and record["capital_locked"] > 0.0


def test_a_venue_rule_runs_once_for_both_apc_settings() -> None:
    """static charges no buffer: its APC on and off records are one run's (made once); multi's two are made."""
    runs = sweep_runs(["2024-08-05"], ["static", "multi"], [5.0], [900.0], [True, False])
    made: list[SweepRun] = []
    records = run_sweep(runs, SETTINGS, use_ray=False, progress=lambda k, n, run, s: made.append(run))
    assert [(r.model, r.apc) for r in made] == [("static", False), ("multi", True), ("multi", False)]
    assert [(r["model"], r["apc"]) for r in records] == [
        ("static", "on"),
        ("static", "off"),
        ("multi", "on"),
        ("multi", "off"),
    ]
    assert {k: v for k, v in records[0].items() if k != "apc"} == {k: v for k, v in records[1].items() if k != "apc"}


def test_ray_gives_the_serial_records_bit_for_bit() -> None:
    pytest.importorskip("ray")
    serial = run_sweep(RUNS, SETTINGS, use_ray=False)
    finished: list[str] = []
    on_ray = run_sweep(RUNS, SETTINGS, use_ray=True, progress=lambda k, n, run, s: finished.append(run.model))
    assert json.dumps(on_ray) == json.dumps(serial)
    assert sorted(finished) == ["multi", "static"]


def test_findings_are_computed_from_the_records() -> None:
    base = {"episode": "x", "leverage_median": 10.0, "step_seconds": 60.0, "apc": "on"}
    records = [
        {**base, "model": "static", "bad_debt": 0.0, "accounts_liquidated": 5, "capital_locked": 0.1,
         "peak_to_trough": 1.0},
        {**base, "model": "multi", "bad_debt": 0.5, "accounts_liquidated": 9, "capital_locked": 0.2,
         "peak_to_trough": 1.3},
        {**base, "model": "dydx", "bad_debt": 1000.0, "accounts_liquidated": 3, "capital_locked": 0.02,
         "peak_to_trough": 1.0},
    ]  # fmt: skip
    assert sweep_findings(records) == [
        "x, 10x, 60 s, APC on: least bad debt under static ($0), least capital locked under dydx (2.0%); multi "
        "loses on accounts liquidated (9 vs static 5, dydx 3); capital locked (20.0% vs static 10.0%, dydx 2.0%); "
        "peak-to-trough (1.30 vs static 1.00, dydx 1.00)."
    ]


def test_cli_sweep_serial_writes_the_table_and_records(tmp_path: Path) -> None:
    args = ["stress", "--sweep", "--serial", "--episode", "2024-08-05", "--compare", "static", "--accounts", "40"]
    args += ["--steps", "900", "--leverage", "3,20", "--apc", "on", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "sweep.json").read_text())
    schema = json.loads(
        (Path(__file__).parents[1] / "docs" / "schemas" / "solvent.stress-sweep-1.schema.json").read_text()
    )
    jsonschema.validate(payload, schema)
    assert [r["leverage_median"] for r in payload["records"]] == [3.0, 20.0]
    assert "[2/2] 2024-08-05 static 20x 900 s no APC" in result.output  # a venue rule charges no buffer
    assert (tmp_path / "sweep.md").read_text().count("| 2024-08-05 | static |") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "--apc", "maybe"], "--apc"),
        (["--sweep", "--steps", "0"], "numbers > 0"),
        (["--leverage", "3,5"], "one median leverage"),
    ],
)
def test_cli_sweep_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["stress", "--episode", "2024-08-05", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
