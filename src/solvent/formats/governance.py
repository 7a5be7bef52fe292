"""The parameter-governance files: a proposal, its dry-run diff on the book, and the audit log's records.

`solvent.proposal/1` (what a calibrator or a person proposes: each change with its current value, the bounded
proposed value and the calibrator's unbounded target), `solvent.params-diff/1` (the dry run: per account IM and
MM before and after, who becomes liquidatable, the totals) and `solvent.audit/1` (one line of the append-only
JSONL log per applied change). docs/formats.md, "Parameter governance", documents every field; `solvent schema`
writes their JSON Schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

PROPOSAL_SCHEMA: Final = "solvent.proposal/1"
DIFF_SCHEMA: Final = "solvent.params-diff/1"
AUDIT_SCHEMA: Final = "solvent.audit/1"

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every governance record."""


class InputDigest(_Record, frozen=True, kw_only=True):
    """One input a proposal was calibrated from: its role (portfolio, market, depth_market, signal), the file
    as named, and the SHA-256 of its bytes."""

    role: Name
    source: str
    sha256: Sha256


class Change(_Record, frozen=True, kw_only=True):
    """One parameter change: the dotted field (`volatility.vol_floor`), its value in the base parameters, the
    value proposed (within one step of its bound) and the calibrator's target before the bound, and why."""

    path: Name
    current: float
    proposed: float
    target: float
    reason: str = ""


class Proposal(_Record, frozen=True, kw_only=True):
    """A set of changes to one base parameters file (named by its digest), by whom and from which inputs."""

    schema: Literal["solvent.proposal/1"] = "solvent.proposal/1"
    proposed_by: Name
    created: datetime
    base_params_sha256: Sha256
    inputs: list[InputDigest] = msgspec.field(default_factory=list)
    changes: list[Change]


class AccountDiff(_Record, frozen=True, kw_only=True):
    """One account before and after the change (USD): IM, MM, equity and whether it is liquidatable."""

    account: str
    im_before: float
    im_after: float
    mm_before: float
    mm_after: float
    equity_before: float
    equity_after: float
    liquidatable_before: bool
    liquidatable_after: bool


class DiffTotals(_Record, frozen=True, kw_only=True):
    """The book's totals: IM and MM before and after, and how many accounts cross the liquidation line."""

    accounts: int
    im_before: float
    im_after: float
    im_change: float
    mm_before: float
    mm_after: float
    mm_change: float
    newly_liquidatable: int
    no_longer_liquidatable: int


class ParamsDiff(_Record, frozen=True, kw_only=True):
    """The dry run of a proposal on a book: nothing is written but this document."""

    schema: Literal["solvent.params-diff/1"] = "solvent.params-diff/1"
    proposal_sha256: Sha256
    params_before_sha256: Sha256
    params_after_sha256: Sha256
    inputs: list[InputDigest]
    totals: DiffTotals
    newly_liquidatable: list[str]
    accounts: list[AccountDiff]


class AuditRecord(_Record, frozen=True, kw_only=True):
    """One applied change, one line of the audit log (append-only JSONL): who proposed it and when, from which
    inputs, who approved it, when it was applied, the parameters' digests before and after, and the dry run's
    totals on the book it was checked against (None when applied without one)."""

    schema: Literal["solvent.audit/1"] = "solvent.audit/1"
    seq: Annotated[int, msgspec.Meta(ge=1)]
    action: Literal["applied"] = "applied"
    proposed_by: Name
    proposed_at: datetime
    approved_by: Name
    applied_at: datetime
    proposal_sha256: Sha256
    inputs: list[InputDigest]
    changes: list[Change]
    params_before_sha256: Sha256
    params_after_sha256: Sha256
    diff_sha256: Sha256 | None = None
    diff_totals: DiffTotals | None = None
