"""Fuzz the HTTP API from its own OpenAPI document (schemathesis, issue 15 acceptance): whatever the body, query
or headers, and whichever role calls, the answer is never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the test extra) is not installed")

from test_service_http import KEYS, ring, start_venue  # noqa: E402

from solvent.service.app import create_app  # noqa: E402

APP = create_app(start_venue(), ring())
SCHEMA = schemathesis.openapi.from_asgi("/schema/openapi.json", APP)


#: The role each path is for (the others' 401/403 are the role matrix's, in test_service_http.py).
CALLER = {"/records": "feeder", "/records/bulk": "feeder", "/what-if": "trader", "/params": "operator"}


@SCHEMA.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_gets_a_server_error(case: Any) -> None:
    key = KEYS[CALLER.get(case.path, "read")]
    query = {"follow": "false"} if case.path == "/events" else None  # the stream ends once it has caught up
    response = case.call(headers={"Authorization": f"Bearer {key}"}, params=query)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:500]}"
