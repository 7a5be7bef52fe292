"""Shared fixtures. Tests that need ../shared (real prices, golden data) skip cleanly without it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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


#: The PostgreSQL server the store tests use (trust auth); override with SOLVENT_TEST_POSTGRES.
POSTGRES = os.environ.get("SOLVENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A store URL on the test server, in a schema of its own (dropped afterwards), or skip the test."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES}: {' '.join(str(error).split())}")
    schema = f"solvent_test_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES}?schema={schema}"
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()
