"""No module in src/ over 600 lines without a reason in its docstring (issue 14): a long module says why it is one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "solvent"
LIMIT = 600
#: The words a long module's docstring gives its reason with.
REASON = "Over 600 lines because"


def long_modules() -> dict[str, str]:
    """Path under solvent/ -> docstring, for every module over LIMIT lines."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > LIMIT:
            found[path.relative_to(SRC).as_posix()] = ast.get_docstring(ast.parse(text)) or ""
    return found


LONG = long_modules()


@pytest.mark.parametrize("module", sorted(LONG))
def test_a_long_module_says_why(module: str) -> None:
    assert REASON in LONG[module], f"{module}: {LIMIT}+ lines; split it or say why in its docstring ({REASON} ...)"
