"""The solvency proof's file formats as msgspec records: solvent.solvency/2 (the published statement, with the
Merkle cap) and solvent.proof/3 (one account's inclusion proof up to its cap node, its body binary:
proof/encoding.py), read by `solvent verify` and described by their JSON Schemas; what `solvent prove` wrote
before is still read: solvent.solvency/1 (no cap), solvent.proof/2 (the same body, a path to the root) and
solvent.proof/1 (the proof as JSON fields). Amounts are whole units of 1e-6 USD (unsigned 64-bit where committed
in the tree); hashes are lowercase hex."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from solvent.formats.provenance import Provenance

STATEMENT_SCHEMA: Final = "solvent.solvency/2"
PROOF_SCHEMA: Final = "solvent.proof/3"
PROOF_SCHEMA_V2: Final = "solvent.proof/2"
PROOF_SCHEMA_V1: Final = "solvent.proof/1"

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", description="32 bytes, lowercase hex")]
Status = Literal["HEALTHY", "BELOW_IM", "LIQUIDATABLE", "BANKRUPT"]


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the proof's records."""


class Amounts(_Record, frozen=True, kw_only=True):
    """Committed amounts, units of 1e-6 USD: equity = max(E, 0), deficit = max(-E, 0), IM, MM and
    shortfall = max(MM - E, 0) (for a node: its leaves' sums)."""

    equity: int
    deficit: int
    im: int
    mm: int
    shortfall: int


class PathStep(_Record, frozen=True, kw_only=True):
    """One sibling on the way to the root: its hash and its amounts (Amounts' order)."""

    hash: Hex32
    amounts: Annotated[list[int], msgspec.Meta(min_length=5, max_length=5)]


class ProofDocument(_Record, frozen=True, kw_only=True):
    """solvent.proof/3: one account's inclusion proof up to its node of the statement's cap (`solvent prove
    --proofs`, read by `solvent verify`): the account id, and the proof's binary body in base64 (docs/formats.md)."""

    schema: Literal["solvent.proof/3"]
    account: str
    proof: Annotated[bytes, msgspec.Meta(min_length=1, description="the proof's binary body")]


class ProofDocumentV2(_Record, frozen=True, kw_only=True):
    """solvent.proof/2: the same body as solvent.proof/3, its path up to the root (written before the cap; read)."""

    schema: Literal["solvent.proof/2"]
    account: str
    proof: Annotated[bytes, msgspec.Meta(min_length=1, description="the proof's binary body")]


class ProofDocumentV1(_Record, frozen=True, kw_only=True):
    """solvent.proof/1: one account's inclusion proof as JSON fields (written before solvent.proof/2; read)."""

    schema: Literal["solvent.proof/1"]
    account: str
    salt: Hex32
    index: Annotated[int, msgspec.Meta(ge=0)]
    amounts: Amounts
    status: Status
    path: list[PathStep]


class Defaulter(_Record, frozen=True, kw_only=True):
    group: str
    accounts: list[str]
    uncovered_loss: float


class Cover2Record(_Record, frozen=True, kw_only=True):
    """The Cover-2 stress figure (USD): the scenario setting it, the loss, the fund, their ratio, who defaults."""

    scenario: str
    scenario_index: int
    n_scenarios: int
    loss: float
    insurance_fund: float
    coverage_ratio: float | None
    defaulters: list[Defaulter]


class Solvency(_Record, frozen=True, kw_only=True):
    """The statement's figures in USD (from the committed totals) and their ratios (None where undefined)."""

    net_equity: float
    equity: float
    deficit: float
    im: float
    mm: float
    shortfall: float
    insurance_fund: float
    equity_over_mm: float | None
    equity_over_im: float | None
    fund_over_deficit: float | None


class CapNode(_Record, frozen=True, kw_only=True):
    """One node of the Merkle cap: its hash and its sums (Amounts' order)."""

    hash: Hex32
    sums: Annotated[list[int], msgspec.Meta(min_length=5, max_length=5)]


class Cap(_Record, frozen=True, kw_only=True):
    """The Merkle cap: the tree's nodes `levels` below the root, left to right (proof/cap.py)."""

    levels: Annotated[int, msgspec.Meta(ge=0, le=64)]
    nodes: Annotated[list[CapNode], msgspec.Meta(min_length=1)]


class StatementDocument(_Record, frozen=True, kw_only=True):
    """solvent.solvency/2: the venue's solvency statement (`solvent prove`); solvent.solvency/1, the same without
    the cap, is still read."""

    schema: Literal["solvent.solvency/2", "solvent.solvency/1"]
    provenance: Provenance | None = None  # what made it (formats/provenance.py)
    hash: Literal["SHA-256"]
    unit_usd: float
    market_time: str | None
    root: Hex32
    depth: int
    n_accounts: int
    totals: Amounts
    solvency: Solvency
    scenario_method: str | None
    cover2: Cover2Record | None
    cap: Cap | None = None  # solvent.solvency/2: always there
