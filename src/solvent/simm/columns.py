"""A CRIF as columns: each text column integer-coded (codes ordered as their strings), amounts as arrays.

What the batched calculator (batch.py) reads. `parse_crif_columns` reads the text with pyarrow's CSV
reader and checks it column-wise; on anything it does not accept (an unknown risk type, a bad number, a
ragged row) it hands the text to `crif.parse_crif`, which raises the one-line error naming file, row and
field, or returns the records it does accept: the row-by-row reader stays the reference for the format.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from solvent.errors import InputError
from solvent.simm.crif import _REQUIRED, PARAMETER_TYPES, PRODUCT_CLASSES, RISK_TYPES, CrifRecord, parse_crif

TEXT_FIELDS = (
    "portfolio", "product_class", "risk_type", "qualifier", "bucket", "label1", "label2", "collect_regulations",
    "post_regulations",
)  # fmt: skip
_OTHER = ("AmountCurrency", "Amount", "AmountUSD", "IMModel")
_HEADERS = {
    "portfolio": "PortfolioID", "product_class": "ProductClass", "risk_type": "RiskType", "qualifier": "Qualifier",
    "bucket": "Bucket", "label1": "Label1", "label2": "Label2", "collect_regulations": "collect_regulations",
    "post_regulations": "post_regulations",
}  # fmt: skip


@dataclass(frozen=True)
class Column:
    """A text column: codes[i] indexes values, and values is sorted (so codes compare as the strings)."""

    codes: np.ndarray  # int64, one per row
    values: tuple[str, ...]

    @classmethod
    def of(cls, texts: Sequence[str]) -> Column:
        values = tuple(sorted(set(texts)))
        index = {v: i for i, v in enumerate(values)}
        return cls(np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts)), values)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass(frozen=True)
class CrifColumns:
    """The CRIF rows the calculator needs (trade ids dropped), amounts in USD as in `CrifRecord`."""

    text: dict[str, Column]  # TEXT_FIELDS -> column
    amount: np.ndarray
    amount_usd: np.ndarray

    def __len__(self) -> int:
        return len(self.amount)

    @classmethod
    def from_records(cls, records: Sequence[CrifRecord]) -> CrifColumns:
        text = {f: Column.of([getattr(r, f) for r in records]) for f in TEXT_FIELDS}
        amount = np.array([r.amount for r in records], dtype=float)
        return cls(text, amount, np.array([r.amount_usd for r in records], dtype=float))

    @classmethod
    def concat(cls, parts: Sequence[CrifColumns]) -> CrifColumns:
        """The rows of `parts`, one after another."""
        text = {}
        for f in TEXT_FIELDS:
            values = tuple(sorted({v for p in parts for v in p.text[f].values}))
            index = {v: i for i, v in enumerate(values)}
            codes = [np.array([index[v] for v in p.text[f].values], dtype=np.int64)[p.text[f].codes] for p in parts]
            text[f] = Column(np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64), values)
        amounts = [p.amount for p in parts] or [np.zeros(0)]
        return cls(text, np.concatenate(amounts), np.concatenate([p.amount_usd for p in parts] or [np.zeros(0)]))

    def records(self, rows: np.ndarray) -> list[CrifRecord]:
        """The rows at `rows` as records (trade id empty)."""
        cols = [[self.text[f].values[c] for c in self.text[f].codes[rows].tolist()] for f in TEXT_FIELDS]
        amounts, usd = self.amount[rows].tolist(), self.amount_usd[rows].tolist()
        return [
            CrifRecord("", p, pcl, rt, q, b, l1, l2, a, u, c, po)
            for p, pcl, rt, q, b, l1, l2, c, po, a, u in zip(*cols, amounts, usd, strict=True)
        ]


def _recode(codes: np.ndarray, names: Sequence[str]) -> Column:
    """A column from codes into `names` (which may repeat or be unsorted)."""
    values = tuple(sorted(set(names)))
    index = {v: i for i, v in enumerate(values)}
    remap = np.array([index[v] for v in names], dtype=np.int64)
    return Column(remap[codes] if len(names) else codes, values)


def _column(array: pa.ChunkedArray) -> Column:
    """A text column, each value stripped of surrounding whitespace (on the distinct values only)."""
    encoded = pc.dictionary_encode(array).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return _recode(codes, [v.strip() for v in encoded.dictionary.to_pylist()])


class _Rejected(Exception):
    """The fast reader declines; the row-by-row reader decides."""


def _numbers(array: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of a column the CSV reader parsed as numbers (empty: absent); rejects infinities and NaN."""
    out = array.to_numpy().astype(float)
    present = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not np.isfinite(out[present]).all():
        raise _Rejected
    return out, present


