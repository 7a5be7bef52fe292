"""The streaming engine (`solvent.stream`): determinism, save and resume, incremental = full recompute,
rejections that leave the state alone, partial capped liquidation, the waterfall's conservation of value
under hypothesis-generated streams, the pre-trade check, and `solvent stream` on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_venue import INSTRUMENTS, NOW

from solvent.cli import main
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.engine.margin import margin_accounts
from solvent.engine.riskarrays import build_risk_arrays
from solvent.errors import InputError
from solvent.formats.schemas import Account, AssetQuote, Depth, MarketSnapshot, OracleSource, Portfolio, Position
from solvent.market.state import OPTION
from solvent.params import LiquidationParams, MarginParams, PredictiveParams, ScenarioParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import Deposit, DepthChange, FeedRecord, Fill, ParamsChange, Quote, VolChange, Withdrawal
from solvent.stream.feedio import write_feed

BTC, ETH = 95_000.0, 3_400.0
DEPTH = Depth(spread=0.0002, depth_1pct=40.0, depth_2pct=100.0)


def market(sources: bool = False) -> MarketSnapshot:
    btc_sources = (
        [
            OracleSource(name=n, price=BTC * (1 + d), confidence=5.0, timestamp=NOW)
            for n, d in (("a", 0.0), ("b", 1e-4), ("c", -1e-4))
        ]
        if sources
        else []
    )
    return MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={
            "BTC": AssetQuote(price=BTC, vol=0.5, depth=DEPTH, vol_spread=0.02, sources=btc_sources),
            "ETH": AssetQuote(
                price=ETH, vol=0.7, depth=Depth(spread=0.0003, depth_1pct=500.0, depth_2pct=1200.0), vol_spread=0.03
            ),
        },
        rate=0.0,
    )


def venue(n: int = 12, seed: int = 3) -> Book:
    """Longs and shorts on BTC and ETH perpetuals, some options, leverage from 2x to 15x."""
    rng = np.random.default_rng(seed)
    accounts = []
    for k in range(n):
        btc = float(rng.choice([-1, 1]) * rng.uniform(0.5, 5.0))
        eth = float(rng.choice([-1, 1]) * rng.uniform(5.0, 50.0))
        notional = abs(btc) * BTC + abs(eth) * ETH
        leverage = rng.uniform(2.0, 15.0)
        positions = [
            Position(instrument="BTC-PERP", quantity=btc, entry_price=BTC * float(rng.uniform(0.97, 1.03))),
            Position(instrument="ETH-PERP", quantity=eth, entry_price=ETH * float(rng.uniform(0.97, 1.03))),
        ]
        if k % 3 == 0:
            positions.append(Position(instrument="BTC-P", quantity=float(rng.uniform(-2.0, 2.0))))
        accounts.append(Account(id=f"a{k:02d}", collateral={"USD": notional / leverage}, positions=positions))
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts))


def price_walk(n: int, seed: int, step: float = 0.01, start: int = 0) -> list[FeedRecord]:
    """n quotes alternating BTC and ETH, a random walk with a downward drift, one every 5 seconds."""
    rng = np.random.default_rng(seed)
    prices = {"BTC": BTC, "ETH": ETH}
    records: list[FeedRecord] = []
    for i in range(n):
        asset = "BTC" if i % 2 == 0 else "ETH"
        prices[asset] *= math.exp(float(rng.normal(-step / 2, step)))
        records.append(
            Quote(seq=start + i, time=NOW + timedelta(seconds=5 * (i + 1)), asset=asset, price=prices[asset])
        )
    return records


def run(
    book: Book, records: Sequence[FeedRecord], params: MarginParams | None = None, **kw: object
) -> tuple[StreamEngine, list[ev.Event]]:
    out: list[ev.Event] = []
    engine = StreamEngine.start(
        book, market(), params or MarginParams(), sink=out.extend, insurance_fund=50_000.0, **kw
    )  # type: ignore[arg-type]
    engine.process(records)
    return engine, out


# ------------------------------------------------------------------------------------ determinism


def test_same_feed_same_events_byte_for_byte() -> None:
    records = price_walk(60, seed=1)
    _, first = run(venue(), records)
    _, second = run(venue(), records)
    assert any(isinstance(e, ev.LiquidationExecuted) for e in first)  # the walk does liquidate someone
    assert ev.encode_events(first) == ev.encode_events(second)


@pytest.mark.parametrize("block_ms", [None, 20_000])
def test_a_split_replay_resumed_from_saved_state_equals_one_run(tmp_path: Path, block_ms: int | None) -> None:
    records = price_walk(80, seed=2)
    whole: list[ev.Event] = []
    engine = StreamEngine.start(venue(), market(), MarginParams(), sink=whole.extend, insurance_fund=50_000.0)
    engine.process(records, block_ms=block_ms)

    halves: list[ev.Event] = []
    first = StreamEngine.start(venue(), market(), MarginParams(), sink=halves.extend, insurance_fund=50_000.0)
    split = 39  # quotes 5 s apart at t = 5 (i + 1): record 39 (t = 200 s) opens a new 20 s block
    first.process(records[:split], block_ms=block_ms)
    first.save(tmp_path / "state.npz")
    second = StreamEngine.load(tmp_path / "state.npz", sink=halves.extend)
    second.process(records[split:], block_ms=block_ms)
    assert ev.encode_events(halves) == ev.encode_events(whole)
    np.testing.assert_array_equal(second.figures.im, engine.figures.im)
    assert second.fund == engine.fund


def test_incremental_figures_equal_a_full_recompute() -> None:
    """After a stream of ticks, fills and deposits, every account's stored figures equal margining the whole
    book afresh at the final market (risk arrays rebuilt from scratch): nothing touched was missed."""
    records: list[FeedRecord] = price_walk(30, seed=5, step=0.004)
    last = records[-1].time
    records += [
        Fill(seq=100, time=last, account="a03", instrument="ETH-C", quantity=3.0, price=120.0, fee=1.0),
        Deposit(seq=101, time=last, account="a05", asset="ETH", amount=2.0),
        Quote(seq=102, time=last + timedelta(seconds=1), asset="ETH", price=ETH * 0.99),
    ]
    engine, _ = run(venue(), records)
    state = engine.market.state
    time_floor = engine.params.volatility.time_floor_days / engine.params.days_per_year
    floor = engine.params.volatility.vol_floor
    fresh = dataclasses.replace(
        engine.context, arrays=build_risk_arrays(state, engine.context.scenarios, time_floor, floor)
    )
    everyone = np.arange(engine.store.n_accounts, dtype=np.int64)
    result = margin_accounts(engine.store.book_of(everyone), state, engine.params, fresh)
    np.testing.assert_array_equal(engine.figures.im, result.im)
    np.testing.assert_array_equal(engine.figures.mm, result.mm)
    np.testing.assert_array_equal(engine.figures.equity, result.equity)


# ------------------------------------------------------------------------------------- bad input


def snapshot_of(engine: StreamEngine) -> dict[str, np.ndarray]:
    arrays = {f"store.{k}": np.array(v, copy=True) for k, v in engine.store.arrays().items()}
    arrays["price"] = engine.market.price.copy()
    return arrays


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (Fill(seq=1, time=NOW, account="nobody", instrument="BTC-PERP", quantity=1.0, price=BTC), "account"),
        (Fill(seq=1, time=NOW, account="a01", instrument="DOGE-PERP", quantity=1.0, price=BTC), "instrument"),
        (Quote(seq=1, time=NOW, asset="BTC", price=BTC * 0.9, timestamp=NOW + timedelta(seconds=60)), "timestamp"),
        (Quote(seq=1, time=NOW, asset="DOGE", price=1.0), "asset"),
        (Quote(seq=1, time=NOW, asset="BTC", price=math.nan), "price"),  # built in code: msgspec checks a decode only
        (Quote(seq=1, time=NOW, asset="BTC", price=-BTC), "price"),
        (Deposit(seq=1, time=NOW, account="a01", asset="DOGE", amount=1.0), "asset"),
        (Withdrawal(seq=1, time=NOW, account="a01", asset="USD", amount=1e12), "amount"),
        (Withdrawal(seq=1, time=NOW, account="a01", asset="BTC", amount=1.0), "asset"),
        (DepthChange(seq=1, time=NOW, asset="DOGE", scale=0.5), "asset"),
    ],
)
def test_a_refused_record_is_an_event_and_changes_nothing(record: FeedRecord, field: str) -> None:
    out: list[ev.Event] = []
    engine = StreamEngine.start(venue(), market(), MarginParams(), sink=out.extend)
    before = snapshot_of(engine)
    figures = dataclasses.replace(engine.figures)
    out.clear()
    engine.process([record])
    assert [type(e) for e in out] == [ev.InputRejected]
    assert isinstance(out[0], ev.InputRejected) and out[0].field == field and out[0].cause == 1
    after = snapshot_of(engine)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    np.testing.assert_array_equal(engine.figures.im, figures.im)


def test_a_withdrawal_that_would_breach_im_is_refused_and_a_small_one_paid() -> None:
    out: list[ev.Event] = []
    engine = StreamEngine.start(venue(), market(), MarginParams(), sink=out.extend)
    row = engine.store.row_of["a01"]
    free = float(engine.figures.equity[row] - engine.figures.im[row])
    assert free > 0.0
    engine.process(
        [
            Withdrawal(seq=1, time=NOW, account="a01", asset="USD", amount=free * 1.01),
            Withdrawal(seq=2, time=NOW, account="a01", asset="USD", amount=free * 0.5),
        ]
    )
    assert [(type(e), e.cause) for e in out[-1:]] == [(ev.InputRejected, 1)]
    assert engine.figures.equity[row] == pytest.approx(free * 0.5 + engine.figures.im[row], rel=1e-9)


def test_a_quote_without_source_for_a_sourced_asset_is_refused() -> None:
    out: list[ev.Event] = []
    engine = StreamEngine.start(venue(), market(sources=True), MarginParams(), sink=out.extend)
    engine.process([Quote(seq=1, time=NOW, asset="BTC", price=BTC)])
    assert isinstance(out[-1], ev.InputRejected) and out[-1].field == "source"


@pytest.mark.parametrize(
    ("records", "where"),
    [
        (
            [Quote(seq=5, time=NOW, asset="BTC", price=BTC), Quote(seq=5, time=NOW, asset="BTC", price=BTC)],
            "records[1].seq",
        ),
        (
            [
                Quote(seq=1, time=NOW + timedelta(seconds=9), asset="BTC", price=BTC),
                Quote(seq=2, time=NOW, asset="BTC", price=BTC),
            ],
            "records[1].time",
        ),
    ],
)
def test_out_of_order_records_are_input_errors(records: list[FeedRecord], where: str) -> None:
    engine = StreamEngine.start(venue(), market(), MarginParams())
    with pytest.raises(InputError, match=r"records\[1\]") as error:
        engine.process(records)
    assert error.value.where == where


# ------------------------------------------------------------------------------------ liquidation


def crash(n: int, seed: int, drop_per_tick: float) -> list[FeedRecord]:
    rng = np.random.default_rng(seed)
    price = BTC
    records: list[FeedRecord] = []
    for i in range(n):
        price *= 1.0 - drop_per_tick * float(rng.uniform(0.5, 1.5))
        records.append(Quote(seq=i, time=NOW + timedelta(seconds=10 * (i + 1)), asset="BTC", price=price))
    return records


@pytest.mark.parametrize("method", ["proportional", "greedy"])
def test_liquidations_are_partial_capped_spaced_by_the_cooldown_and_stop_at_im(method: str) -> None:
    rules = LiquidationParams(
        method=method,  # type: ignore[arg-type]
        max_share_per_slice=0.2,
        cooldown_seconds=30.0,
        min_slice_notional=0.0,
        min_position_notional=0.0,
    )
    params = MarginParams(liquidation=rules)
    book = venue(20, seed=11)
    _, events = run(book, crash(60, seed=4, drop_per_tick=0.005), params)
    executed = [e for e in events if isinstance(e, ev.LiquidationExecuted) and e.reason == "maintenance"]
    assert executed
    held: dict[tuple[str, str], float] = {}
    for n, name in enumerate(book.account_ids):
        for p in range(book.pos_offsets[n], book.pos_offsets[n + 1]):
            held[(str(name), book.instruments[book.pos_instrument[p]].id)] = float(book.pos_quantity[p])
    last_slice: dict[str, object] = {}
    for e in executed:
        before = held[(e.account, e.instrument)]
        assert abs(e.quantity) <= 0.2 * abs(before) * (1 + 1e-12)  # the share cap
        assert e.quantity * before < 0  # closing, never adding
        held[(e.account, e.instrument)] = before + e.quantity
        if e.account in last_slice and last_slice[e.account] != e.time:
            gap = (e.time - last_slice[e.account]).total_seconds()  # type: ignore[operator]
            assert gap >= 30.0
        last_slice[e.account] = e.time
    # After an account recovers, nothing more is liquidated until it becomes liquidatable again.
    in_liquidation: set[str] = set()
    for e in events:
        if isinstance(e, ev.AccountBecameLiquidatable):
            in_liquidation.add(e.account)
        elif isinstance(e, ev.AccountRecovered):
            in_liquidation.discard(e.account)
        elif isinstance(e, ev.LiquidationExecuted) and e.reason == "maintenance":
            assert e.account in in_liquidation


def test_predictive_flags_fire_before_the_breach() -> None:
    params = MarginParams(predictive=PredictiveParams(threshold=0.05))
    engine, events = run(venue(30, seed=8), crash(80, seed=9, drop_per_tick=0.004), params)
    summary = engine.summary()
    assert summary["accounts_ever_liquidatable"] > 0
    assert summary["flagged_before_breach"] > 0
    assert summary["lead_seconds_median"] > 0.0
    first_flag: dict[str, object] = {}
    for e in events:
        if isinstance(e, ev.AccountFlaggedEarly):
            first_flag.setdefault(e.account, e.time)
    early = sum(1 for e in events if isinstance(e, ev.AccountBecameLiquidatable) and e.account in first_flag)
    assert early >= summary["flagged_before_breach"]


# ------------------------------------------------------------------ the waterfall's conservation


def marks(engine: StreamEngine, instrument: int) -> float:
    """USD per unit of the underlying a trade of `instrument` is valued at (what equity marks it at)."""
    state = engine.market.state
    if state.instruments.kind[instrument] == OPTION:
        return float(engine.context.arrays.value[instrument] / state.instruments.contract_size[instrument])
    return float(state.forward[instrument])


def total_value(engine: StreamEngine) -> float:
    everyone = np.arange(engine.store.n_accounts, dtype=np.int64)
    result = margin_accounts(engine.store.book_of(everyone), engine.market.state, engine.params, engine.context)
    return float(result.equity.sum()) + engine.fund


moves = st.lists(
    st.tuples(st.sampled_from(["BTC", "ETH"]), st.floats(-0.6, 0.3), st.integers(1, 120)), min_size=1, max_size=12
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=moves, seed=st.integers(0, 10_000), fund=st.sampled_from([0.0, 2_000.0, 1e6]))
def test_liquidation_and_the_waterfall_create_and_lose_nothing(
    moves: list[tuple[str, float, int]], seed: int, fund: float
) -> None:
    """At unchanged prices, the liquidation step (slices, fees, the insurance fund, ADL at bankruptcy prices,
    socialised losses) moves value between accounts and the fund; only the slippage paid to the market
    leaves: sum(equity) + fund + slippage is conserved at every batch, gaps through bankruptcy included."""
    engine = StreamEngine.start(venue(16, seed=seed), market(), MarginParams(), insurance_fund=fund)
    prices = {"BTC": BTC, "ETH": ETH}
    time = NOW
    for seq, (asset, move, gap) in enumerate(moves):
        prices[asset] *= 1.0 + move
        time += timedelta(seconds=gap)
        engine.apply_batch([Quote(seq=seq, time=time, asset=asset, price=prices[asset])])
        before = total_value(engine)
        events = engine.settle(time, seq)
        slippage = 0.0
        for e in events:
            if isinstance(e, ev.LiquidationExecuted):
                i = engine.store.instrument_row[e.instrument]
                size = float(engine.store.contract_size[i])
                slippage += e.quantity * size * (e.price - marks(engine, i))
        assert total_value(engine) + slippage == pytest.approx(before, rel=1e-9, abs=1e-6)
        assert engine.fund >= -1e-9
        unresolved = [e for e in events if isinstance(e, ev.LossUnresolved)]
        settled = {e.account for e in events if isinstance(e, ev.InsuranceFundPaid | ev.LossSocialised)}
        for name in settled - {e.account for e in unresolved}:
            row = engine.store.row_of[name]
            assert engine.figures.equity[row] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------- pre-trade


def test_what_if_equals_margin_after_the_fill_and_refuses_the_unknown() -> None:
    engine = StreamEngine.start(venue(), market(), MarginParams())
    decision = engine.what_if("a02", "ETH-PERP", 4.0, ETH)
    engine.process([Fill(seq=1, time=NOW, account="a02", instrument="ETH-PERP", quantity=4.0, price=ETH)])
    row = engine.store.row_of["a02"]
    assert decision.im_after == pytest.approx(engine.figures.im[row], rel=1e-9)
    assert decision.equity_after == pytest.approx(engine.figures.equity[row], rel=1e-9)
    for account, instrument in (("nobody", "ETH-PERP"), ("a02", "DOGE-PERP")):
        refused = engine.what_if(account, instrument, 1.0, ETH)
        assert not refused.allowed and "unknown" in refused.reason


def test_epoch_records_rebuild_and_report() -> None:
    out: list[ev.Event] = []
    engine = StreamEngine.start(venue(), market(), MarginParams(), sink=out.extend)
    im = engine.figures.im.copy()
    engine.process([VolChange(seq=1, time=NOW + timedelta(seconds=1), asset="BTC", vol=1.5)])
    assert (engine.figures.im >= im - 1e-9).all() and (engine.figures.im > im).any()  # more vol, more margin
    new = MarginParams(confidence=0.995)
    engine.process([ParamsChange(seq=2, time=NOW + timedelta(seconds=2), params=new)])
    assert isinstance(
        out[-1]
        if isinstance(out[-1], ev.ParametersChanged)
        else next(e for e in out if isinstance(e, ev.ParametersChanged)),
        ev.ParametersChanged,
    )
    assert engine.params == new


# -------------------------------------------------------------------------------------------- CLI


def test_cli_replays_a_feed_and_writes_events_and_summary(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    book_accounts = [
        {
            "id": "long",
            "collateral": {"USD": 120_000.0},
            "positions": [{"instrument": "BTC-PERP", "quantity": 10, "entry_price": BTC}],
        },
        {
            "id": "short",
            "collateral": {"USD": 200_000.0},
            "positions": [{"instrument": "BTC-PERP", "quantity": -8, "entry_price": BTC}],
        },
    ]
    import msgspec

    accounts.write_bytes(
        msgspec.json.encode({"schema": "solvent.portfolio/1", "instruments": INSTRUMENTS, "accounts": book_accounts})
    )
    (tmp_path / "market.json").write_bytes(msgspec.json.encode(market()))
    write_feed(tmp_path / "feed.ndjson", crash(30, seed=1, drop_per_tick=0.01))
    args = [
        "stream",
        "--accounts",
        str(accounts),
        "--market",
        str(tmp_path / "market.json"),
        "--feed",
        str(tmp_path / "feed.ndjson"),
    ]
    outputs = ["--events", str(tmp_path / "events.ndjson"), "--summary", str(tmp_path / "summary.json")]
    result = CliRunner().invoke(main, args + outputs + ["--state-out", str(tmp_path / "state.npz")])
    assert result.exit_code == 0, result.output
    events = ev.decode_events((tmp_path / "events.ndjson").read_bytes())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["events"] == len(events) and summary["records"] == 30
    assert any(isinstance(e, ev.LiquidationExecuted) for e in events)
    # Resuming from the saved state with an empty continuation writes no events.
    (tmp_path / "more.ndjson").write_text("")
    resumed = CliRunner().invoke(
        main,
        [
            "stream",
            "--state-in",
            str(tmp_path / "state.npz"),
            "--feed",
            str(tmp_path / "more.ndjson"),
            "--events",
            str(tmp_path / "e2.ndjson"),
            "--summary",
            str(tmp_path / "s2.json"),
        ],
    )
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "e2.ndjson").read_bytes() == b""


def test_cli_bad_feed_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "market.json").write_bytes(__import__("msgspec").json.encode(market()))
    (tmp_path / "feed.ndjson").write_text(
        '{"type":"quote","seq":1,"time":"2026-11-25T00:00:00Z","asset":"BTC","price":-5}\n'
    )
    result = CliRunner().invoke(
        main,
        [
            "stream",
            "--accounts",
            "examples/portfolio.json",
            "--market",
            str(tmp_path / "market.json"),
            "--feed",
            str(tmp_path / "feed.ndjson"),
            "--events",
            str(tmp_path / "events.ndjson"),
            "--summary",
            str(tmp_path / "summary.json"),
        ],
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "feed.ndjson" in result.output and "price" in result.output
    assert not (tmp_path / "events.ndjson").exists() and not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("short", [0.0, -1.0, -3.0, -5.0])
def test_repeated_holdings_merge_without_changing_any_figure(short: float) -> None:
    """A book holding one instrument in several rows (longs and shorts) margins as the same book merged."""
    positions = [
        Position(instrument="BTC-PERP", quantity=2.0, entry_price=90_000.0),
        Position(instrument="BTC-PERP", quantity=1.0, entry_price=99_000.0),
        Position(instrument="BTC-C", quantity=-1.0),
        Position(instrument="BTC-C", quantity=-2.0),
    ]
    if short:
        positions.append(Position(instrument="BTC-PERP", quantity=short, entry_price=97_000.0))
    twice = Account(id="twice", collateral={"USD": 60_000.0}, positions=positions)
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=[twice]))
    engine = StreamEngine.start(book, market(), MarginParams())
    assert engine.store.count[0] == 2
    store = engine.store
    index = store.instrument_row
    perp_slot, call_slot = store.find(0, index["BTC-PERP"]), store.find(0, index["BTC-C"])
    assert (store.pos_quantity[perp_slot], store.pos_quantity[call_slot]) == (3.0 + short, -3.0)
    perp = store.pos_entry[perp_slot]
    if 3.0 + short > 0:
        assert perp == pytest.approx(93_000.0)  # the longs' mean entry, kept by the larger side
    elif 3.0 + short < 0:
        assert perp == 97_000.0
    else:
        assert math.isnan(perp)
    full = margin_accounts(book, engine.market.state, engine.params, engine.context)
    assert engine.figures.im[0] == pytest.approx(full.im[0], rel=1e-12)
    assert engine.figures.equity[0] == pytest.approx(full.equity[0], rel=1e-12)


def test_parameters_the_stream_cannot_use_are_refused_and_change_nothing() -> None:
    out: list[ev.Event] = []
    engine = StreamEngine.start(venue(), market(), MarginParams(), sink=out.extend)
    fhs = MarginParams(scenarios=ScenarioParams(method="fhs"))
    engine.process([ParamsChange(seq=1, time=NOW, params=fhs)])
    assert isinstance(out[-1], ev.InputRejected) and out[-1].field == "params" and "history" in out[-1].reason
    assert engine.params == MarginParams()
