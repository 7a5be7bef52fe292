"""SIMM against the Open Source Risk Engine's own results on its example CRIF (every row of simm.csv).

Source: ../shared/reference/simm: ORE's example CRIF (portfolio CRIF_20201228) and the simm.csv ORE wrote
for SIMM 2.6 and SIMM 2.4 (ISDA's internal 2.3.8, whose parameters solvent transcribed from ORE's source,
simmconfigurationisdav2_3_8.cpp), 10-day and 1-day (ORE's ISDA SIMM example; licence in ORE-LICENSE.txt there).
Tolerance 1e-9 relative (ORE prints 9 decimals).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from solvent.simm import Calibration, SimmReport, calculate, load_calibration, read_crif
from solvent.simm.batch import calculate_batch
from solvent.simm.columns import read_crif_columns
from solvent.simm.report import rows, to_csv


def _twin(path: Path, cal: Calibration) -> SimmReport:
    return calculate(read_crif(path), cal)


def _batch(path: Path, cal: Calibration) -> SimmReport:
    return calculate_batch(read_crif_columns(path), cal)


ENGINES = {"twin": _twin, "batch": _batch}  # the per-portfolio calculator and the batched one
CASES = [("2.6", 10, "SIMM2.6_10D"), ("2.6", 1, "SIMM2.6_1D"), ("2.4", 10, "SIMM2.4_10D"), ("2.4", 1, "SIMM2.4_1D")]


def _expected(path: Path) -> dict[tuple[str, ...], float]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return {tuple(r[:7]): float(r[7]) for r in reader if r}


@pytest.fixture
def simm_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference" / "simm"


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize(("version", "mpor", "folder"), CASES)
def test_every_row_of_ore_simm_csv(simm_dir: Path, version: str, mpor: int, folder: str, engine: str) -> None:
    expected = _expected(simm_dir / "expected" / folder / "simm.csv")
    report = ENGINES[engine](simm_dir / "crif.csv", load_calibration(version, mpor))
    got = {tuple(r[:7]): r.initial_margin for r in rows(report)}
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=0.0), key


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_headline_totals(simm_dir: Path, engine: str) -> None:
    """Issue 17's acceptance figures: total call (ESA) and total post (CFTC), SIMM 2.6 10-day."""
    report = ENGINES[engine](simm_dir / "crif.csv", load_calibration("2.6", 10))
    assert report.result("Call", "CRIF_20201228").regulation == "ESA"
    assert report.result("Call", "CRIF_20201228").total == pytest.approx(1_086_219.458910127, rel=1e-9)
    assert report.result("Post", "CRIF_20201228").regulation == "CFTC"
    assert report.result("Post", "CRIF_20201228").total == pytest.approx(1_022_075.910765837, rel=1e-9)


def test_csv_has_ores_layout(simm_dir: Path) -> None:
    report = calculate(read_crif(simm_dir / "crif.csv"), load_calibration("2.6", 10))
    ours = to_csv(report).splitlines()
    theirs = (simm_dir / "expected" / "SIMM2.6_10D" / "simm.csv").read_text().splitlines()
    assert ours[0] == theirs[0]
    assert len(ours) == len(theirs)
