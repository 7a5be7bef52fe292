"""CRIF (ISDA's Common Risk Interchange Format): read a CSV/TSV file into validated records.

Columns are matched by name, case-insensitively: TradeID, PortfolioID, ProductClass, RiskType,
Qualifier, Bucket, Label1, Label2, AmountCurrency, Amount, AmountUSD, collect_regulations,
post_regulations (IMModel optional: "Schedule" rows are skipped, as ORE does). Amounts must be in USD:
either an AmountUSD column or AmountCurrency = USD. Errors name the file, the row and the field.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import NamedTuple

from solvent.errors import InputError

DELTA_RISK_TYPES = (
    "Risk_IRCurve", "Risk_Inflation", "Risk_XCcyBasis", "Risk_CreditQ", "Risk_CreditNonQ", "Risk_Equity",
    "Risk_Commodity", "Risk_FX", "Risk_BaseCorr",
)  # fmt: skip
VEGA_RISK_TYPES = (
    "Risk_IRVol", "Risk_InflationVol", "Risk_CreditVol", "Risk_CreditVolNonQ", "Risk_EquityVol", "Risk_CommodityVol",
    "Risk_FXVol",
)  # fmt: skip
PARAMETER_TYPES = (
    "Param_ProductClassMultiplier",
    "Param_AddOnFixedAmount",
    "Param_AddOnNotionalFactor",
    "Notional",
    "PV",
)
RISK_TYPES = (*DELTA_RISK_TYPES, *VEGA_RISK_TYPES, *PARAMETER_TYPES)
PRODUCT_CLASSES = ("RatesFX", "Rates", "FX", "Credit", "Equity", "Commodity")

_REQUIRED = ("ProductClass", "RiskType", "Qualifier", "Bucket", "Label1", "Label2", "Amount")
_OPTIONAL = (
    "TradeID",
    "PortfolioID",
    "AmountCurrency",
    "AmountUSD",
    "collect_regulations",
    "post_regulations",
    "IMModel",
)


class CrifRecord(NamedTuple):
    """One CRIF row, amounts in USD. Parameter rows (Param_*, Notional, PV) have product class ""."""

    trade_id: str
    portfolio: str
    product_class: str
    risk_type: str
    qualifier: str
    bucket: str
    label1: str
    label2: str
    amount: float
    amount_usd: float
    collect_regulations: str
    post_regulations: str


def _number(text: str, source: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(source, where, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(source, where, f"not a finite number: {text!r}")
    return value


def parse_crif(text: str, source: str = "<crif>") -> list[CrifRecord]:
    """Parse CRIF text (comma- or tab-separated, with a header row) into records."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(source, "header", "empty file: expected a CRIF header row")
    delimiter = "\t" if "\t" in lines[0] else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lstrip("#") for h in next(reader)]
    index = {h.lower(): i for i, h in enumerate(header)}
    missing = [c for c in _REQUIRED if c.lower() not in index]
    if missing:
        raise InputError(source, "header", f"missing column(s) {', '.join(missing)}")
    if "amountusd" not in index and "amountcurrency" not in index:
        raise InputError(source, "header", "missing column AmountUSD (or AmountCurrency, for USD amounts)")
    columns = {c: index.get(c.lower()) for c in (*_REQUIRED, *_OPTIONAL)}
    records: list[CrifRecord] = []
    for row_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue

        def cell(name: str, row: list[str] = row) -> str:
            i = columns[name]
            return row[i].strip() if i is not None and i < len(row) else ""

        where = f"row {row_number}"
        if cell("IMModel").lower() == "schedule":
            continue
        risk_type = cell("RiskType")
        if risk_type not in RISK_TYPES:
            raise InputError(source, f"{where}.RiskType", f"unknown risk type {risk_type!r}")
        product_class = cell("ProductClass")
        if risk_type in PARAMETER_TYPES:
            product_class = ""
        elif product_class not in PRODUCT_CLASSES:
            raise InputError(source, f"{where}.ProductClass", f"unknown product class {product_class!r}")
        amount = _number(cell("Amount"), source, f"{where}.Amount")
        usd_text = cell("AmountUSD")
        if usd_text:
            amount_usd = _number(usd_text, source, f"{where}.AmountUSD")
        elif cell("AmountCurrency") == "USD" or (risk_type.startswith("Param_") and not cell("AmountCurrency")):
            amount_usd = amount
        else:
            raise InputError(source, f"{where}.AmountUSD", f"no USD amount for an amount in {cell('AmountCurrency')!r}")
        records.append(
            CrifRecord(
                trade_id=cell("TradeID"),
                portfolio=cell("PortfolioID"),
                product_class=product_class,
                risk_type=risk_type,
                qualifier=cell("Qualifier"),
                bucket=cell("Bucket"),
                label1=cell("Label1"),
                label2=cell("Label2"),
                amount=amount,
                amount_usd=amount_usd,
                collect_regulations=cell("collect_regulations"),
                post_regulations=cell("post_regulations"),
            )
        )
    return records


def read_crif(path: str | Path) -> list[CrifRecord]:
    """Read a CRIF file (.csv or .tsv)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read: {exc.strerror}") from None
    return parse_crif(text, str(path))
