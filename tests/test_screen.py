"""The health screen (`solvent.stream.screen`): a screened stream publishes the same events as an unscreened one.

Checked against the brute-force twin, the same stream with every exposed account re-margined every batch:
identical event bytes along random paths with jumps (through margin calls, flags, liquidations and the
waterfall) under each model the stress lab compares; after `monitor.freshen` the figures agree bit for bit. The
bounds it rests on are checked on their own: the growth of every model's requirement with price, and the
flag's reach against the breach probability itself.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from crash_paths import ASSETS, PRICES, START, crash_path, venue
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.cli import main
from solvent.demo.crash import CrashScript, write_crash
from solvent.engine.book import HOME_VENUE
from solvent.liquidation.predictive import SECONDS_PER_YEAR, breach_probability
from solvent.params import MarginParams, PredictiveParams, VenueParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import FeedRecord, ParamsChange, Quote
from solvent.stream.screen import FAVOURABLE, GROWTH, MAX_MOVE, SAFETY, HealthScreen, diffusion_reach, flag_reach

MODELS = ("multi", "static", "dydx", "synthetix", "drift", "deribit")


def replay(
    model: str,
    screen: bool,
    n: int,
    seed: int,
    crash: float,
    seconds: int = 240,
    params: MarginParams | None = None,
    remote_share: float = 0.0,
    margin_calls: bool = True,
    reflag: bool = True,
) -> tuple[list[bytes], StreamEngine]:
    book, market = venue(n, seed)
    if remote_share > 0.0:  # that share of positions held at another venue: their gains count haircut
        held = np.random.default_rng(seed).random(book.pos_quantity.size) < remote_share
        book = dataclasses.replace(book, pos_venue=np.where(held, 0, HOME_VENUE).astype(np.int32), venues=("cex",))
    published: list[ev.Event] = []
    engine = StreamEngine.start(
        book,
        market,
        MarginParams() if params is None else params,
        insurance_fund=50_000.0,
        sink=published.extend,
        model=model,
        screen=screen,
        margin_calls=margin_calls,
        reflag=reflag,
    )
    for batch in crash_path(seconds, seed + 1, crash):
        engine.run_batch(batch)
    return [msgspec.json.encode(e) for e in published], engine


@pytest.mark.parametrize("model", MODELS)
def test_screened_events_equal_unscreened_in_a_crash(model: str) -> None:
    plain, reference = replay(model, False, 600, 3, -0.25)
    screened, engine = replay(model, True, 600, 3, -0.25)
    seen = b"".join(plain)
    for kind in (b"MarginCallIssued", b"AccountFlaggedEarly", b"AccountBecameLiquidatable", b"LiquidationExecuted"):
        assert kind in seen, kind  # the path goes through every status change
    assert screened == plain
    assert engine.totals.remargined < 0.75 * reference.totals.remargined  # the screen did screen
    engine.monitor.freshen(engine.pricing, engine.last_time, -1, engine.journal, engine.totals)
    for name in ("im", "mm", "equity", "status", "flagged", "in_liquidation"):
        assert np.array_equal(getattr(engine.figures, name), getattr(reference.figures, name)), name
    assert engine.fund == reference.fund


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), crash=st.floats(-0.4, 0.3), model=st.sampled_from(MODELS))
def test_screened_events_equal_unscreened_on_random_paths(seed: int, crash: float, model: str) -> None:
    assert replay(model, True, 150, seed, crash, 120)[0] == replay(model, False, 150, seed, crash, 120)[0]


@pytest.mark.parametrize("crash", [-0.25, 0.2])
def test_screened_events_equal_unscreened_with_haircut_remote_gains(crash: float) -> None:
    """A gain held at another venue counts at (1 - haircut): equity may rise slower than the delta, so the band
    in the account's favour is the narrower one of a flat equity; the events are still the same."""
    params = MarginParams(venues=VenueParams(remote_pnl_haircut=0.95))  # a gain there barely counts
    plain, reference = replay("multi", False, 400, 5, crash, 180, params, remote_share=0.5)
    screened, engine = replay("multi", True, 400, 5, crash, 180, params, remote_share=0.5)
    assert b"MarginCallIssued" in b"".join(plain) and b"AccountRecovered" in b"".join(plain)
    assert screened == plain
    assert engine.totals.remargined < 0.75 * reference.totals.remargined


