"""The SIMM breakdown as ORE's simm.csv rows, and as CSV, JSON or a rich table.

One row per (portfolio, product class, risk class, margin type, bucket, side, regulation) with a
non-zero initial margin, for the winning regulation of each side and portfolio, followed per side by
the total over portfolios (portfolio "All"). Rows with zero margin are left out, as ORE leaves them out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
from rich.console import Console
from rich.table import Table

from solvent.formats.provenance import Provenance
from solvent.simm.batch import calculate_batch
from solvent.simm.calculator import (
    MARGIN_TYPES,
    PRODUCT_CLASSES,
    RISK_CLASSES,
    SIDES,
    SimmReport,
    SimmResult,
)
from solvent.simm.calibration import load_calibration, load_calibration_file, with_high_volatility
from solvent.simm.columns import CrifColumns, read_crif_columns

HEADER = (
    "Portfolio", "ProductClass", "RiskClass", "MarginType", "Bucket", "SimmSide", "Regulation", "InitialMargin",
    "Currency", "CalculationCurrency",
)  # fmt: skip


class SimmRow(NamedTuple):
    portfolio: str
    product_class: str
    risk_class: str
    margin_type: str
    bucket: str
    side: str
    regulation: str
    initial_margin: float


def _result_rows(result: SimmResult) -> list[SimmRow]:
    def order(key: tuple[str, str, str, str]) -> tuple[int, int, int, int, str]:
        pc, rc, mt, bucket = key
        return (
            (*PRODUCT_CLASSES, "All").index(pc),
            (*RISK_CLASSES, "All").index(rc),
            (*MARGIN_TYPES, "All").index(mt),
            0 if bucket == "All" else 1,
            bucket,
        )

    return [
        SimmRow(result.portfolio, *key, result.side, result.regulation, value)
        for key, value in sorted(result.margins.items(), key=lambda kv: order(kv[0]))
        if value != 0.0
    ]


def rows(report: SimmReport) -> list[SimmRow]:
    """simm.csv's rows: each portfolio's winning-regulation breakdown, then the side's total."""
    out: list[SimmRow] = []
    for side in SIDES:
        finals = [r for r in report.final() if r.side == side]
        for result in finals:
            out.extend(_result_rows(result))
        total = sum(r.total for r in finals)
        if finals and total != 0.0:
            regulations = sorted({r.regulation for r in finals})
            regulation = regulations[0] if len(regulations) == 1 else "All"
            out.append(SimmRow("All", "All", "All", "All", "All", side, regulation, total))
    return out


def to_csv(report: SimmReport) -> str:
    """ORE's simm.csv layout (amounts to 9 decimals, USD)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows(report):
        writer.writerow([*row[:7], f"{row.initial_margin:.9f}", "USD", "USD"])
    return buffer.getvalue()


def to_json(report: SimmReport, provenance: Provenance | None = None) -> str:
    """One JSON document: version, horizon, what made it (when given) and the rows (full float precision)."""
    document = {
        "format": "solvent.simm/1",
        **({} if provenance is None else {"provenance": msgspec.to_builtins(provenance)}),
        "version": report.calibration_version,
        "mpor_days": report.mpor_days,
        "currency": "USD",
        "rows": [row._asdict() for row in rows(report)],
    }
    return msgspec.json.format(msgspec.json.encode(document)).decode() + "\n"


def print_table(report: SimmReport, console: Console) -> None:
    """The portfolio-level lines (risk class x margin type totals) of each side, as a table."""
    table = Table(title=f"ISDA SIMM {report.calibration_version}, {report.mpor_days}-day (USD)")
    for name in ("portfolio", "side", "regulation", "risk class", "margin type", "initial margin"):
        table.add_column(name, justify="right" if name == "initial margin" else "left")
    for row in rows(report):
        if row.product_class == "All" and row.bucket == "All":
            table.add_row(
                row.portfolio, row.side, row.regulation, row.risk_class, row.margin_type, f"{row.initial_margin:,.2f}"
            )
    console.print(table)


def simm_report(
    crif_paths: Sequence[str],
    version: str,
    mpor_days: int,
    calibration_path: str | None = None,
    high_volatility_fx: Sequence[str] = (),
) -> SimmReport:
    """Read CRIF files (portfolios from all of them together) and compute SIMM: what `solvent simm` runs.

    The column reader and the batched calculator (simm/batch.py; its twin is calculator.calculate).
    """
    crif = CrifColumns.concat([read_crif_columns(path) for path in crif_paths])
    if calibration_path is None:
        cal = load_calibration(version, mpor_days)
    else:
        cal = load_calibration_file(calibration_path, mpor_days)
    return calculate_batch(crif, with_high_volatility(cal, high_volatility_fx))
