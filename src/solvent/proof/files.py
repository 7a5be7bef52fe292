"""The proof's files: the margin output it reads, and what `solvent prove` writes into its folder.

    statement.json   solvent.solvency/2, the published statement (root, totals, solvency, Cover 2, the cap)
    tree.parquet     every node, layer by layer from the leaves (`level` 0) to the root: hash and amounts
    accounts.parquet the venue's private key to the leaves: account, leaf index, salt, status
    proofs.ndjson    with --proofs: one solvent.proof/3 document per line (every account, or those asked for)

Any account's proof is a read of at most `depth` rows of the tree (`load_tree`, `inclusion_proof`), so the folder holds
every proof without repeating the upper layers a million times; proofs.ndjson is the form handed to accounts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from solvent.convert.results import RESULT_SCHEMA
from solvent.errors import InputError
from solvent.formats.errors import decode_json, read_bytes
from solvent.formats.io import atomic_output
from solvent.formats.proof import (
    PROOF_SCHEMA,
    PROOF_SCHEMA_V1,
    PROOF_SCHEMA_V2,
    ProofDocument,
    ProofDocumentV1,
    ProofDocumentV2,
    StatementDocument,
)
from solvent.formats.provenance import Provenance, stamped
from solvent.proof.encoding import ProofEncodingError, decode_proof, encode_proof
from solvent.proof.hashing import HASH_BYTES
from solvent.proof.inclusion import InclusionProof, inclusion_proof
from solvent.proof.leaves import AMOUNTS, SALT_BYTES, STATUSES
from solvent.proof.statement import SolvencyStatement
from solvent.proof.tree import Layer, SolvencyTree

FloatArray = NDArray[np.float64]
SCHEMA_KEY = b"solvent.schema"
TREE_SCHEMA = "solvent.proof-tree/1"
ACCOUNTS_SCHEMA = "solvent.proof-accounts/1"


@dataclass(frozen=True, eq=False)
class MarginFigures:
    """What the tree needs of a margin run: each account's id, equity, IM and MM (USD), and the run's market
    time and scenario method."""

    account_ids: list[str]
    equity: FloatArray
    im: FloatArray
    mm: FloatArray
    market_time: str | None
    scenario_method: str | None


class _MarginAccount(msgspec.Struct, frozen=True):
    account: str
    im: float
    mm: float
    equity: float


class _Header(msgspec.Struct, frozen=True):
    schema: str | None = None


class _MarginDocument(msgspec.Struct, frozen=True):
    accounts: list[_MarginAccount]
    market_time: str | None = None
    scenario_method: str | None = None


def read_margin_output(path: str | os.PathLike[str]) -> MarginFigures:
    """A solvent.margin/1 file (`solvent margin --format json` or `parquet`)."""
    source = str(path)
    if source.endswith(".parquet"):
        try:
            table = pq.read_table(source, columns=["account", "equity", "im", "mm"])
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            raise InputError(source, "", f"not a readable solvent.margin/1 Parquet file ({exc})") from None
        meta = table.schema.metadata or {}
        if meta.get(SCHEMA_KEY) != RESULT_SCHEMA.encode():
            raise InputError(source, "schema", f"expected {RESULT_SCHEMA!r}, got {meta.get(SCHEMA_KEY)!r}")
        market_time = meta.get(b"solvent.market_time")
        method = meta.get(b"solvent.scenario_method")
        return MarginFigures(
            table.column("account").to_pylist(),
            table.column("equity").to_numpy(),
            table.column("im").to_numpy(),
            table.column("mm").to_numpy(),
            None if market_time is None else market_time.decode(),
            None if method is None else method.decode(),
        )
    data = read_bytes(source)
    found = decode_json(data, _Header, source).schema
    if found != RESULT_SCHEMA:
        raise InputError(source, "schema", f"expected {RESULT_SCHEMA!r}, got {found!r}")
    document = decode_json(data, _MarginDocument, source)
    accounts = document.accounts
    return MarginFigures(
        [a.account for a in accounts],
        np.array([a.equity for a in accounts], dtype=np.float64),
        np.array([a.im for a in accounts], dtype=np.float64),
        np.array([a.mm for a in accounts], dtype=np.float64),
        document.market_time,
        document.scenario_method,
    )


def proof_document(proof: InclusionProof) -> ProofDocument:
    """The solvent.proof/3 document of one proof."""
    return ProofDocument(schema=PROOF_SCHEMA, account=proof.account, proof=encode_proof(proof))


def _proof_v1(document: ProofDocumentV1) -> InclusionProof:
    """The proof a solvent.proof/1 document carries."""
    a = document.amounts
    return InclusionProof(
        account=document.account,
        salt=bytes.fromhex(document.salt),
        amounts=(a.equity, a.deficit, a.im, a.mm, a.shortfall),
        status=STATUSES.index(document.status),
        index=document.index,
        siblings=tuple((bytes.fromhex(step.hash), tuple(step.amounts)) for step in document.path),
    )


class _Account(msgspec.Struct, frozen=True):
    account: str | None = None


def _read_proof(line: bytes, source: str) -> InclusionProof:
    """The proof of one solvent.proof/3 (or /2, /1) document."""
    found = decode_json(line, _Header, source).schema
    if found == PROOF_SCHEMA_V1:
        return _proof_v1(decode_json(line, ProofDocumentV1, source))
    if found not in (PROOF_SCHEMA, PROOF_SCHEMA_V2):
        raise InputError(
            source,
            "schema",
            f"expected {PROOF_SCHEMA!r} (or the older {PROOF_SCHEMA_V2!r}, {PROOF_SCHEMA_V1!r}), got {found!r}",
        )
    document: ProofDocument | ProofDocumentV2
    if found == PROOF_SCHEMA:
        document = decode_json(line, ProofDocument, source)
    else:
        document = decode_json(line, ProofDocumentV2, source)
    try:
        return decode_proof(document.account, document.proof)
    except ProofEncodingError as exc:
        raise InputError(source, "proof", str(exc)) from None


def load_proof(path: str | os.PathLike[str], account: str | None = None) -> InclusionProof:
    """One proof from a solvent.proof/3 (or /2, /1) JSON file, or from an NDJSON file of them (`account` picks the
    line; required where the file holds several)."""
    source = str(path)
    lines = [line for line in read_bytes(source).splitlines() if line.strip()]
    if not lines:
        raise InputError(source, "", "file is empty")
    if len(lines) > 1 and not lines[0].strip().endswith(b"}"):  # one indented document over several lines
        lines = [b"\n".join(lines)]
    named = [(f"{source}:{n + 1}" if len(lines) > 1 else source, line) for n, line in enumerate(lines)]
    if account is not None:
        named = [(where, line) for where, line in named if decode_json(line, _Account, where).account == account]
        if not named:
            raise InputError(source, "", f"no proof for account {account!r}")
    elif len(named) > 1:
        raise InputError(source, "", f"{len(named)} proofs: name the account (--account)")
    return _read_proof(named[0][1], named[0][0])


def load_statement(path: str | os.PathLike[str]) -> StatementDocument:
    """A solvent.solvency/2 (or /1) statement."""
    source = str(path)
    return decode_json(read_bytes(source), StatementDocument, source)


def _fixed(values: NDArray[np.uint8], width: int) -> pa.Array:
    """(n, width) bytes as a fixed-size binary column, sharing the array's memory."""
    values = np.ascontiguousarray(values)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values)])


