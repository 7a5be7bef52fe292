"""SHA-256 digests of parameters and input files: what the proposal, the diff and the audit log refer to."""

from __future__ import annotations

import hashlib
import os

import msgspec

from solvent.formats.errors import read_bytes
from solvent.formats.governance import InputDigest
from solvent.params import MarginParams


def params_sha256(params: MarginParams) -> str:
    """The digest of the parameters' canonical JSON (every field, in declaration order, compact)."""
    return hashlib.sha256(msgspec.json.encode(params)).hexdigest()


def document_sha256(document: msgspec.Struct) -> str:
    """The digest of a record's compact JSON."""
    return hashlib.sha256(msgspec.json.encode(document)).hexdigest()


def input_digest(role: str, path: str | os.PathLike[str]) -> InputDigest:
    """The digest of an input file's bytes, with its role and name."""
    return InputDigest(role=role, source=str(path), sha256=hashlib.sha256(read_bytes(str(path))).hexdigest())
