"""`solvent simm` through click's CliRunner: formats, batch over files, bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from solvent.cli import main
from solvent.simm import calculate, load_calibration, read_crif

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "simm_crif.csv")


def test_csv_totals_are_the_librarys() -> None:
    result = CliRunner().invoke(main, ["simm", EXAMPLE, "--format", "csv", "--version", "2.8+2506", "--mpor", "1"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    report = calculate(read_crif(EXAMPLE), load_calibration("2.8+2506", 1))
    totals = {(r["SimmSide"], r["Portfolio"]): float(r["InitialMargin"]) for r in rows if r["ProductClass"] == "All"
              and r["RiskClass"] == "All" and r["MarginType"] == "All" and r["Portfolio"] != "All"}  # fmt: skip
    assert totals == {key: round(report.result(*key).total, 9) for key in report.winners}


def test_json_to_file(tmp_path: Path) -> None:
    out = tmp_path / "simm.json"
    result = CliRunner().invoke(main, ["simm", EXAMPLE, "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert (document["format"], document["version"], document["mpor_days"]) == ("solvent.simm/1", "2.6", 10)
    assert {row["portfolio"] for row in document["rows"]} == {"fund-a", "fund-b", "All"}


def test_batch_over_files_sums_portfolio_totals(tmp_path: Path) -> None:
    lines = Path(EXAMPLE).read_text().splitlines()
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("\n".join([lines[0], *[line for line in lines[1:] if "fund-a" in line]]) + "\n")
    second.write_text("\n".join([lines[0], *[line for line in lines[1:] if "fund-b" in line]]) + "\n")
    both = CliRunner().invoke(main, ["simm", str(first), str(second), "--format", "csv"])
    one = CliRunner().invoke(main, ["simm", EXAMPLE, "--format", "csv"])
    assert both.exit_code == 0, both.output
    assert both.output == one.output


def test_table_names_every_portfolio() -> None:
    result = CliRunner().invoke(main, ["simm", EXAMPLE])
    assert result.exit_code == 0, result.output
    assert "fund-a" in result.output and "fund-b" in result.output


def test_bad_crif_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "ProductClass,RiskType,Qualifier,Bucket,Label1,Label2,AmountUSD,Amount\nRatesFX,Risk_FX,EUR,,,,x,1\n"
    )
    result = CliRunner().invoke(main, ["simm", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}: row 2.AmountUSD: not a number: 'x'"


def test_crif_from_portfolio_then_simm(tmp_path: Path) -> None:
    examples = Path(EXAMPLE).parent
    out = tmp_path / "book.csv"
    made = CliRunner().invoke(
        main,
        ["crif", "--portfolio", str(examples / "portfolio.json"), "--market", str(examples / "market.json"),
         "--mapping", "fx", "--out", str(out)],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(main, ["simm", str(out), "--high-vol-fx", "BTC,ETH", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = {(r["Portfolio"], r["RiskClass"], r["MarginType"], r["Bucket"], r["SimmSide"]): float(r["InitialMargin"])
            for r in csv.DictReader(io.StringIO(result.output))}  # fmt: skip
    assert (
        rows[("alice", "FX", "Delta", "BTC", "Call")] == 14.7 * 1900.0
    )  # 2 BTC at 95,000; SIMM 2.6 high-vol FX weight


def test_bad_mapping_is_one_line_exit_2() -> None:
    examples = Path(EXAMPLE).parent
    result = CliRunner().invoke(
        main,
        ["crif", "--portfolio", str(examples / "portfolio.json"), "--market", str(examples / "market.json"),
         "--equity-bucket", "99"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.startswith("error: mapping.equity_bucket: must be 1..12 or Residual")
