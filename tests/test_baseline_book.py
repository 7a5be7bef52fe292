"""A venue rule applied to a whole book (solvent.baselines.book) and `solvent margin --baseline`.

Layers: (a) a hand-made book whose per-account IM / MM under each rule are written out by hand from
the rule's formula (sources as in tests/test_baselines.py; float64 round-off, rel 1e-12); (b) the
vectorised book function equals a plain per-account loop over the scalar kernels (the slow twin at
the bottom of this file) on 1,000 random accounts; (c) invariants: IM >= MM >= 0, netting of rows of
one instrument, inputs not mutated; (d) the API and the CLI on examples/.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

import solvent
from solvent.api import baseline_margin_for
from solvent.baselines import (
    BASELINE_NAMES,
    BaselineParams,
    DriftPerpParams,
    StaticFractions,
    StaticParams,
    SynthetixParams,
    deribit,
    drift,
    dydx,
    static,
    synthetix,
)
from solvent.baselines.book import BASELINE_SCHEMA, BaselineResult, baseline_margin, option_unit_values
from solvent.cli import main
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.engine.riskarrays import scenario_risk_arrays
from solvent.errors import InputError
from solvent.formats.errors import decode_json
from solvent.formats.schemas import Account, AssetQuote, Instrument, MarketSnapshot, Portfolio, Position
from solvent.market.state import OPTION, SPOT, MarketState, build_market_state
from solvent.params import MarginParams

REL = 1e-12
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PORTFOLIO = str(EXAMPLES / "portfolio.json")
MARKET = str(EXAMPLES / "market.json")
NOW = datetime(2026, 11, 25, tzinfo=UTC)
EXPIRY = datetime(2026, 12, 25, 8, tzinfo=UTC)

INSTRUMENTS = [
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="BTC-SPOT", kind="spot", underlying="BTC"),
    Instrument(id="BTC-FUT", kind="future", underlying="BTC", expiry=EXPIRY),
    Instrument(id="BTC-C-110000", kind="option", underlying="BTC", expiry=EXPIRY, strike=110_000, option_type="call"),
    Instrument(id="BTC-P-80000", kind="option", underlying="BTC", expiry=EXPIRY, strike=80_000, option_type="put"),
    Instrument(id="SOL-PERP", kind="perp", underlying="SOL"),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH", contract_size=0.1),
]
KINDS = {inst.id: inst.kind for inst in INSTRUMENTS}
PRICES = {"BTC": 100_000.0, "SOL": 100.0, "ETH": 3_000.0, "USDC": 1.0}
MARKET_SNAPSHOT = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={name: AssetQuote(price=p, vol=0.6, adv=1e9, vol_spread=0.02) for name, p in PRICES.items()},
    rate=0.0,  # forwards equal spot prices, so the hand numbers below use the prices as they are
)


def position(instrument: str, quantity: float) -> Position:
    linear = KINDS[instrument] != "option"
    entry = PRICES[instrument.split("-")[0]] if linear else None
    return Position(instrument=instrument, quantity=quantity, entry_price=entry)


HAND_ACCOUNTS = {
    "whale": [position("SOL-PERP", 250_000.0)],  # $25M long
    "fish": [position("SOL-PERP", 100_000.0)],  # $10M long: the SOL-PERP open notional is $35M
    "shorty": [position("SOL-PERP", -350_000.0)],  # $35M short (open interest counts one side)
    "btc": [position("BTC-PERP", 6.0), position("BTC-PERP", 4.0)],  # two rows, one net position of 10 BTC
    "writer": [position("BTC-C-110000", -1.0), position("BTC-P-80000", 2.0)],
    "spot": [position("BTC-SPOT", 2.0), position("ETH-PERP", -50.0)],  # 50 contracts of 0.1 ETH
    "flat": [position("BTC-PERP", 1.0), position("BTC-PERP", -1.0)],
    "empty": [],
}


def make_book(accounts: dict[str, list[Position]]) -> Book:
    portfolio = Portfolio(
        schema="solvent.portfolio/1",
        instruments=INSTRUMENTS,
        accounts=[Account(id=name, collateral={"USDC": 1_000.0}, positions=rows) for name, rows in accounts.items()],
    )
    return portfolio_to_book(portfolio)


@pytest.fixture(scope="module")
def hand() -> tuple[Book, MarketState]:
    book = make_book(HAND_ACCOUNTS)
    return book, build_market_state(list(book.instruments), MARKET_SNAPSHOT, MarginParams())


def deribit_unit_values(state: MarketState) -> np.ndarray:
    """Option values per unit that make the call's mark exactly 0.01 BTC and the put's 0.002 BTC."""
    values = np.zeros(len(state.instruments))
    index = state.instruments.index
    values[index["BTC-C-110000"]] = 0.01 * 100_000.0
    values[index["BTC-P-80000"]] = 0.002 * 100_000.0
    return values


def account(result: BaselineResult, name: str) -> tuple[float, float]:
    n = list(result.account_ids).index(name)
    return float(result.im[n]), float(result.mm[n])


# ---------------------------------------------------------------------------------------------------
# (a) The hand-made book, by hand
# ---------------------------------------------------------------------------------------------------

SMALL_CAP_IMF_AT_35M = 0.10 + 0.90 * (35e6 - 20e6) / (50e6 - 20e6)  # 0.55
SYNTHETIX_IMR_10_BTC = 10 / 50_000 * 13.35 + 0.02  # 0.02267
DRIFT_SOL_IM = 0.08 * 1.0 + 0.0005 * math.sqrt(250_000)  # max(0.10, 0.08 + 0.0005 x 500) = 0.33
DRIFT_SOL_MM = 0.8 * 0.05 + 0.0005 * math.sqrt(250_000)  # 0.29


@pytest.mark.parametrize(
    ("rule", "name", "im", "mm"),
    [
        # dYdX v4 (liquidity_tier.go, lib.go): SOL in Small-Cap (the default tier) at $35M open notional, IMF 0.55,
        # MMF 0.10 x 50%; BTC in Large-Cap (IMF 2%, MMF 1.2%, no ramp).
        ("dydx", "whale", SMALL_CAP_IMF_AT_35M * 25e6, 0.05 * 25e6),
        ("dydx", "fish", SMALL_CAP_IMF_AT_35M * 10e6, 0.05 * 10e6),
        ("dydx", "shorty", SMALL_CAP_IMF_AT_35M * 35e6, 0.05 * 35e6),
        ("dydx", "btc", 0.02 * 1e6, 0.012 * 1e6),
        # options fall back to static: the short call on its underlying notional, the long put free.
        ("dydx", "writer", 0.10 * 100_000, 0.05 * 100_000),
        # Synthetix v3 (PerpsMarketConfiguration.sol), BTC defaults: 10 BTC, IMR 2.267%, MMR x 0.28, + $50 each.
        ("synthetix", "btc", 1e6 * SYNTHETIX_IMR_10_BTC + 50.0, 1e6 * SYNTHETIX_IMR_10_BTC * 0.28 + 50.0),
        # Drift v2 (margin.rs): 10 BTC perp stays at 10% / 5%; 250,000 SOL pays the size premium.
        ("drift", "btc", 0.10 * 1e6, 0.05 * 1e6),
        ("drift", "whale", DRIFT_SOL_IM * 25e6, DRIFT_SOL_MM * 25e6),
        # a 2 BTC spot long is a deposit at weight min(0.8, 1.1 / (1 + 0.003 sqrt 2)) = 0.8 (0.9 maintenance);
        # 5 ETH short perp (50 x 0.1) = $15,000 at 10% / 5%.
        ("drift", "spot", 200_000 * (1 - 0.8) + 1_500.0, 200_000 * (1 - 0.9) + 750.0),
        # Deribit standard margin (inverse options), mark 0.01 BTC: short call IM 0.11, MM 0.085 BTC, x $100,000.
        ("deribit", "writer", 0.11 * 100_000, 0.085 * 100_000),
        # linear products under deribit: the static fallback (10% / 5%).
        ("deribit", "btc", 0.10 * 1e6, 0.05 * 1e6),
        # static: |notional| x 10% / 5%; the short call on its underlying notional, the long put 0.
        ("static", "btc", 0.10 * 1e6, 0.05 * 1e6),
        ("static", "writer", 0.10 * 100_000, 0.05 * 100_000),
        ("static", "spot", 0.10 * 215_000, 0.05 * 215_000),
    ],
)
def test_hand_book(hand: tuple[Book, MarketState], rule: str, name: str, im: float, mm: float) -> None:
    book, state = hand
    result = baseline_margin(book, state, BaselineParams(), rule, unit_value=deribit_unit_values(state))
    got_im, got_mm = account(result, name)
    assert got_im == pytest.approx(im, rel=REL)
    assert got_mm == pytest.approx(mm, rel=REL)


@pytest.mark.parametrize("rule", BASELINE_NAMES)
@pytest.mark.parametrize("name", ["flat", "empty"])
def test_flat_and_empty_accounts_owe_nothing(hand: tuple[Book, MarketState], rule: str, name: str) -> None:
    """A long and a short row of one instrument net to no position (not even Synthetix's $50 minimum)."""
    book, state = hand
    assert account(baseline_margin(book, state, BaselineParams(), rule), name) == (0.0, 0.0)


def test_hand_book_equals_the_kernels_position_by_position(hand: tuple[Book, MarketState]) -> None:
    """The dYdX figures for SOL are the kernel's, with the $35M open notional summed from the book's longs."""
    book, state = hand
    result = baseline_margin(book, state, BaselineParams(), "dydx")
    small = BaselineParams().dydx.tier_index("Small-Cap")
    for name, notional in [("whale", 25e6), ("fish", 10e6), ("shorty", -35e6)]:
        im, mm = dydx.requirements(notional, small, 35e6, BaselineParams().dydx)
        assert account(result, name) == pytest.approx((float(im), float(mm)), rel=REL)


def test_deribit_reports_its_static_fallback(hand: tuple[Book, MarketState]) -> None:
    book, state = hand
    result = baseline_margin(book, state, BaselineParams(), "deribit", unit_value=deribit_unit_values(state))
    n = list(result.account_ids).index("btc")
    assert result.fallback_im[n] == pytest.approx(0.10 * 1e6, rel=REL)
    assert result.fallback_im[list(result.account_ids).index("writer")] == 0.0
    assert any("static rule" in note and "not implemented" in note for note in result.notes)


def test_open_interest_override(hand: tuple[Book, MarketState]) -> None:
    """dYdX with the venue's own open interest ($50M on SOL-PERP: IMF 1) instead of the book's."""
    book, state = hand
    oi = np.zeros(len(state.instruments))
    oi[state.instruments.index["SOL-PERP"]] = 50e6
    result = baseline_margin(book, state, BaselineParams(), "dydx", open_interest=oi)
    assert account(result, "fish") == pytest.approx((10e6, 0.05 * 10e6), rel=REL)


def test_per_asset_overrides(hand: tuple[Book, MarketState]) -> None:
    book, state = hand
    params = BaselineParams(
        static=StaticParams(
            assets={"BTC": StaticFractions(initial_margin_fraction=0.2, maintenance_margin_fraction=0.1)}
        ),
        dydx_asset_tiers={"BTC": "Mid-Cap", "ETH": "Large-Cap"},
        synthetix_markets={"SOL": SynthetixParams(skew_scale=1e9)},
        drift_perp_markets={"BTC": DriftPerpParams(margin_ratio_initial=0.2, margin_ratio_maintenance=0.1)},
    )
    assert account(baseline_margin(book, state, params, "static"), "btc") == pytest.approx((2e5, 1e5), rel=REL)
    assert account(baseline_margin(book, state, params, "dydx"), "btc") == pytest.approx((5e4, 3e4), rel=REL)
    sol_imr = 250_000 / 1e9 * 13.35 + 0.02
    expected = (25e6 * sol_imr + 50.0, 25e6 * sol_imr * 0.28 + 50.0)
    assert account(baseline_margin(book, state, params, "synthetix"), "whale") == pytest.approx(expected, rel=REL)
    assert account(baseline_margin(book, state, params, "drift"), "btc") == pytest.approx((2e5, 1e5), rel=REL)


def test_unknown_tier_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        decode_json(b'{"dydx_asset_tiers": {"BTC": "Huge-Cap"}}', BaselineParams, "baselines.json")
    assert caught.value.where == "dydx_asset_tiers.BTC"
    assert "unknown liquidity tier 'Huge-Cap'" in caught.value.message


def test_unknown_rule_is_a_value_error(hand: tuple[Book, MarketState]) -> None:
    with pytest.raises(ValueError, match="unknown rule 'binance'"):
        baseline_margin(*hand, BaselineParams(), "binance")


def test_option_unit_values_are_the_risk_arrays_values(hand: tuple[Book, MarketState]) -> None:
    _, state = hand
    params = MarginParams()
    _, arrays = scenario_risk_arrays(state, params)
    floor = params.volatility.time_floor_days / params.days_per_year
    np.testing.assert_allclose(option_unit_values(state, floor), arrays.value, rtol=REL, atol=0.0)


# ---------------------------------------------------------------------------------------------------
# (b) Vectorised over a random book == a per-account loop; (c) invariants
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_book() -> tuple[Book, MarketState]:
    rng = np.random.default_rng(20260312)
    names = [inst.id for inst in INSTRUMENTS]
    scale = {"BTC": 5.0, "SOL": 50_000.0, "ETH": 500.0}
    accounts = {}
    for n in range(1_000):
        rows = []
        for _ in range(int(rng.integers(0, 6))):
            instrument = names[int(rng.integers(len(names)))]
            size = scale[instrument.split("-")[0]]
            rows.append(position(instrument, float(np.round(rng.normal(0.0, size), 3))))
        accounts[f"acct{n:04d}"] = rows
    book = make_book(accounts)
    market = msgspec.structs.replace(MARKET_SNAPSHOT, rate=0.05)  # forwards differ from spot prices here
    return book, build_market_state(list(book.instruments), market, MarginParams())


@pytest.mark.parametrize("rule", BASELINE_NAMES)
def test_vectorised_equals_per_account_loop(random_book: tuple[Book, MarketState], rule: str) -> None:
    book, state = random_book
    params = BaselineParams(drift_perp_markets={"SOL": DriftPerpParams(imf_factor=0.001)})
    result = baseline_margin(book, state, params, rule)
    im, mm = loop_baseline(book, state, params, rule)
    np.testing.assert_allclose(result.im, im, rtol=REL, atol=1e-9)
    np.testing.assert_allclose(result.mm, mm, rtol=REL, atol=1e-9)


@pytest.mark.parametrize("rule", BASELINE_NAMES)
def test_im_at_least_mm_at_least_zero(random_book: tuple[Book, MarketState], rule: str) -> None:
    book, state = random_book
    result = baseline_margin(book, state, BaselineParams(), rule)
    assert result.im.shape == result.mm.shape == (book.n_accounts,)
    assert np.all(result.mm >= 0.0)
    assert np.all(result.im >= result.mm)
    assert np.all((result.fallback_im >= 0.0) & (result.fallback_im <= result.im))


@pytest.mark.parametrize("rule", BASELINE_NAMES)
def test_inputs_are_not_mutated(random_book: tuple[Book, MarketState], rule: str) -> None:
    book, state = random_book
    before = (book.pos_quantity.copy(), book.pos_instrument.copy(), state.forward.copy())
    baseline_margin(book, state, BaselineParams(), rule)
    np.testing.assert_array_equal(book.pos_quantity, before[0])
    np.testing.assert_array_equal(book.pos_instrument, before[1])
    np.testing.assert_array_equal(state.forward, before[2])


# ---------------------------------------------------------------------------------------------------
# (d) The API and the CLI on examples/
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", BASELINE_NAMES)
def test_api_builds_the_state_as_compute_margin(rule: str) -> None:
    book, market = solvent.load_portfolio(PORTFOLIO), solvent.load_market(MARKET)
    params = MarginParams()
    state = build_market_state(list(book.instruments), market, params)
    floor = params.volatility.time_floor_days / params.days_per_year
    expected = baseline_margin(book, state, BaselineParams(), rule, unit_value=option_unit_values(state, floor))
    got = baseline_margin_for(book, market, rule)
    assert got.rule == rule
    np.testing.assert_array_equal(got.im, expected.im)
    np.testing.assert_array_equal(got.mm, expected.mm)


def margin_cli(*extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["margin", "--portfolio", PORTFOLIO, "--market", MARKET, *extra])
    return result.exit_code, result.output


def test_cli_baseline_table() -> None:
    code, output = margin_cli("--baseline", "dydx")
    assert code == 0, output
    assert "multi-factor IM" in output and "dydx IM" in output and "dydx MM" in output and "ratio" in output
    cells = [line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│")]
    assert cells == ["alice", "alice/eth-short", "bob", "carol", "dave", "erin"]
    assert "note: 3 net option position(s) margined under the static rule" in output


def test_cli_baseline_json_equals_the_library() -> None:
    code, output = margin_cli("--baseline", "dydx", "--format", "json")
    assert code == 0, output
    document = json.loads(output)
    book, market = solvent.load_portfolio(PORTFOLIO), solvent.load_market(MARKET)
    baseline = baseline_margin_for(book, market, "dydx")
    model = solvent.compute_margin(book, market)
    assert document["schema"] == BASELINE_SCHEMA and document["rule"] == "dydx"
    assert [r["account"] for r in document["accounts"]] == list(book.account_ids)
    assert [r["im"] for r in document["accounts"]] == baseline.im.tolist()
    assert [r["mm"] for r in document["accounts"]] == baseline.mm.tolist()
    assert [r["im_multifactor"] for r in document["accounts"]] == model.im.tolist()
    for record in document["accounts"]:
        expected = None if record["im_multifactor"] == 0.0 else record["im"] / record["im_multifactor"]
        assert record["ratio"] == expected


def test_cli_baseline_json_to_file(tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    code, output = margin_cli("--baseline", "static", "--format", "json", "--out", str(out))
    assert code == 0, output
    assert json.loads(out.read_text())["rule"] == "static"


@pytest.mark.parametrize(
    "extra",
    [
        ("--baseline", "binance"),
        ("--baseline", "dydx", "--explain", "carol"),
        ("--baseline", "dydx", "--format", "parquet"),
    ],
)
def test_cli_baseline_usage_errors(extra: tuple[str, ...]) -> None:
    code, output = margin_cli(*extra)
    assert code == 2, output


# ---------------------------------------------------------------------------------------------------
# The slow twin: one account at a time, one net position at a time, scalar kernel calls
# ---------------------------------------------------------------------------------------------------


def loop_baseline(book: Book, state: MarketState, params: BaselineParams, rule: str) -> tuple[np.ndarray, np.ndarray]:
    table = state.instruments
    values = option_unit_values(state)
    nets = []
    for n in range(book.n_accounts):
        net: dict[int, float] = {}
        for p in range(int(book.pos_offsets[n]), int(book.pos_offsets[n + 1])):
            i = int(book.pos_instrument[p])
            net[i] = net.get(i, 0.0) + float(book.pos_quantity[p])
        nets.append(net)
    long_notional: dict[int, float] = {}
    deposits: dict[int, float] = {}
    for net in nets:
        for i, q in net.items():
            size, price, a = q * table.contract_size[i], float(state.forward[i]), int(table.asset[i])
            if size > 0.0 and table.kind[i] != OPTION:
                long_notional[i] = long_notional.get(i, 0.0) + size * price
                if table.kind[i] == SPOT:
                    deposits[a] = deposits.get(a, 0.0) + size * price
    im, mm = np.zeros(book.n_accounts), np.zeros(book.n_accounts)
    for n, net in enumerate(nets):
        for i, q in net.items():
            asset = state.assets[int(table.asset[i])]
            size, price = q * float(table.contract_size[i]), float(state.forward[i])
            option = table.kind[i] == OPTION
            covered = rule == "static" or (option if rule == "deribit" else not option)
            if not covered or rule == "static":
                fractions = params.static.assets.get(asset, params.static.default)
                exposure = max(-size, 0.0) * price if option else abs(size) * price
                pair = static.requirements(
                    exposure, fractions.initial_margin_fraction, fractions.maintenance_margin_fraction
                )
            elif rule == "dydx":
                tier = params.dydx.tier_index(params.dydx_asset_tiers.get(asset, params.dydx_default_tier))
                pair = dydx.requirements(size * price, tier, long_notional.get(i, 0.0), params.dydx)
            elif rule == "synthetix":
                pair = synthetix.requirements(size, price, params.synthetix_markets.get(asset, params.synthetix))
            elif rule == "drift" and table.kind[i] != SPOT:
                pair = drift.perp_requirements(size, price, params.drift_perp_markets.get(asset, params.drift.perp))
            elif rule == "drift":
                spot = params.drift_spot_markets.get(asset, params.drift.spot)
                value = abs(size) * price
                if size > 0.0:
                    w_im, w_mm = drift.spot_asset_weights(size, spot, deposits.get(int(table.asset[i]), 0.0))
                    pair = (value * (1.0 - w_im), value * (1.0 - w_mm))
                else:
                    l_im, l_mm = drift.spot_liability_weights(size, spot)
                    pair = (value * (l_im - 1.0), value * (l_mm - 1.0))
            else:
                mark = float(values[i]) / float(table.contract_size[i]) / price
                im_coin, mm_coin = deribit.option_requirements(
                    size, bool(table.is_call[i]), float(table.strike[i]), price, mark, params.deribit
                )
                pair = (im_coin * price, mm_coin * price)
            im[n] += float(pair[0])
            mm[n] += float(pair[1])
    return im, mm