def _moments(events: list[bytes], kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(kind, account, time) of the events of `kinds`, in order (their seq numbers aside)."""
    decoded = [json.loads(e) for e in events]
    return [(e["type"], e["account"], e["time"]) for e in decoded if e["type"] in kinds]


@pytest.mark.parametrize("model", ["multi", "dydx"])
def test_watching_less_publishes_the_same_liquidations_and_first_flags(model: str) -> None:
    """Without margin calls and with first flags only (what the stress lab reads), a screened stream publishes
    the same events as an unscreened one with those options, and the same liquidations, liquidatable accounts
    and first flags as the full stream, for fewer re-margins."""
    full, everything = replay(model, True, 600, 3, -0.25)
    plain, reference = replay(model, False, 600, 3, -0.25, margin_calls=False, reflag=False)
    screened, engine = replay(model, True, 600, 3, -0.25, margin_calls=False, reflag=False)
    assert screened == plain
    kinds = ("AccountBecameLiquidatable", "LiquidationExecuted")
    assert _moments(screened, kinds) == _moments(full, kinds) != []
    flags = _moments(screened, ("AccountFlaggedEarly",))
    first: dict[str, tuple[str, str, str]] = {}
    for flag in _moments(full, ("AccountFlaggedEarly",)):
        first.setdefault(flag[1], flag)
    assert flags == list(first.values()) != []
    assert b"MarginCallIssued" in b"".join(full) and b"MarginCallIssued" not in b"".join(screened)
    assert engine.totals.remargined < everything.totals.remargined
    engine.monitor.freshen(engine.pricing, engine.last_time, -1, engine.journal, engine.totals)
    for name in ("im", "mm", "equity", "status", "in_liquidation"):
        assert np.array_equal(getattr(engine.figures, name), getattr(reference.figures, name)), name
    np.testing.assert_array_equal(engine.figures.first_flag, everything.figures.first_flag)


def test_first_flags_only_refuses_a_flag_that_deleverages() -> None:
    book, market = venue(50, 1)
    defaults = MarginParams()
    deleverage = msgspec.structs.replace(
        defaults, predictive=msgspec.structs.replace(defaults.predictive, action="deleverage")
    )
    with pytest.raises(ValueError, match="deleverage"):
        StreamEngine.start(book, market, deleverage, reflag=False)
    engine = StreamEngine.start(book, market, defaults, reflag=False)
    published = engine.run_batch([ParamsChange(seq=0, time=START + timedelta(seconds=1), params=deleverage)])
    assert [type(e).__name__ for e in published] == ["InputRejected"]
    assert engine.params.predictive.action == "flag"


@pytest.mark.parametrize("model", MODELS)
def test_requirements_grow_no_faster_than_the_screen_assumes(model: str) -> None:
    """|I(p (1 + r)) - I(p)| <= GROWTH x I(p) x |r| for |r| <= MAX_MOVE, single-perp accounts of every size."""
    book, market = venue(400, 11)
    engine = StreamEngine.start(book, market, MarginParams(), model=model)
    before = engine.margin_now()
    for r in (-MAX_MOVE, -0.03, 0.001, 0.05, MAX_MOVE):
        engine2 = StreamEngine.start(book, market, MarginParams(), model=model)
        quotes: list[FeedRecord] = [
            Quote(seq=j, time=START + timedelta(seconds=1), asset=a, price=p * (1.0 + r))
            for j, (a, p) in enumerate(zip(ASSETS, PRICES, strict=True))
        ]
        engine2.apply_batch(quotes)  # prices only: no liquidation changes the positions
        after = engine2.margin_now()
        for old, new in ((before.im, after.im), (before.mm, after.mm)):
            assert np.all(np.abs(new - old) <= GROWTH * old * abs(r) * (1.0 + 1e-9) + 1e-9), (model, r)


@pytest.mark.parametrize("use_drift", [True, False])
def test_flag_reach_is_its_formula(use_drift: bool) -> None:
    """The compiled reach against its formula in numpy: z vol √h plus the adverse drift, the favourable drift
    alone, NaN velocity read as 0 (bit for bit)."""
    params = PredictiveParams(threshold=0.07, use_drift=use_drift)
    vol = np.array([0.4, 1.2, 0.05, 2.0])
    velocity = np.array([-300.0, 5_000.0, np.nan, 0.0])
    h = params.horizon_seconds / SECONDS_PER_YEAR
    diffusion = diffusion_reach(vol, params)
    v = np.where(np.isnan(velocity), 0.0, velocity)
    rising, falling = (np.maximum(v, 0.0) * h, np.maximum(-v, 0.0) * h) if use_drift else (np.zeros(4), np.zeros(4))
    want = np.column_stack([falling + diffusion, rising + diffusion, rising, falling])
    got = flag_reach(vol, velocity, params)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    assert (got[:, :2] >= diffusion[:, np.newaxis]).all() and (got[:, 2:] > 0.0).any() == use_drift


@settings(max_examples=200, deadline=None)
@given(
    vol=st.floats(0.05, 3.0),
    velocity=st.floats(-2e4, 2e4),
    notional=st.floats(1.0, 1e7),
    above=st.floats(1.0, 5.0),
    threshold=st.floats(0.01, 0.5),
)
def test_beyond_the_reach_the_breach_probability_is_below_the_threshold(
    vol: float, velocity: float, notional: float, above: float, threshold: float
) -> None:
    params = PredictiveParams(threshold=threshold)
    reach = flag_reach(np.array([vol]), np.array([velocity]), params)[0]
    h = params.horizon_seconds / SECONDS_PER_YEAR
    for side, x in ((0, notional), (1, -notional)):  # a long and a short of that delta notional
        distance = above * float(reach[side]) * notional
        p = breach_probability(distance, 0.0, notional * vol, h, x * velocity)
        assert p[()] <= threshold * (1.0 + 1e-9)
    assert reach[0] >= reach[1] if velocity <= 0.0 else reach[1] >= reach[0]  # against the move: further


@settings(max_examples=200, deadline=None)
@given(
    vol=st.floats(0.05, 3.0),
    fast=st.floats(1.0, 4.0),
    velocity=st.floats(-2e4, 2e4),
    notional=st.floats(1.0, 1e7),
    inside=st.floats(0.0, 0.99),
    threshold=st.floats(0.01, 0.5),
)
def test_within_the_favourable_reach_a_flag_stays_raised(
    vol: float, fast: float, velocity: float, notional: float, inside: float, threshold: float
) -> None:
    """d < g (z vol0 √h / s - f): the breach probability stays above the threshold, whatever the fast vol adds."""
    params = PredictiveParams(threshold=threshold)
    reach = flag_reach(np.array([vol * fast]), np.array([velocity]), params)[0]
    floor = float(diffusion_reach(np.array([vol]), params)[0]) / SAFETY
    h = params.horizon_seconds / SECONDS_PER_YEAR
    for side, x in ((0, notional), (1, -notional)):
        room = floor - float(reach[FAVOURABLE + side])
        if room <= 0.0:
            continue
        distance = inside * room * notional
        p = breach_probability(distance, 0.0, notional * vol * fast, h, x * velocity)
        assert p[()] > threshold


def _stream(paths: dict[str, Path], out: Path, *extra: str) -> tuple[bytes, dict[str, object]]:
    args = ["stream", "--accounts", str(paths["accounts"]), "--market", str(paths["market"])]
    args += ["--params", str(paths["params"]), "--history", str(paths["history"]), "--feed", str(paths["feed"])]
    args += ["--insurance-fund", "100000", "--events", str(out / "events.ndjson"), "--summary", str(out / "s.json")]
    result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "s.json").read_text())
    return (out / "events.ndjson").read_bytes(), {k: v for k, v in summary.items() if not k.startswith("batch_ms")}


def test_solvent_stream_with_the_screen_writes_the_same_events_and_summary(tmp_path: Path) -> None:
    """The scripted crash (issue 4) through the CLI: --screen changes nothing but the work done (the summary's
    batch timings aside)."""
    paths = write_crash(tmp_path / "crash", 300, CrashScript(step_s=10.0))
    (tmp_path / "plain").mkdir()
    (tmp_path / "screened").mkdir()
    plain = _stream(paths, tmp_path / "plain")
    screened = _stream(paths, tmp_path / "screened", "--screen")
    assert b"LiquidationExecuted" in plain[0] and b"AccountFlaggedEarly" in plain[0]
    assert screened == plain


def test_solvent_stream_watching_less_publishes_no_margin_call_and_each_flag_once(tmp_path: Path) -> None:
    paths = write_crash(tmp_path / "crash", 300, CrashScript(step_s=10.0))
    for name in ("full", "lean"):
        (tmp_path / name).mkdir()
    full = _stream(paths, tmp_path / "full", "--screen")
    lean = _stream(paths, tmp_path / "lean", "--screen", "--no-margin-calls", "--first-flags-only")
    assert b"MarginCallIssued" in full[0] and b"MarginCallIssued" not in lean[0]
    flagged = [json.loads(line)["account"] for line in lean[0].splitlines() if b"AccountFlaggedEarly" in line]
    assert flagged and len(flagged) == len(set(flagged))
    same = ("accounts_ever_liquidatable", "liquidation_trades", "flagged_before_breach", "insurance_fund_end")
    assert {k: lean[1][k] for k in same} == {k: full[1][k] for k in same}
    deleverage = tmp_path / "deleverage.json"
    deleverage.write_text(json.dumps({"schema": "solvent.params/1", "predictive": {"action": "deleverage"}}))
    args = ["stream", "--accounts", str(paths["accounts"]), "--market", str(paths["market"]), "--feed"]
    args += [str(paths["feed"]), "--params", str(deleverage), "--first-flags-only"]
    args += ["--events", str(tmp_path / "e.ndjson"), "--summary", str(tmp_path / "s.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "predictive.action" in result.output
    assert not (tmp_path / "e.ndjson").exists()


def test_a_screened_stream_saved_and_resumed_with_the_screen_equals_one_unscreened_run(tmp_path: Path) -> None:
    plain, reference = replay("multi", False, 400, 5, -0.2)
    book, market = venue(400, 5)
    published: list[ev.Event] = []
    first = StreamEngine.start(
        book, market, MarginParams(), insurance_fund=50_000.0, sink=published.extend, screen=True
    )
    batches = crash_path(240, 6, -0.2)
    for batch in batches[:120]:
        first.run_batch(batch)
    first.save(tmp_path / "state.npz")  # freshens the screened accounts first
    second = StreamEngine.load(tmp_path / "state.npz", sink=published.extend, screen=True)
    for batch in batches[120:]:
        second.run_batch(batch)
    assert [msgspec.json.encode(e) for e in published] == plain
    second.monitor.freshen(second.pricing, second.last_time, -1, second.journal, second.totals)
    np.testing.assert_array_equal(second.figures.im, reference.figures.im)


def test_what_a_stream_watches_is_saved_with_it(tmp_path: Path) -> None:
    book, market = venue(50, 2)
    StreamEngine.start(book, market, MarginParams(), margin_calls=False, reflag=False).save(tmp_path / "state.npz")
    resumed = StreamEngine.load(tmp_path / "state.npz")
    assert (resumed.margin_calls, resumed.reflag) == (False, False)


def test_a_concentration_ramp_leaves_every_account_hot() -> None:
    """An IMF ramping with the account's notional can grow faster than GROWTH allows: the screen stands aside."""
    book, market = venue(200, 9)
    ramp = msgspec.structs.replace(MarginParams().concentration, form="ramp", ramp_lower_cap=1e4, ramp_upper_cap=1e6)
    params = msgspec.structs.replace(MarginParams(), concentration=ramp)
    engine = StreamEngine.start(book, market, params, screen=True)
    assert engine.screen is not None and not (engine.screen.asset >= 0).any()
    default = StreamEngine.start(book, market, MarginParams(), screen=True)
    assert default.screen is not None and (default.screen.asset >= 0).any()


@pytest.mark.parametrize("target", [1.0, 1.5])
def test_screened_events_equal_unscreened_when_flags_deleverage(target: float) -> None:
    """Under `predictive.action = "deleverage"` (flagged accounts are liquidation candidates, hence hot) and a
    liquidation target above IM (liquidation continues past recovery): the same events with the screen."""
    defaults = MarginParams()
    params = msgspec.structs.replace(
        defaults,
        predictive=msgspec.structs.replace(defaults.predictive, action="deleverage"),
        liquidation=msgspec.structs.replace(defaults.liquidation, target=target),
    )
    plain, _ = replay("multi", False, 400, 13, -0.25, 180, params)
    screened, _ = replay("multi", True, 400, 13, -0.25, 180, params)
    assert b"predictive" in b"".join(plain)  # a flag did deleverage
    assert screened == plain


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), n_assets=st.integers(1, 3))
def test_the_due_queues_find_what_a_scan_of_every_band_finds(seed: int, n: int, n_assets: int) -> None:
    """The heaps against the brute-force scan: after any sequence of new bands (with repeats, hot rows, infinite
    caps and bands) and moves, `due` returns exactly the queued accounts of a moved asset whose band the price,
    the uncertainty or the stable price left or whose cap the reach passed, each once; what it returns leaves the
    queues until queued again."""
    rng = np.random.default_rng(seed)
    screen = HealthScreen(n, n_assets)
    waiting = np.zeros(n, dtype=np.bool_)
    price = np.full(n_assets, 100.0)
    uncertainty = np.full(n_assets, 0.5)
    stable = np.full(n_assets, 100.0)
    for _ in range(30):
        rows = np.unique(rng.integers(0, n, rng.integers(0, n + 1)))
        screen.asset[rows] = np.where(rng.random(rows.size) < 0.2, -1, rng.integers(0, n_assets, rows.size))
        width = rng.uniform(0.0, 0.05, (2, rows.size))
        screen.low[rows] = price[np.maximum(screen.asset[rows], 0)] * (1.0 - width[0])
        screen.high[rows] = price[np.maximum(screen.asset[rows], 0)] * (1.0 + width[1])
        screen.column[rows] = rng.integers(0, 4, rows.size)
        screen.cap[rows] = np.where(rng.random(rows.size) < 0.2, np.inf, rng.uniform(0.0, 1.0, rows.size))
        for low, high, centre in (
            (screen.oracle_low, screen.oracle_high, uncertainty),
            (screen.stable_low, screen.stable_high, stable),
        ):  # a band of U and of S on some rows, +-inf (nothing to cross) on the others
            banded = rng.random(rows.size) < 0.5
            width = rng.uniform(0.0, 0.05, (2, rows.size))
            low[rows] = np.where(banded, centre[np.maximum(screen.asset[rows], 0)] * (1.0 - width[0]), -np.inf)
            high[rows] = np.where(banded, centre[np.maximum(screen.asset[rows], 0)] * (1.0 + width[1]), np.inf)
        screen.queue(rows)
        waiting[rows] = screen.asset[rows] >= 0
        price = price * np.exp(rng.normal(0.0, 0.02, n_assets))
        uncertainty = uncertainty * np.exp(rng.normal(0.0, 0.02, n_assets))
        stable = stable * np.exp(rng.normal(0.0, 0.02, n_assets))
        reach = rng.uniform(0.0, 1.2, (n_assets, 4))
        moved = rng.random(n_assets) < 0.8
        a = np.maximum(screen.asset, 0)
        crossed = (price[a] <= screen.low) | (price[a] >= screen.high) | (reach[a, screen.column] > screen.cap)
        crossed |= (uncertainty[a] <= screen.oracle_low) | (uncertainty[a] >= screen.oracle_high)
        crossed |= (stable[a] <= screen.stable_low) | (stable[a] >= screen.stable_high)
        expected = np.flatnonzero(waiting & moved[a] & crossed)
        got = screen.due(moved, price, reach, uncertainty, stable)
        assert np.array_equal(got, expected)
        waiting[got] = False