def _read(text: str) -> CrifColumns:
    end = text.find("\n")
    first = (text if end < 0 else text[:end]).rstrip("\r")
    if not first.strip():
        raise _Rejected
    delimiter = "\t" if "\t" in first else ","
    header = [h.strip().lstrip("#").lower() for h in next(csv.reader(io.StringIO(first), delimiter=delimiter))]
    if len(set(header)) != len(header):
        raise _Rejected
    names = [f"c{i}" for i in range(len(header))]
    index = {h: names[i] for i, h in enumerate(header)}
    wanted = [index[h.lower()] for h in (*_HEADERS.values(), *_OTHER) if h.lower() in index]
    types = {c: pa.float64() if c in (index.get("amount"), index.get("amountusd")) else pa.string() for c in wanted}
    table = pacsv.read_csv(
        io.BytesIO(text.encode()),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=wanted, null_values=[""], strings_can_be_null=False
        ),
    )
    n = table.num_rows

    def column(name: str) -> Column:
        key = index.get(name.lower())
        return _column(table[key]) if key is not None else Column(np.zeros(n, dtype=np.int64), ("",))

    if "immodel" in index:
        keep = column("IMModel")
        rows = np.flatnonzero(np.array([v.lower() != "schedule" for v in keep.values], dtype=bool)[keep.codes])
        table, n = table.take(pa.array(rows)), len(rows)
    if any(h.lower() not in index for h in _REQUIRED) or ("amountusd" not in index and "amountcurrency" not in index):
        raise _Rejected
    text_columns = {f: column(_HEADERS[f]) for f in TEXT_FIELDS}
    rt = text_columns["risk_type"]
    if any(v not in RISK_TYPES for v in rt.values):
        raise _Rejected
    is_param = np.array([v in PARAMETER_TYPES for v in rt.values], dtype=bool)[rt.codes]
    pcl = text_columns["product_class"]
    if not np.isin(pcl.codes[~is_param], [i for i, v in enumerate(pcl.values) if v in PRODUCT_CLASSES]).all():
        raise _Rejected
    if is_param.any():
        text_columns["product_class"] = _recode(np.where(is_param, len(pcl.values), pcl.codes), [*pcl.values, ""])
    amount, has_amount = _numbers(table[index["amount"]])
    if not has_amount.all():
        raise _Rejected
    if "amountusd" in index:
        usd, has_usd = _numbers(table[index["amountusd"]])
        usd = np.where(has_usd, usd, amount)
    else:
        usd, has_usd = amount, np.zeros(n, dtype=bool)
    ccy = column("AmountCurrency")
    is_usd = np.array([v == "USD" for v in ccy.values], dtype=bool)[ccy.codes]
    no_ccy = np.array([v == "" for v in ccy.values], dtype=bool)[ccy.codes]
    starts_param = np.array([v.startswith("Param_") for v in rt.values], dtype=bool)[rt.codes]
    if not (has_usd | is_usd | (starts_param & no_ccy)).all():
        raise _Rejected
    return CrifColumns(text_columns, amount, usd)


def parse_crif_columns(text: str, source: str = "<crif>") -> CrifColumns:
    """Parse CRIF text into columns: the same rows, values and errors as `parse_crif`."""
    try:
        return _read(text)
    except (_Rejected, pa.ArrowInvalid):
        return CrifColumns.from_records(parse_crif(text, source))


def read_crif_columns(path: str | Path) -> CrifColumns:
    """Read a CRIF file (.csv or .tsv) into columns."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read: {exc.strerror}") from None
    return parse_crif_columns(text, str(path))
