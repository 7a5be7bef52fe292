"""The example input files (examples/) as JSON documents, for tests that damage one field and expect exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def portfolio() -> dict[str, Any]:
    """examples/portfolio.json, decoded (a fresh copy each call)."""
    data: dict[str, Any] = json.loads((EXAMPLES / "portfolio.json").read_text())
    return data


def market() -> dict[str, Any]:
    """examples/market.json, decoded (a fresh copy each call)."""
    data: dict[str, Any] = json.loads((EXAMPLES / "market.json").read_text())
    return data