def tree_table(tree: SolvencyTree) -> pa.Table:
    """tree.parquet's table: one row per node, layer by layer (one chunk per layer: no copy of the hashes)."""
    chunks = []
    for k, layer in enumerate(tree.layers):
        columns = {"level": np.full(layer.hashes.shape[0], k, dtype=np.uint8), "hash": _fixed(layer.hashes, HASH_BYTES)}
        columns.update({name: layer.amounts[:, j] for j, name in enumerate(AMOUNTS)})
        chunks.append(pa.table(columns))
    return pa.concat_tables(chunks).replace_schema_metadata({SCHEMA_KEY: TREE_SCHEMA.encode()})


def accounts_table(tree: SolvencyTree) -> pa.Table:
    """accounts.parquet's table: one row per account, in the order given."""
    return pa.table(
        {
            "account": pa.array(tree.account_ids, type=pa.string()),
            "index": tree.leaf_index,
            "salt": _fixed(tree.salt, SALT_BYTES),
            "status": tree.status,
        }
    ).replace_schema_metadata({SCHEMA_KEY: ACCOUNTS_SCHEMA.encode()})


def write_outputs(
    out_dir: str | os.PathLike[str],
    tree: SolvencyTree,
    statement: SolvencyStatement,
    proofs_for: Iterable[int] | None = None,
    provenance: Provenance | None = None,
) -> list[Path]:
    """Write the folder (module docstring), each file atomically; `proofs_for`: the account positions whose
    proofs go to proofs.ndjson (None: no proofs.ndjson), each up to the statement's cap; `provenance`: what made
    the statement, written into it. Returns the paths written."""
    folder = Path(out_dir)
    levels = 0 if statement.cap is None else statement.cap.levels
    written = []
    for name, table in (("tree.parquet", tree_table(tree)), ("accounts.parquet", accounts_table(tree))):
        with atomic_output(folder / name) as tmp:
            # hashes do not compress: no compression, no dictionary, no page statistics for them
            pq.write_table(table, tmp, compression="none", use_dictionary=["level"], write_statistics=False)
        written.append(folder / name)
    if proofs_for is not None:
        with atomic_output(folder / "proofs.ndjson") as tmp, open(tmp, "wb") as handle:
            for position in proofs_for:
                proof = inclusion_proof(tree, position, levels)
                handle.write(msgspec.json.encode(proof_document(proof)) + b"\n")
        written.append(folder / "proofs.ndjson")
    with atomic_output(folder / "statement.json") as tmp:
        Path(tmp).write_bytes(
            msgspec.json.format(msgspec.json.encode(stamped(statement.to_dict(), provenance)), indent=2) + b"\n"
        )
    written.append(folder / "statement.json")
    return written


def load_tree(out_dir: str | os.PathLike[str]) -> SolvencyTree:
    """The tree a `solvent prove` folder holds (to hand out proofs later: `inclusion_proof`)."""
    folder = Path(out_dir)
    nodes = pq.read_table(folder / "tree.parquet")
    accounts = pq.read_table(folder / "accounts.parquet")
    level = nodes.column("level").to_numpy()
    hashes = np.frombuffer(nodes.column("hash").combine_chunks().buffers()[1], dtype=np.uint8).reshape(-1, HASH_BYTES)
    amounts = np.stack([nodes.column(name).to_numpy() for name in AMOUNTS], axis=1).astype(np.uint64)
    bounds = np.flatnonzero(np.diff(level)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [level.shape[0]]])
    salt = np.frombuffer(accounts.column("salt").combine_chunks().buffers()[1], dtype=np.uint8)
    return SolvencyTree(
        layers=tuple(Layer(hashes[a:b], amounts[a:b]) for a, b in zip(starts, stops, strict=True)),
        account_ids=tuple(accounts.column("account").to_pylist()),
        leaf_index=accounts.column("index").to_numpy().astype(np.int64),
        salt=salt.reshape(-1, SALT_BYTES),
        status=accounts.column("status").to_numpy().astype(np.uint8),
    )
