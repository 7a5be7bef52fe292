"""The dashboard (issue 15 item 6) in headless Chromium (Debian's `chromium`; skipped without it): the page's
numbers match the API's, and events reach the page through its event stream after a quote is ingested."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from solvent.service.auth import Role, add_key

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def _call(port: int, path: str, key: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers), timeout=30
    ) as r:
        return json.loads(r.read())


def _chromium(url: str, *extra: str) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def _text(dom: str, element: str) -> str:
    match = re.search(rf'id="{element}">([^<]*)<', dom)
    assert match is not None, f"no #{element} in the page"
    return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("dashboard")
    keys = folder / "keys.json"
    reader, feeder = add_key(keys, "screen", Role.READ), add_key(keys, "feed", Role.FEEDER)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-m", "solvent", "serve", "--portfolio", str(ROOT / "examples" / "portfolio.json")]
    command += ["--market", str(ROOT / "examples" / "market.json"), "--keys", str(keys), "--port", str(port)]
    command += ["--store", f"sqlite:///{folder / 'service.sqlite'}"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
    yield port, reader, feeder, folder
    process.terminate()
    process.wait(timeout=30)


def test_the_page_shows_the_api_numbers_and_the_events_of_a_new_quote(server: Any) -> None:
    port, reader, feeder, folder = server
    before = _call(port, "/dashboard/data", reader)
    time_now = _call(port, "/venue", reader)["time"]
    answer = _call(
        port, "/records", feeder, {"type": "quote", "seq": 1, "time": time_now, "asset": "BTC", "price": 60_000.0}
    )
    new_events = [e["seq"] for e in answer["events"]]
    assert new_events, "a 37% fall of BTC moves some account"
    after = _call(port, "/dashboard/data", reader)
    assert after["equity"] != before["equity"]
    url = f"http://127.0.0.1:{port}/dashboard#key={reader}&after={before['last_event_seq']}"
    dom = _chromium(url, "--dump-dom")
    assert _text(dom, "error") == ""
    assert _text(dom, "equity") == f"{after['equity']:,.0f}"
    assert _text(dom, "im") == f"{after['im']:,.0f}"
    shown = [int(s) for s in re.findall(r'class="event" data-seq="(\d+)"', dom)]
    assert sorted(shown) == new_events  # arrived through the page's event stream, after the quote
    assert _text(dom, "last-event").startswith(str(new_events[-1]))
    riskiest = after["riskiest"][0]["account"]
    assert f"<td>{riskiest}</td>" in dom
    screenshot = folder / "dashboard.png"
    _chromium(url, f"--screenshot={screenshot}", "--window-size=1200,1600")
    assert screenshot.stat().st_size > 10_000  # the test's artefact (pytest's tmp folder)


def test_the_page_without_a_key_says_so(server: Any) -> None:
    port, *_ = server
    dom = _chromium(f"http://127.0.0.1:{port}/dashboard", "--dump-dom")
    assert _text(dom, "error") == "GET /dashboard/data: 401"
