"""JSON Schemas of every file format, inputs and outputs, generated from the msgspec records (one source of truth;
the outputs' records are in formats/outputs.py, the state's meta is stream/state.py's own record). Near the top of
the import floors, since it lists records of every floor below (docs/architecture.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from solvent.baselines import BaselineParams
from solvent.formats.governance import AuditRecord, ParamsDiff, Proposal
from solvent.formats.io import atomic_output
from solvent.formats.outputs import (
    BacktestReport,
    BaselineDocument,
    ExplainDocument,
    MarginDocument,
    PortfolioBacktestDocument,
    StreamSummary,
    StressReport,
    StressSweep,
)
from solvent.formats.proof import ProofDocument, ProofDocumentV1, ProofDocumentV2, StatementDocument
from solvent.formats.schemas import MarketSnapshot, Portfolio
from solvent.params import MarginParams
from solvent.stream.events import Event
from solvent.stream.feed import FeedRecord
from solvent.stream.state import StateMeta

FORMATS: dict[str, Any] = {
    "solvent.portfolio-1.schema.json": Portfolio,
    "solvent.market-1.schema.json": MarketSnapshot,
    "solvent.params-1.schema.json": MarginParams,
    "solvent.baseline-params-1.schema.json": BaselineParams,
    "solvent.feed-1.schema.json": FeedRecord,  # one record: one line of an NDJSON feed
    "solvent.events-1.schema.json": Event,  # one event: one line of an events file
    "solvent.proposal-1.schema.json": Proposal,
    "solvent.audit-1.schema.json": AuditRecord,  # one record: one line of an audit log
    # outputs
    "solvent.margin-1.schema.json": MarginDocument,
    "solvent.explain-1.schema.json": ExplainDocument,
    "solvent.baseline-1.schema.json": BaselineDocument,
    "solvent.stream-summary-1.schema.json": StreamSummary,
    "solvent.backtest-report-1.schema.json": BacktestReport,
    "solvent.portfolio-backtest-1.schema.json": PortfolioBacktestDocument,
    "solvent.stress-report-1.schema.json": StressReport,
    "solvent.params-diff-1.schema.json": ParamsDiff,
    "solvent.stress-sweep-1.schema.json": StressSweep,
    "solvent.state-1.schema.json": StateMeta,  # the `meta` document of a state file (its arrays: docs/formats.md)
    "solvent.solvency-2.schema.json": StatementDocument,  # `solvent prove`'s statement.json (reads /1 too)
    "solvent.proof-3.schema.json": ProofDocument,  # one line of `solvent prove --proofs`' proofs.ndjson
    "solvent.proof-2.schema.json": ProofDocumentV2,  # the proof before the Merkle cap, still read
    "solvent.proof-1.schema.json": ProofDocumentV1,  # the proof before solvent.proof/2, still read
}


#: Records whose `schema` tag has a default in Python (`Portfolio(instruments=..., accounts=...)`) but which a file
#: must still carry: their loaders check it before decoding.
TAGGED_FILES = frozenset({"Portfolio", "MarketSnapshot"})


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one record type."""
    schema: dict[str, Any] = msgspec.json.schema(kind)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    for name in TAGGED_FILES & set(schema.get("$defs", {})):  # the tag has a default in Python, never in the file
        record = schema["$defs"][name]
        record["required"] = ["schema", *record.get("required", [])]
    return schema


def schema_documents() -> dict[str, bytes]:
    """File name -> indented JSON Schema, for every format."""
    return {
        name: msgspec.json.format(msgspec.json.encode(json_schema(kind)), indent=2) + b"\n"
        for name, kind in FORMATS.items()
    }


def write_schemas(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write every JSON Schema into `out_dir`; returns the paths written."""
    paths = []
    for name, document in schema_documents().items():
        path = Path(out_dir) / name
        with atomic_output(path) as tmp:
            Path(tmp).write_bytes(document)
        paths.append(path)
    return paths
