"""`solvent demo` at a small size: the files it writes, reproduction by `solvent margin`, determinism."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from rich.console import Console

from solvent.cli import main
from solvent.demo.run import DemoRun, run_demo
from solvent.formats.provenance import read_provenance

N_ACCOUNTS = 2000
SEED = 3
FILES = [
    "report.md",
    "im_distribution.png",
    "health_distribution.png",
    "portfolio.parquet",
    "market.json",
    "params.json",
    "history.csv",
    "margin.parquet",
]


def demo(out: Path, seed: int = SEED) -> DemoRun:
    return run_demo(out, n_accounts=N_ACCOUNTS, seed=seed, console=Console(file=io.StringIO()))


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoRun]:
    out = tmp_path_factory.mktemp("demo")
    return out, demo(out)


@pytest.fixture(scope="module")
def again(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return demo(tmp_path_factory.mktemp("demo-again"))


@pytest.mark.parametrize("name", FILES)
def test_demo_writes(first: tuple[Path, DemoRun], name: str) -> None:
    out, _ = first
    path = out / name
    assert path.is_file()
    assert path.stat().st_size > 0


@pytest.mark.parametrize("name", ["im_distribution.png", "health_distribution.png"])
def test_report_embeds_figure(first: tuple[Path, DemoRun], name: str) -> None:
    out, run = first
    assert run.report == out / "report.md"
    assert f"]({name})" in run.report.read_text(encoding="utf-8")
    assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_margin_parquet_is_the_result(first: tuple[Path, DemoRun]) -> None:
    out, run = first
    table = pq.read_table(out / "margin.parquet")
    assert table.num_rows == N_ACCOUNTS
    np.testing.assert_array_equal(table.column("im").to_numpy(), run.result.im)
    np.testing.assert_array_equal(table.column("equity").to_numpy(), run.result.equity)


@pytest.fixture(scope="module")
def rerun(first: tuple[Path, DemoRun], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, _ = first
    target = tmp_path_factory.mktemp("rerun") / "margin.parquet"
    args = ["margin", "--portfolio", str(out / "portfolio.parquet"), "--market", str(out / "market.json")]
    args += ["--params", str(out / "params.json"), "--history", str(out / "history.csv")]
    result = CliRunner().invoke(main, [*args, "--format", "parquet", "--out", str(target)])
    assert result.exit_code == 0, result.output
    return target


@pytest.mark.parametrize("column", ["im", "mm", "equity", "health", "im_market_risk", "delta_BTC", "vega_ETH"])
def test_solvent_margin_reproduces_the_demo_bit_for_bit(first: tuple[Path, DemoRun], rerun: Path, column: str) -> None:
    out, _ = first
    want = pq.read_table(out / "margin.parquet").column(column).to_numpy()
    got = pq.read_table(rerun).column(column).to_numpy()
    assert got.tobytes() == want.tobytes()


def test_same_seed_same_numbers(first: tuple[Path, DemoRun], again: DemoRun) -> None:
    _, run = first
    assert list(again.result.account_ids) == list(run.result.account_ids)
    for name in ("im", "mm", "equity", "health", "greeks"):
        np.testing.assert_array_equal(getattr(again.result, name), getattr(run.result, name), err_msg=name)


def test_different_seed_different_numbers(first: tuple[Path, DemoRun], tmp_path: Path) -> None:
    _, run = first
    other = demo(tmp_path, seed=SEED + 1).result
    assert other.n_accounts == run.result.n_accounts
    assert not np.array_equal(other.im, run.result.im)
    assert not np.array_equal(other.equity, run.result.equity)


def test_demo_uses_fhs(first: tuple[Path, DemoRun]) -> None:
    _, run = first
    assert run.result.scenario_method == "fhs"
    assert run.result.n_scenarios > 900  # about 1,000 two-day windows in the 1,000-day lookback


def test_liquidatable_fraction_is_plausible(first: tuple[Path, DemoRun]) -> None:
    _, run = first
    fraction = float(run.result.liquidatable.mean())
    assert 0.0 < fraction < 0.10
    np.testing.assert_array_equal(run.result.liquidatable, run.result.equity < run.result.mm)


@pytest.mark.parametrize("name", ["margin.parquet", "report.md"])
def test_demo_outputs_carry_the_provenance_of_the_inputs_written_beside_them(
    first: tuple[Path, DemoRun], name: str
) -> None:
    """Each input is digested as written (hashlib's twin over the file), and `solvent provenance --check` agrees."""
    out, _ = first
    found = read_provenance(out / name)
    expected = {"portfolio": "portfolio.parquet", "market": "market.json", "params": "params.json"}
    expected |= {"history": "history.csv"}
    assert {role: (item.path, item.sha256) for role, item in found.inputs.items()} == {
        role: (str(out / file), hashlib.sha256((out / file).read_bytes()).hexdigest())
        for role, file in expected.items()
    }
    assert CliRunner().invoke(main, ["provenance", str(out / name), "--check"]).exit_code == 0
