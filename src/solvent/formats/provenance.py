"""Provenance: which engine, which parameters and which input files made an output (issue 14 item 10).

Every output a user keeps carries one `Provenance`, so that any figure can be traced to what made it and
reproduced: the installed solvent version, the SHA-256 of each parameter set's canonical JSON, and per input file
its path as given, the SHA-256 of its bytes and its size. It sits in a JSON document as a `provenance` object, in
a Parquet file's key-value metadata under `solvent.provenance`, and in an HTML report as a JSON script element
(and a visible header); `read_provenance` finds it in any of them and `check_inputs` re-hashes the inputs.

No wall-clock time: solvent promises byte-identical outputs for the same inputs, so a provenance says what made
a file, never when. Library writers take a `Provenance | None` and never read files for it; the command line
builds one from the paths it was given (`provenance_of`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import pyarrow.parquet as pq

from solvent.errors import InputError
from solvent.formats.errors import decode_json

#: The Parquet key-value metadata key holding the provenance's JSON.
PROVENANCE_KEY: Final = b"solvent.provenance"
#: The id of the JSON script element that carries the provenance in an HTML report.
HTML_ID: Final = "solvent-provenance"
#: Bytes hashed per read: a large input is digested in blocks, never read whole into memory.
CHUNK_BYTES: Final = 1 << 20

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class InputFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One input file: its path as given on the command line, the SHA-256 of its bytes and its size."""

    path: str
    sha256: Sha256
    bytes: Annotated[int, msgspec.Meta(ge=0)]


class Provenance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What made an output: `engine` (the solvent version), `params` (name -> SHA-256 of that parameter set's
    canonical JSON, e.g. `margin` for the MarginParams used, defaults included) and `inputs` (role -> file)."""

    engine: str
    params: dict[str, Sha256]
    inputs: dict[str, InputFile]


def engine_version() -> str:
    """`solvent X.Y.Z`: the installed distribution's version, or `solvent unknown` when it is not installed."""
    try:
        return f"solvent {importlib.metadata.version('solvent')}"
    except importlib.metadata.PackageNotFoundError:
        return "solvent unknown"


def canonical_sha256(value: object) -> str:
    """The SHA-256 of `value`'s canonical JSON: msgspec's compact encoding, a record's fields in declaration order
    (every field, defaults included). The one digest of parameters and documents (governance uses it too)."""
    return hashlib.sha256(msgspec.json.encode(value)).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The SHA-256 of a file's bytes and its size, read in CHUNK_BYTES blocks; InputError when unreadable."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(CHUNK_BYTES):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise InputError(str(path), "", exc.strerror or str(exc)) from None
    return digest.hexdigest(), size


def input_file(path: str | os.PathLike[str]) -> InputFile:
    """`path` (as given) with the digest and size of its bytes."""
    sha256, size = file_sha256(path)
    return InputFile(path=os.fspath(path), sha256=sha256, bytes=size)


def provenance_of(
    inputs: Mapping[str, str | os.PathLike[str] | None], params: Mapping[str, object | None]
) -> Provenance:
    """The provenance of a run: each input given (None: not given, left out) digested, each parameter set used
    (None: not used) digested from its canonical JSON. What every command builds for its outputs."""
    return Provenance(
        engine=engine_version(),
        params={name: canonical_sha256(value) for name, value in params.items() if value is not None},
        inputs={role: input_file(path) for role, path in inputs.items() if path is not None},
    )


def stamped(document: dict[str, Any], provenance: Provenance | None) -> dict[str, Any]:
    """`document` with a `provenance` object right after its `schema` tag (first if it has none); unchanged
    without a provenance."""
    if provenance is None:
        return document
    head = {"schema": document["schema"]} if "schema" in document else {}
    return {**head, "provenance": msgspec.to_builtins(provenance), **document}


def parquet_metadata(provenance: Provenance | None) -> dict[bytes, bytes]:
    """`{PROVENANCE_KEY: JSON}` to merge into a Parquet schema's metadata, or `{}` without one."""
    return {} if provenance is None else {PROVENANCE_KEY: msgspec.json.encode(provenance)}


def html_script(provenance: Provenance) -> str:
    """The provenance as a JSON script element for an HTML page's head (`<` escaped, so no path ends it)."""
    text = msgspec.json.encode(provenance).decode().replace("<", "\\u003c")
    return f'<script type="application/json" id="{HTML_ID}">{text}</script>'


def header_lines(provenance: Provenance) -> list[str]:
    """A report's human-readable header: the engine, each parameter digest, each input with its digest."""
    lines = [f"Engine: {provenance.engine}."]
    lines += [f"Parameters {name}: SHA-256 {digest}." for name, digest in provenance.params.items()]
    lines += [
        f"Input {role}: {item.path} ({item.bytes:,} bytes, SHA-256 {item.sha256})."
        for role, item in provenance.inputs.items()
    ]
    return lines


def markdown_header(provenance: Provenance) -> str:
    """A Markdown report's header: the script element (hidden where Markdown is rendered) and a bullet per line."""
    return html_script(provenance) + "\n\n" + "".join(f"- {line}\n" for line in header_lines(provenance)) + "\n"


_HTML_SCRIPT = re.compile(rf'<script type="application/json" id="{HTML_ID}">(?P<json>.*?)</script>', re.DOTALL)


def read_provenance(path: str | os.PathLike[str]) -> Provenance:
    """The provenance of a solvent output: a Parquet file's metadata, a JSON document's `provenance` object, or
    an HTML or Markdown report's script element. InputError when the file carries none."""
    source = os.fspath(path)
    if source.lower().endswith(".parquet"):
        try:
            metadata = pq.read_schema(source).metadata or {}
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(source, "", f"not a readable Parquet file: {exc}") from None
        raw = metadata.get(PROVENANCE_KEY)
        if raw is None:
            raise InputError(source, PROVENANCE_KEY.decode(), "no provenance in the Parquet metadata")
        return decode_json(raw, Provenance, source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, "", f"unreadable: {exc}") from None
    found = _HTML_SCRIPT.search(text)
    if found is not None:
        return decode_json(found.group("json"), Provenance, source)
    fields = decode_json(text, dict[str, msgspec.Raw], source)
    if "provenance" not in fields:
        raise InputError(source, "provenance", "this document carries no provenance")
    return decode_json(fields["provenance"], Provenance, f"{source}: provenance")


def check_inputs(provenance: Provenance) -> dict[str, str]:
    """Each input whose file differs now (role -> what differs): missing, or other bytes. Paths are resolved as
    given, from the current directory; an empty result means every input is as it was."""
    changed: dict[str, str] = {}
    for role, item in provenance.inputs.items():
        try:
            sha256, size = file_sha256(item.path)
        except InputError as exc:
            changed[role] = f"{item.path}: {exc.message}"
            continue
        if sha256 != item.sha256:
            changed[role] = f"{item.path}: SHA-256 {sha256} ({size:,} bytes), was {item.sha256} ({item.bytes:,} bytes)"
    return changed
