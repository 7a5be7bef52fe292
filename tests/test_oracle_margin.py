"""Oracle uncertainty wired into margin: market file -> aggregate price, scan widening, `oracle` IM term,
degraded statuses reported, pessimistic collateral (docs/model.md, "Oracle uncertainty").

Replays: Mango Markets (11 October 2022: one of MNGO's oracle sources pumped ~20x, $0.038 -> $0.91,
and the attacker borrowed against the inflated collateral) and a single bad print (ETH at 26 among
venues at ~110).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

from solvent.api import compute_margin
from solvent.cli import main
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.engine.results import MarginResult
from solvent.errors import InputError
from solvent.formats.io import load_market
from solvent.formats.schemas import (
    Account,
    AssetQuote,
    Instrument,
    MarketSnapshot,
    OracleSource,
    Portfolio,
    Position,
)
from solvent.market.oracle import OracleStatus
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams, OracleParams, ScenarioParams
from solvent.scenarios import generate_scenarios
from solvent.scenarios.base import ScenarioSet, widen_price_moves

NOW = datetime(2026, 11, 25, tzinfo=UTC)
EXPIRY = NOW + timedelta(days=30)
INSTRUMENTS = [
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
    Instrument(id="MNGO-PERP", kind="perp", underlying="MNGO"),
    Instrument(id="ETH-C", kind="option", underlying="ETH", expiry=EXPIRY, strike=110.0, option_type="call"),
    Instrument(id="ETH-P", kind="option", underlying="ETH", expiry=EXPIRY, strike=90.0, option_type="put"),
]
MNGO_HONEST = [0.0378, 0.0379, 0.0380, 0.0381]
MNGO_PUMP = 0.91


def sources(prices: list[float], confidence: float = 0.0, age_s: float = 0.0) -> list[OracleSource]:
    return [
        OracleSource(name=f"src{k}", price=p, confidence=confidence, timestamp=NOW - timedelta(seconds=age_s))
        for k, p in enumerate(prices)
    ]


def market(
    eth: list[OracleSource] | None = None, mngo: list[OracleSource] | None = None, eth_price: float = 100.0
) -> MarketSnapshot:
    return MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={
            "BTC": AssetQuote(price=95_000.0, vol=0.5),
            "ETH": AssetQuote(price=eth_price, vol=0.7, sources=eth or []),
            "MNGO": AssetQuote(price=0.038, vol=1.5, sources=mngo or []),
            "USDC": AssetQuote(price=1.0),
        },
    )


def book(*accounts: Account) -> Book:
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=list(accounts)))


def account(name: str = "a", collateral: dict[str, float] | None = None, **positions: float) -> Account:
    return Account(
        id=name,
        collateral={"USDC": 1_000_000.0} if collateral is None else collateral,
        positions=[
            Position(
                instrument=inst.replace("_", "-"),
                quantity=q,
                entry_price=None if inst in ("ETH_C", "ETH_P") else 1.0,
            )
            for inst, q in positions.items()
        ],
    )


def params(method: str = "grid", **oracle: object) -> MarginParams:
    return MarginParams(scenarios=ScenarioParams(method=method), oracle=OracleParams(**oracle))  # type: ignore[arg-type]


def margin(b: Book, m: MarketSnapshot, p: MarginParams | None = None) -> MarginResult:
    return compute_margin(b, m, params() if p is None else p)


def state_of(m: MarketSnapshot, p: MarginParams | None = None) -> MarketState:
    return build_market_state(INSTRUMENTS, m, params() if p is None else p)


# ------------------------------------------------------------------------------------------------ replays


def test_mango_pump_changes_neither_collateral_nor_borrowing_power() -> None:
    """MNGO collateral plus a long MNGO perp: one of five sources pumped 24x moves the price by one rank at most,
    within the honest quotes (issue 12 item 3: the median of the five valid quotes, 0.0380, not the honest
    four's 0.03795), and raises the uncertainty, so borrowing power rises by at most that rank."""
    b = book(account("mango", collateral={"MNGO": 100_000_000.0}, MNGO_PERP=10_000_000.0, BTC_PERP=2.0))
    honest = margin(b, market(mngo=sources(MNGO_HONEST)))
    pumped = margin(b, market(mngo=sources([*MNGO_HONEST, MNGO_PUMP])))
    assert honest.collateral[0] == pytest.approx(100_000_000.0 * 0.03795, rel=1e-12)
    assert pumped.collateral[0] == pytest.approx(100_000_000.0 * 0.0380, rel=1e-12)
    assert min(MNGO_HONEST) <= pumped.collateral[0] / 100_000_000.0 <= max(MNGO_HONEST)
    assert pumped.im[0] >= honest.im[0]
    rank = 110_000_000.0 * (0.0380 - 0.03795)  # collateral and perp units x the one-rank move
    assert pumped.equity[0] - pumped.im[0] <= honest.equity[0] - honest.im[0] + rank * (1 + 1e-9)
    assert pumped.oracle_status == {"MNGO": "OK"}


def test_mango_pump_would_have_inflated_a_single_price() -> None:
    """The counterfactual the aggregate prevents: the pumped print taken as the price."""
    b = book(account("mango", collateral={"MNGO": 100_000_000.0}))
    pumped_quote = msgspec.structs.replace(market().assets["MNGO"], price=MNGO_PUMP)
    naive = margin(b, msgspec.structs.replace(market(), assets={**market().assets, "MNGO": pumped_quote}))
    aggregated = margin(b, market(mngo=sources([*MNGO_HONEST, MNGO_PUMP])))
    assert naive.collateral[0] / aggregated.collateral[0] > 20.0


def test_eth_bad_print_is_rejected_from_the_margin_price() -> None:
    state = state_of(market(eth=sources([110.0, 110.2, 109.9, 26.0, 110.1]), eth_price=110.0))
    eth = state.asset_index["ETH"]
    assert state.price[eth] == 110.0  # the median of all five (issue 12 item 3), within the honest four
    assert state.oracle_status[eth] == OracleStatus.OK
    assert state.forward[state.instruments.index["ETH-PERP"]] == state.price[eth]


# ------------------------------------------------------------------------------------------ degraded states


def test_all_stale_is_reported_at_the_last_known_band_widened_by_its_age() -> None:
    """issue 12 item 4: ALL_STALE is flagged (no new risk, no liquidation on its price) and margined at the stale
    quotes' band widened over their age, not at the 50% cap that made everyone liquidatable."""
    b = book(account(ETH_PERP=100.0))
    fresh = margin(b, market(eth=sources([100.0, 100.1, 99.9])))
    stale = margin(b, market(eth=sources([100.0, 100.1, 99.9], age_s=3_600.0)))
    state = state_of(market(eth=sources([100.0, 100.1, 99.9], age_s=3_600.0)))
    eth = state.asset_index["ETH"]
    assert state.oracle_status[eth] == OracleStatus.ALL_STALE
    age = 3_600.0 / (365.0 * 86_400.0)
    band = 1.4826 * 0.1 + 100.0 * float(state.vol[eth]) * age**0.5  # D of the three, S over an hour
    assert state.oracle_uncertainty[eth] == pytest.approx(band, rel=1e-9)
    assert state.price[eth] == 100.0  # the TWAP, explicitly flagged: never a silent last source price
    assert stale.oracle_status["ETH"] == "ALL_STALE"
    assert stale.oracle_warnings == (
        "ETH oracle ALL_STALE: risk-increasing activity refused, liquidation on its price paused, "
        "margin at the last known band",
    )
    assert fresh.oracle_warnings == ()
    assert stale.im[0] > fresh.im[0]
    assert stale.terms["oracle"][0] == pytest.approx(100.0 * band, rel=1e-9)


def test_degraded_status_is_in_the_json_document_and_the_table(tmp_path: Path) -> None:
    portfolio, market_path = write_inputs(tmp_path, age_s=3_600.0)
    runner = CliRunner()
    as_json = runner.invoke(main, ["margin", "--portfolio", portfolio, "--market", market_path, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["oracle_status"] == {"ETH": "ALL_STALE"}
    assert document["warnings"] == [
        "ETH oracle ALL_STALE: risk-increasing activity refused, liquidation on its price paused, "
        "margin at the last known band"
    ]
    table = runner.invoke(main, ["margin", "--portfolio", portfolio, "--market", market_path])
    assert table.exit_code == 0, table.output
    assert "warning: ETH oracle ALL_STALE: risk-increasing activity refused" in table.stdout


def write_inputs(tmp_path: Path, *, age_s: float = 0.0, future_s: float | None = None) -> tuple[str, str]:
    eth = sources([100.0, 100.1, 99.9], age_s=age_s)
    if future_s is not None:
        eth[1] = OracleSource(name="late", price=100.0, timestamp=NOW + timedelta(seconds=future_s))
    portfolio = tmp_path / "portfolio.json"
    portfolio.write_bytes(
        msgspec.json.encode(
            Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=[account(ETH_PERP=5.0)])
        )
    )
    market_path = tmp_path / "market.json"
    market_path.write_bytes(msgspec.json.encode(market(eth=eth)))
    return str(portfolio), str(market_path)


def test_future_timestamp_is_one_line_exit_2_naming_the_field(tmp_path: Path) -> None:
    portfolio, market_path = write_inputs(tmp_path, future_s=60.0)
    result = CliRunner().invoke(main, ["margin", "--portfolio", portfolio, "--market", market_path])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {market_path}: assets.ETH.sources[1].timestamp: "), lines[0]
    assert "in the future" in lines[0]


def test_timestamp_within_the_clock_tolerance_is_accepted(tmp_path: Path) -> None:
    portfolio, market_path = write_inputs(tmp_path, future_s=3.0)
    result = CliRunner().invoke(main, ["margin", "--portfolio", portfolio, "--market", market_path, "--format", "json"])
    assert result.exit_code == 0, result.output


def test_source_timestamp_without_a_zone_is_named(tmp_path: Path) -> None:
    path = tmp_path / "market.json"
    document = msgspec.json.decode(msgspec.json.encode(market(eth=sources([100.0]))))
    document["assets"]["ETH"]["sources"][0]["timestamp"] = "2026-11-25T00:00:00"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError) as caught:
        load_market(path)
    assert caught.value.where == "assets.ETH.sources[0].timestamp"


# ------------------------------------------------------------------------------------------- oracle buffer


@pytest.mark.parametrize("c", [0.0, 1.0, 2.5])
def test_oracle_buffer_by_hand(c: float) -> None:
    """Five sources at 100 with a 0.5 band, fresh: U = C = 0.5 (D = 0, S = 0); 3 ETH + 0.2 BTC-free."""
    m = market(eth=sources([100.0] * 5, confidence=0.5))
    result = margin(book(account(ETH_PERP=3.0), account("short", ETH_PERP=-4.0)), m, params(buffer_multiplier=c))
    assert result.terms["oracle"] == pytest.approx([c * 3.0 * 0.5, c * 4.0 * 0.5], rel=1e-12)
    eth = result.assets.index("ETH")
    assert result.term_by_asset["oracle"][:, eth] == pytest.approx(result.terms["oracle"], rel=1e-12)


def test_oracle_buffer_counts_option_delta() -> None:
    m = market(eth=sources([100.0] * 5, confidence=0.5))
    result = margin(book(account(ETH_C=-10.0)), m)
    eth = result.assets.index("ETH")
    assert result.terms["oracle"][0] == pytest.approx(abs(result.greeks[0, eth, 0]) * 0.5, rel=1e-12)
    assert result.terms["oracle"][0] > 0.0


def test_flat_account_pays_no_oracle_buffer() -> None:
    m = market(eth=sources([100.0, 101.0, 99.0], confidence=0.5))
    result = margin(book(account("flat", ETH_PERP=5.0, BTC_PERP=0.0), account("none")), m)
    hedged = margin(
        book(
            Account(
                id="hedged", positions=[Position(instrument="ETH-PERP", quantity=q, entry_price=1.0) for q in (5, -5)]
            )
        ),
        m,
    )
    assert result.terms["oracle"][1] == 0.0
    assert hedged.terms["oracle"][0] == 0.0


@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
def test_terms_sum_exactly_to_im(method: str) -> None:
    m = market(eth=sources([100.0, 100.4, 99.7, 100.2, 26.0], confidence=0.1), mngo=sources(MNGO_HONEST))
    b = book(account(ETH_PERP=30.0, ETH_C=-20.0, MNGO_PERP=1e6), account("b", BTC_PERP=-1.0, ETH_P=15.0))
    result = margin(b, m, params(method))
    total = np.zeros(result.n_accounts)
    for values in result.terms.values():
        total = total + values
    assert np.array_equal(total, result.im)
    assert set(result.terms) >= {"market_risk", "oracle"}


# ---------------------------------------------------------------------------------------------- widening

BOOKS = {
    "long-perp": {"ETH_PERP": 10.0},
    "short-perp": {"ETH_PERP": -10.0},
    "short-strangle": {"ETH_C": -10.0, "ETH_P": -10.0},
    "long-call": {"ETH_C": 10.0},
    "protective-put": {"ETH_PERP": 5.0, "ETH_P": 5.0, "BTC_PERP": 0.5},
}


@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
@pytest.mark.parametrize("positions", BOOKS.values(), ids=list(BOOKS))
def test_more_dispersion_never_lowers_market_risk(method: str, positions: dict[str, float]) -> None:
    """Under the "scan" charge the uncertainty widens the scenarios: more of it never lowers market risk."""
    b = book(account("a", None, **positions))
    risks = []
    for spread in (0.0, 0.5, 2.0, 5.0, 9.0):
        m = market(eth=sources([100.0 - spread, 100.0, 100.0 + spread], confidence=0.0))
        risks.append(float(margin(b, m, params(method, uncertainty_charge="scan")).terms["market_risk"][0]))
    assert risks == sorted(risks)
    assert risks[-1] > risks[0]


@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
def test_zero_uncertainty_changes_nothing(method: str) -> None:
    """Sources that agree exactly with the quote, fresh, without bands: bit-for-bit the plain market."""
    b = book(account(ETH_PERP=30.0, ETH_C=-20.0), account("b", BTC_PERP=-1.0, ETH_P=15.0))
    plain = margin(b, market(), params(method))
    sourced = margin(b, market(eth=sources([100.0] * 3)), params(method))
    for name, values in plain.terms.items():
        assert np.array_equal(values, sourced.terms[name]), name
    assert np.array_equal(plain.im, sourced.im)
    assert np.array_equal(plain.mm, sourced.mm)
    assert np.array_equal(sourced.terms["oracle"], np.zeros(2))
    assert np.array_equal(plain.terms["oracle"], np.zeros(2))  # always reported (issue 12 item 18)


def test_widening_moves_every_price_move_away_from_zero_by_z_u_over_p() -> None:
    m = market(eth=sources([100.0] * 3, confidence=2.0))
    p = params(scan_widening=1.5, uncertainty_charge="scan")
    plain = generate_scenarios(state_of(market()), p)
    widened = generate_scenarios(state_of(m, p), p)
    w = 1.5 * 2.0 / 100.0
    eth = state_of(market()).asset_index["ETH"]
    before, after = plain.price_move[:, eth], widened.price_move[:, eth]
    assert np.array_equal(widened.price_move[:, :eth], plain.price_move[:, :eth])  # BTC has no sources
    assert np.array_equal(after[before == 0.0], before[before == 0.0])
    assert after[before > 0.0] == pytest.approx(before[before > 0.0] + w, rel=1e-12)
    assert after[before < 0.0] == pytest.approx(before[before < 0.0] - w, rel=1e-12)
    assert np.array_equal(widened.vol_move, plain.vol_move)


@pytest.mark.parametrize("w", [0.0, 0.01, 0.3, 2.0])
def test_widen_price_moves_is_monotone_and_keeps_zero(w: float) -> None:
    moves = np.array([[-0.995, -0.5, -0.01, 0.0, 0.01, 0.5, 4.0]]).T
    base = ScenarioSet(
        name="t",
        price_move=moves,
        vol_move=np.zeros_like(moves),
        pnl_weight=np.ones(7),
        group=np.zeros(7, dtype=np.int32),
        horizon_years=0.01,
        labels=tuple("abcdefg"),
    )
    narrow = widen_price_moves(base, np.array([w])).price_move[:, 0]
    wide = widen_price_moves(base, np.array([w + 0.1])).price_move[:, 0]
    assert np.all(np.abs(wide) >= np.abs(narrow)) and np.all(np.abs(narrow) >= np.abs(moves[:, 0]))
    assert np.all(np.sign(narrow) == np.sign(moves[:, 0])) and narrow[3] == 0.0
    assert narrow[0] == -0.995 and np.all(narrow > -1.0)
    assert np.array_equal(moves[:, 0], base.price_move[:, 0])  # input not mutated


def test_widening_never_shrinks_a_move_below_the_floor() -> None:
    """A huge uncertainty floors down moves at -99% but never pulls a deeper move back up."""
    m = market(eth=sources([100.0], confidence=50.0))  # one source with a +-50 band: U = 50, w = 0.5
    p = MarginParams(
        scenarios=ScenarioParams(method="deribit"), oracle=OracleParams(scan_widening=4.0, uncertainty_charge="scan")
    )
    scenarios = generate_scenarios(state_of(m, p), p)
    assert scenarios.price_move.min() == pytest.approx(-0.99)


# ------------------------------------------------------------------------------------- charged once


def btc_market(band: float, price: float = 60_000.0, quote: float | None = None) -> MarketSnapshot:
    """BTC priced from five fresh sources at `price` publishing a confidence band `band`: U = band (D = S = 0)."""
    snapshot = market()
    btc = AssetQuote(price=price if quote is None else quote, vol=0.5, sources=sources([price] * 5, confidence=band))
    return msgspec.structs.replace(snapshot, assets={**snapshot.assets, "BTC": btc})


@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
@pytest.mark.parametrize("quantity", [1.0, -1.0, 2.5])
def test_a_band_of_u_raises_a_linear_one_asset_im_by_exactly_delta_u(method: str, quantity: float) -> None:
    """issue 12 item 5: the oracle uncertainty U is charged once. One BTC perp at 60,000 with a $600 band raises
    IM by |delta| x 600 (today: 1,200 for one BTC, the scenarios widened by U / P and the buffer on top). The
    independent figure is the definition of the band itself: a price known to within U moves a delta of q BTC
    by q U."""
    b = book(account(BTC_PERP=quantity))
    exact = margin(b, btc_market(0.0), params(method))
    banded = margin(b, btc_market(600.0), params(method))
    btc = banded.assets.index("BTC")
    assert banded.terms["oracle"][0] == pytest.approx(abs(quantity) * 600.0, rel=1e-12)
    assert banded.im[0] - exact.im[0] == pytest.approx(abs(quantity) * 600.0, rel=1e-9)
    assert banded.terms["market_risk"][0] == exact.terms["market_risk"][0]
    assert banded.term_by_asset["oracle"][0, btc] == banded.terms["oracle"][0]


@pytest.mark.parametrize("method", ["grid", "mc"])
def test_scan_charge_widens_the_scenarios_and_drops_the_buffer(method: str) -> None:
    """issue 12 item 5: under `uncertainty_charge` "scan" the uncertainty is in the scenario moves alone (U / P
    added to every move: for one linear asset market risk rises by |delta| U where the tail scenarios have full
    weight, as in the grid's 3/3 moves and Monte Carlo), and the `oracle` term is 0, still reported."""
    b = book(account(BTC_PERP=1.0), account("short", BTC_PERP=-2.0))
    p = params(method, uncertainty_charge="scan")
    exact = margin(b, btc_market(0.0), p)
    banded = margin(b, btc_market(600.0), p)
    assert np.array_equal(banded.terms["oracle"], np.zeros(2))
    rise = banded.terms["market_risk"] - exact.terms["market_risk"]
    assert rise == pytest.approx([600.0, 1_200.0], rel=0.02)
    assert banded.im - exact.im == pytest.approx(rise, rel=1e-9)


def test_uncertainty_charge_rejects_an_unknown_mode() -> None:
    from solvent.params import params_from_json

    with pytest.raises(InputError, match="uncertainty_charge"):
        params_from_json(b'{"oracle": {"uncertainty_charge": "both"}}')


# -------------------------------------------------------------------------------------- pessimistic pricing


def test_pessimistic_collateral_values_balances_low_and_debts_high() -> None:
    m = market(eth=sources([100.0] * 5, confidence=0.5))
    b = book(account("long", collateral={"ETH": 10.0}), account("debt", collateral={"ETH": -10.0, "USDC": 5_000.0}))
    off = margin(b, m)
    on = margin(b, m, params(pessimistic_k=2.0))
    assert off.collateral.tolist() == pytest.approx([1_000.0, 4_000.0])
    assert on.collateral.tolist() == pytest.approx([10.0 * 99.0, 5_000.0 - 10.0 * 101.0])


def test_demo_market_carries_several_fresh_sources_per_asset() -> None:
    from solvent.demo.run import ORACLE_SOURCES, demo_history, demo_market, demo_params

    snapshot = demo_market(demo_history(7), demo_params(), seed=7)
    assert all(len(quote.sources) == len(ORACLE_SOURCES) for quote in snapshot.assets.values())
    state = build_market_state([], snapshot, demo_params())
    assert np.all(state.oracle_status == OracleStatus.OK)
    sourced = state.oracle_sources > 0
    assert sourced.sum() == len(snapshot.assets)
    assert np.all(state.oracle_uncertainty[sourced] > 0.0)
