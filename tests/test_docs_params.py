"""docs/model.md's parameter table names every field of MarginParams, with its real default."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from solvent.params import MarginParams

MODEL_MD = Path(__file__).resolve().parents[1] / "docs" / "model.md"
ROW = re.compile(r"^\|\s*`(?P<name>[a-z_][a-z0-9_.]*)`\s*\|(?P<default>[^|]*)\|")
LITERAL = re.compile(r"`([^`]*)`")


def code_fields(kind: type[msgspec.Struct] = MarginParams, prefix: str = "") -> list[str]:
    """Dotted names of every leaf field of `kind`, nested sections recursed into."""
    names = []
    for field in msgspec.structs.fields(kind):
        name = prefix + field.name
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            names += code_fields(field.type, name + ".")
        else:
            names.append(name)
    return names


def code_default(name: str) -> Any:
    """The default of a dotted field as `solvent params` writes it (JSON: tuples become lists)."""
    value: Any = MarginParams()
    for part in name.split("."):
        value = getattr(value, part)
    return msgspec.json.decode(msgspec.json.encode(value))


def parameter_section() -> list[str]:
    """The lines of the '## Parameters' section of docs/model.md."""
    lines = MODEL_MD.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Parameters")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def documented_rows() -> list[tuple[str, str]]:
    """(dotted name, default cell) of every table row of the section."""
    rows = []
    for line in parameter_section():
        match = ROW.match(line)
        if match:
            rows.append((match.group("name"), match.group("default").strip()))
    return rows


def documented_defaults() -> dict[str, Any]:
    """Dotted name -> the default written in the table, parsed as a JSON literal."""
    out = {}
    for name, cell in documented_rows():
        literal = LITERAL.search(cell)
        assert literal is not None, f"{name}: the default cell {cell!r} has no `literal`"
        out[name] = json.loads(literal.group(1))
    return out


def test_table_names_every_field_once() -> None:
    names = [name for name, _ in documented_rows()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert set(names) == set(code_fields())


@pytest.mark.parametrize("name", code_fields())
def test_documented_default_is_the_real_default(name: str) -> None:
    documented = documented_defaults()
    assert name in documented, f"{name} is not in the parameter table of docs/model.md"
    assert documented[name] == code_default(name)
    assert type(documented[name]) is type(code_default(name)), f"{name}: write floats as 2.0, not 2"


def table_lines() -> list[str]:
    return [line for line in parameter_section() if ROW.match(line)]


def row_name(line: str) -> str:
    match = ROW.match(line)
    return match.group("name") if match else line


@pytest.mark.parametrize("line", table_lines(), ids=row_name)
def test_row_has_every_column_filled(line: str) -> None:
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    assert len(cells) == 5, f"expected Parameter | Default | Allowed | Meaning | Source, got {cells}"
    assert all(cells), f"empty cell in {cells}"
