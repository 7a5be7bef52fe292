"""SHA-256 digests of parameters and input files: what the proposal, the diff and the audit log refer to.

The digests themselves are formats/provenance.py's (one canonical digest for parameters, documents and files)."""

from __future__ import annotations

import os

import msgspec

from solvent.formats.governance import InputDigest
from solvent.formats.provenance import canonical_sha256, file_sha256
from solvent.params import MarginParams


def params_sha256(params: MarginParams) -> str:
    """The digest of the parameters' canonical JSON (every field, in declaration order, compact)."""
    return canonical_sha256(params)


def document_sha256(document: msgspec.Struct) -> str:
    """The digest of a record's compact JSON."""
    return canonical_sha256(document)


def input_digest(role: str, path: str | os.PathLike[str]) -> InputDigest:
    """The digest of an input file's bytes, with its role and name."""
    return InputDigest(role=role, source=str(path), sha256=file_sha256(path)[0])
