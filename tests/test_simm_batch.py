"""The batched SIMM calculator (simm/batch.py) against its slow twin, the per-portfolio calculator.

Every margin of every (side, portfolio, regulation) result, and the winning regulations, must agree to
1e-12 relative: relative to the margin itself or to the largest margin of its product and risk class (a
curvature margin can be a small difference of terms of that size, where rounding differs between the summation
orders), and to 1e-9 USD at zero. On ORE's example CRIF (../shared/reference/simm,
every version and horizon, regulations enforced or not) and on seeded random CRIFs across all risk classes,
with ORE's regulation lists (SEC plus CFTC included), exclusions and empty lists. The column reader must
give the record reader's rows, and its errors.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from simm_random import random_crif

from solvent.simm import calculate, load_calibration, parse_crif, read_crif
from solvent.simm.batch import calculate_batch
from solvent.simm.calculator import SimmReport
from solvent.simm.columns import CrifColumns, parse_crif_columns, read_crif_columns
from solvent.simm.crif import CrifRecord

CASES = [("2.6", 10), ("2.6", 1), ("2.4", 10), ("2.4", 1), ("2.8+2506", 10)]
REGULATION_LISTS = ("ESA", "USPR", "CFTC", "SEC", "SEC,CFTC", "[ESA,Excluded]", "Excluded", "", "ESA,USPR")


def _assert_same(fast: SimmReport, slow: SimmReport) -> None:
    assert [(r.side, r.portfolio, r.regulation) for r in fast.results] == [
        (r.side, r.portfolio, r.regulation) for r in slow.results
    ]
    assert fast.winners == slow.winners
    for got, want in zip(fast.results, slow.results, strict=True):
        assert sorted(got.margins) == sorted(want.margins), (want.side, want.portfolio, want.regulation)
        for key, value in want.margins.items():
            scale = max(abs(v) for k, v in want.margins.items() if k[:2] == key[:2])
            tolerance = max(1e-12 * scale, 1e-9)
            assert got.margins[key] == pytest.approx(value, rel=1e-12, abs=tolerance), (want.side, want.portfolio, key)


def _assert_batch_equals_twin(records: list[CrifRecord], version: str, mpor: int, enforce: bool) -> None:
    cal = load_calibration(version, mpor)
    slow = calculate(records, cal, enforce_regulations=enforce)
    _assert_same(calculate_batch(CrifColumns.from_records(records), cal, enforce_regulations=enforce), slow)


@pytest.mark.parametrize("enforce", [True, False])
@pytest.mark.parametrize(("version", "mpor"), CASES)
def test_ore_example_crif(shared_dir: Path, version: str, mpor: int, enforce: bool) -> None:
    _assert_batch_equals_twin(read_crif(shared_dir / "reference" / "simm" / "crif.csv"), version, mpor, enforce)


@pytest.mark.parametrize("enforce", [True, False])
@pytest.mark.parametrize("version", ["2.6", "2.8+2506"])
@pytest.mark.parametrize("seed", range(50))
def test_random_crifs(seed: int, version: str, enforce: bool) -> None:
    text, _ = random_crif(seed)
    _assert_batch_equals_twin(parse_crif(text), version, 10 if seed % 2 else 1, enforce)


@pytest.mark.parametrize("seed", range(40))
def test_random_regulation_lists(seed: int) -> None:
    text, _ = random_crif(1000 + seed, regs=REGULATION_LISTS)
    _assert_batch_equals_twin(parse_crif(text), "2.6", 10, enforce=True)


def _with_parameters(records: list[CrifRecord], seed: int) -> list[CrifRecord]:
    """`records` plus random additional-IM rows (multipliers, fixed and notional add-ons, notionals, PVs); P3 has
    nothing else."""
    rng = random.Random(seed)
    extra = []
    for n in range(rng.randint(1, 12)):
        kind = rng.choice(["Param_ProductClassMultiplier", "Param_AddOnFixedAmount", "Param_AddOnNotionalFactor",
                           "Notional", "PV"])  # fmt: skip
        qualifier = {
            "Param_ProductClassMultiplier": rng.choice(["RatesFX", "Credit", "Equity", "Commodity"]),
            "Param_AddOnFixedAmount": "",
        }.get(kind, rng.choice(["Swaption", "CDS"]))
        amount = rng.choice([1.0, 1.5, 2.0]) if kind == "Param_ProductClassMultiplier" else rng.uniform(1, 1e6)
        regs = rng.choice(REGULATION_LISTS), rng.choice(REGULATION_LISTS)
        extra.append(
            CrifRecord(f"X{n}", rng.choice(["P1", "P2", "P3"]), "", kind, qualifier, "", "", "", amount, amount, *regs)
        )
    return records + extra


@pytest.mark.parametrize("enforce", [True, False])
@pytest.mark.parametrize("seed", range(30))
def test_random_crifs_with_additional_margin(seed: int, enforce: bool) -> None:
    records = parse_crif(random_crif(3000 + seed, regs=REGULATION_LISTS)[0])
    _assert_batch_equals_twin(_with_parameters(records, seed), "2.6", 10, enforce)


@pytest.mark.parametrize("seed", range(10))
def test_row_order_does_not_matter(seed: int) -> None:
    records = parse_crif(random_crif(2000 + seed, regs=REGULATION_LISTS)[0])
    shuffled = records.copy()
    random.Random(seed).shuffle(shuffled)
    cal = load_calibration("2.6", 10)
    _assert_same(
        calculate_batch(CrifColumns.from_records(shuffled), cal),
        calculate_batch(CrifColumns.from_records(records), cal),
    )


def test_an_empty_crif_has_no_results() -> None:
    report = calculate_batch(CrifColumns.from_records([]), load_calibration("2.6", 10))
    assert (report.results, report.winners) == ((), {})


def _rows(columns: CrifColumns) -> list[CrifRecord]:
    return columns.records(np.arange(len(columns)))


@pytest.mark.parametrize("seed", range(10))
def test_column_reader_gives_the_record_readers_rows(seed: int) -> None:
    text, _ = random_crif(seed, regs=REGULATION_LISTS)
    assert _rows(parse_crif_columns(text)) == [r._replace(trade_id="") for r in parse_crif(text)]


def test_column_reader_on_ores_example(shared_dir: Path) -> None:
    path = shared_dir / "reference" / "simm" / "crif.csv"
    assert _rows(read_crif_columns(path)) == [r._replace(trade_id="") for r in read_crif(path)]


def test_column_reader_skips_schedule_rows_and_takes_usd_from_the_currency() -> None:
    text = (
        "#TradeID,PortfolioID,ProductClass,RiskType,Qualifier,Bucket,Label1,Label2,AmountCurrency,Amount,IMModel\n"
        "t, p ,RatesFX,Risk_FX,EUR,,,,USD, 7.5 ,SIMM\n"
        "t,p,RatesFX,Risk_FX,GBP,,,,USD,1,Schedule\n"
        "t,p,Credit,Param_AddOnFixedAmount,,,,,,5,SIMM\n"
    )
    assert _rows(parse_crif_columns(text)) == [r._replace(trade_id="") for r in parse_crif(text)]
    assert len(parse_crif(text)) == 2


def test_columns_of_two_files_concatenate() -> None:
    records = parse_crif(random_crif(7, regs=REGULATION_LISTS)[0])
    half = len(records) // 2
    parts = [CrifColumns.from_records(records[:half]), CrifColumns.from_records(records[half:])]
    assert _rows(CrifColumns.concat(parts)) == _rows(CrifColumns.from_records(records))
