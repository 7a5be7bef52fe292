"""Turn msgspec's decode errors into solvent's one-line InputError (file, record, field)."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from solvent.errors import InputError

T = TypeVar("T")

_AT_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
#: msgspec names a field in backticks for unknown and missing fields: move it into the path.
_NAMED_FIELD = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]+)`$")
#: A record's own cross-field check says "field: message" (see formats/schemas.py).
_FIELD_FIRST = re.compile(r"^(?P<field>[A-Za-z_][\w.]*(?:\[\d+\])?): (?P<msg>.+)$", re.DOTALL)


def split_validation_message(text: str) -> tuple[str, str]:
    """Split msgspec's "message - at `$.a[0].b`" into (path "a[0].b", message)."""
    match = _AT_PATH.match(text)
    if match is None:  # pragma: no cover - the pattern matches every string
        return "", text
    path = (match.group("path") or "").lstrip(".")
    message = match.group("msg")
    named = _NAMED_FIELD.match(message)
    if named is not None:
        known = named.group("what") == "missing required"
        path = ".".join(p for p in (path, named.group("field")) if p)
        return path, "required field is missing" if known else "unknown field"
    field = _FIELD_FIRST.match(message)
    if field is not None:
        path = ".".join(p for p in (path, field.group("field")) if p)
        message = field.group("msg")
    return path, message


def decode_json(data: bytes | str | msgspec.Raw, kind: type[T], source: str) -> T:
    """Decode one JSON document into `kind`, or raise InputError naming file, record and field."""
    if isinstance(data, str):
        data = data.encode()
    elif isinstance(data, msgspec.Raw):
        data = bytes(data)
    if not data.strip():
        raise InputError(source, "", "file is empty")
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        path, message = split_validation_message(str(exc))
        raise InputError(source, path, message) from None
    except msgspec.DecodeError as exc:
        raise InputError(source, "", f"not valid JSON ({exc})") from None
    except (RecursionError, UnicodeDecodeError) as exc:
        raise InputError(source, "", unreadable_json(exc)) from None


def unreadable_json(exc: RecursionError | UnicodeDecodeError) -> str:
    """The one-line reason a JSON document that msgspec could not even read is bad input: nested deeper than
    Python's recursion limit, or a string that is not UTF-8 (msgspec reports neither as a DecodeError)."""
    if isinstance(exc, RecursionError):
        return "not valid JSON (nested too deeply)"
    return f"not valid JSON (a string is not UTF-8: byte {exc.object[exc.start : exc.start + 1]!r})"


def read_bytes(path: str) -> bytes:
    """Read a whole input file, turning a missing or unreadable file into InputError."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(path, "", exc.strerror or str(exc)) from None
