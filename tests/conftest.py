"""Shared fixtures. Tests that need ../shared (real prices, golden data) skip cleanly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXAMPLES = ROOT / "examples"


def pytest_report_header() -> str:
    if SHARED.is_dir():
        return f"shared data: {SHARED}"
    return f"shared data: ABSENT ({SHARED}) - tests on real prices and golden data will be skipped"


@pytest.fixture
def shared_dir() -> Path:
    """The shared/ folder beside the repository, or skip the test."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); this test needs its real data")
    return SHARED


@pytest.fixture
def examples_dir() -> Path:
    """The repository's examples/ folder."""
    return EXAMPLES
