"""Issue 4's scripted crash through `solvent stream`: BTC falls 40% within an hour while its book thins by half.

Checked on the events: liquidations are partial and capped per slice, spaced by the cooldown, and stop once an
account is back above IM; the predictive flag fires before the MM breach for most accounts that later breach
(how many and how early is in the summary). The full-size figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from solvent.cli import main
from solvent.convert.inputs import load_params, load_portfolio
from solvent.demo.crash import CrashScript, crash_path, write_crash
from solvent.params import LiquidationParams
from solvent.stream import events as ev
from solvent.stream.feed import DepthChange
from solvent.stream.feedio import read_feed

SHARE = 0.2
COOLDOWN = 30.0


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], list[ev.Event], dict[str, object]]:
    out = tmp_path_factory.mktemp("crash")
    paths = write_crash(out, 400, CrashScript(step_s=10.0))
    # Strict caps (no minimum slice, no dust rule) so every slice can be checked against the share cap exactly.
    import msgspec

    params = load_params(paths["params"])
    rules = LiquidationParams(
        max_share_per_slice=SHARE, cooldown_seconds=COOLDOWN, min_slice_notional=0.0, min_position_notional=0.0
    )
    paths["params"].write_bytes(msgspec.structs.replace(params, liquidation=rules).to_json())
    args = [
        "stream",
        "--accounts",
        str(paths["accounts"]),
        "--market",
        str(paths["market"]),
        "--params",
        str(paths["params"]),
    ]
    args += [
        "--history",
        str(paths["history"]),
        "--feed",
        str(paths["feed"]),
        "--block-ms",
        "10000",
        "--insurance-fund",
        "1000000",
    ]
    args += ["--events", str(out / "events.ndjson"), "--summary", str(out / "summary.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    events = ev.decode_events((out / "events.ndjson").read_bytes())
    summary = json.loads((out / "summary.json").read_text())
    return paths, events, summary


def test_the_script_is_the_issue_crash(crash_run: tuple[dict[str, Path], list[ev.Event], dict[str, object]]) -> None:
    paths, _, _ = crash_run
    records = read_feed(paths["feed"])
    hours = (records[-1].time - records[0].time).total_seconds() / 3600.0
    assert hours <= 1.0
    depth = [r.scale for r in records if isinstance(r, DepthChange)]
    assert depth[-1] == pytest.approx(0.5) and depth == sorted(depth, reverse=True)
    _, prices = crash_path(CrashScript(step_s=10.0), 100.0)
    assert prices[-1] == pytest.approx(60.0)  # -40%


def test_liquidations_are_partial_capped_and_spaced(
    crash_run: tuple[dict[str, Path], list[ev.Event], dict[str, object]],
) -> None:
    paths, events, _ = crash_run
    book = load_portfolio(paths["accounts"])
    held: dict[tuple[str, str], float] = {}
    for n, name in enumerate(book.account_ids.tolist()):
        for p in range(int(book.pos_offsets[n]), int(book.pos_offsets[n + 1])):
            key = (str(name), book.instruments[int(book.pos_instrument[p])].id)
            held[key] = held.get(key, 0.0) + float(book.pos_quantity[p])  # repeated holdings are one position
    last: dict[str, datetime] = {}
    partial = slices = 0
    for e in events:
        if isinstance(e, ev.AutoDeleveraged):
            held[(e.counterparty, e.instrument)] -= e.quantity
            held[(e.account, e.instrument)] += e.quantity
        elif isinstance(e, ev.LiquidationExecuted):
            key = (e.account, e.instrument)
            before = held[key]
            assert e.quantity * before < 0.0 and abs(e.quantity) <= abs(before) * (1 + 1e-12)  # closes, never adds
            if e.reason == "maintenance":
                slices += 1
                assert abs(e.quantity) <= SHARE * abs(before) * (1 + 1e-9)  # the share cap
                partial += abs(e.quantity) < abs(before) * (1 - 1e-9)
                if e.account in last and last[e.account] != e.time:
                    assert (e.time - last[e.account]).total_seconds() >= COOLDOWN  # one slice per cooldown
                last[e.account] = e.time
            held[key] = before + e.quantity
    assert slices > 20 and partial == slices


def test_liquidation_stops_once_back_above_im(
    crash_run: tuple[dict[str, Path], list[ev.Event], dict[str, object]],
) -> None:
    _, events, _ = crash_run
    liquidating: set[str] = set()
    recovered = 0
    for e in events:
        if isinstance(e, ev.AccountBecameLiquidatable):
            liquidating.add(e.account)
        elif isinstance(e, ev.AccountRecovered):
            assert e.equity >= e.im - 1e-6
            recovered += e.account in liquidating
            liquidating.discard(e.account)
        elif isinstance(e, ev.LiquidationExecuted) and e.reason == "maintenance":
            assert e.account in liquidating
    assert recovered > 0


def test_the_predictive_flag_fires_before_the_breach(
    crash_run: tuple[dict[str, Path], list[ev.Event], dict[str, object]],
) -> None:
    _, events, summary = crash_run
    flagged: dict[str, datetime] = {}
    breached: dict[str, datetime] = {}
    start = events[0].time
    for e in events:
        if isinstance(e, ev.AccountFlaggedEarly):
            flagged.setdefault(e.account, e.time)
        elif isinstance(e, ev.AccountBecameLiquidatable):
            breached.setdefault(e.account, e.time)
    later = {a: t for a, t in breached.items() if t > start}
    early = {a for a, t in later.items() if a in flagged and flagged[a] < t}
    assert summary["flagged_before_breach"] == len(early)
    assert len(later) > 5 and len(early) >= 0.6 * len(later)
    assert summary["lead_seconds_median"] > 0.0
