"""The venues' own rules (solvent.baselines) reproduce each venue's documented numbers.

Sources are those of REFERENCES.md, "Venue rules (baselines)"; every reference test names its own in
its docstring. Numbers are hand-computed from the cited formula; the tolerance is float64 round-off
(1e-12) unless a row says otherwise. Below the reference tables: parameter checks, the closed set of
rule names, and hypothesis properties (requirements >= 0, IM >= MM, monotone in size and open
interest, the vectorised kernels equal to the plain-Python twins at the bottom of this file, inputs
never mutated).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.baselines import (
    BASELINE_NAMES,
    RULES,
    BaselineParams,
    DeribitStandardParams,
    DriftPerpParams,
    DriftSpotParams,
    DydxParams,
    LiquidationLimits,
    LiquidityTier,
    StaticFractions,
    StaticParams,
    SynthetixParams,
    deribit,
    drift,
    dydx,
    rule,
    static,
    sum_by_account,
    synthetix,
)
from solvent.errors import InputError
from solvent.formats.errors import decode_json

TOL = 1e-12

# ---------------------------------------------------------------------------------------------------
# dYdX v4
# ---------------------------------------------------------------------------------------------------

DYDX = DydxParams()


def dydx_imf(tier_name: str, oi: float) -> float:
    tier = DYDX.tiers[DYDX.tier_index(tier_name)]
    return float(
        dydx.adjusted_imf(tier.initial_margin_fraction, oi, tier.open_interest_lower_cap, tier.open_interest_upper_cap)
    )


def test_dydx_small_cap_at_35m_open_notional() -> None:
    """Small-Cap (IMF 10%, MMF 5%, caps $20M / $50M) at $35M open notional: IMF 0.55, MMF 0.05.

    dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier.go (GetInitialMarginQuoteQuantums):
    0.10 + (1 - 0.10) x (35 - 20) / (50 - 20) = 0.55; protocol/x/perpetuals/lib/lib.go: maintenance from
    the base IMF, 0.10 x 50% = 0.05, whatever the open interest.
    """
    small = DYDX.tier_index("Small-Cap")
    im, mm = dydx.requirements(1.0, small, 35e6, DYDX)
    assert float(im) == pytest.approx(0.55, abs=TOL)
    assert float(mm) == pytest.approx(0.05, abs=TOL)


@pytest.mark.parametrize(
    ("name", "imf", "mmf", "lower", "upper"),
    [
        ("Large-Cap", 0.02, 0.012, 0.0, 0.0),
        ("Mid-Cap", 0.05, 0.03, 40e6, 100e6),
        ("Small-Cap", 0.10, 0.05, 20e6, 50e6),
        ("Long-Tail", 0.20, 0.10, 5e6, 10e6),
    ],
)
def test_dydx_genesis_tiers(name: str, imf: float, mmf: float, lower: float, upper: float) -> None:
    """The four tiers of dydxprotocol/v4-chain protocol/testing/genesis.sh (the genesis with OI caps).

    Large-Cap has caps 0 / 0 there ("OIMF doesn't apply to Large-Cap"): no ramp.
    """
    tier = DYDX.tiers[DYDX.tier_index(name)]
    assert tier.initial_margin_fraction == imf
    assert tier.maintenance_margin_fraction == pytest.approx(mmf, abs=TOL)
    assert (tier.open_interest_lower_cap, tier.open_interest_upper_cap) == (lower, upper)


@pytest.mark.parametrize(
    ("name", "oi", "expected"),
    [
        # Large-Cap: no caps, so no ramp at any open interest.
        ("Large-Cap", 0.0, 0.02),
        ("Large-Cap", 5e9, 0.02),
        # Mid-Cap 5%, $40M-$100M: 0.05 + 0.95 x (OI - 40) / 60.
        ("Mid-Cap", 10e6, 0.05),
        ("Mid-Cap", 40e6, 0.05),
        ("Mid-Cap", 70e6, 0.525),
        ("Mid-Cap", 85e6, 0.7625),
        ("Mid-Cap", 100e6, 1.0),
        ("Mid-Cap", 250e6, 1.0),
        # Small-Cap 10%, $20M-$50M: 0.10 + 0.90 x (OI - 20) / 30.
        ("Small-Cap", 0.0, 0.10),
        ("Small-Cap", 20e6, 0.10),
        ("Small-Cap", 26e6, 0.28),
        ("Small-Cap", 35e6, 0.55),
        ("Small-Cap", 50e6, 1.0),
        ("Small-Cap", 80e6, 1.0),
        # Long-Tail 20%, $5M-$10M: 0.20 + 0.80 x (OI - 5) / 5.
        ("Long-Tail", 4e6, 0.20),
        ("Long-Tail", 6e6, 0.36),
        ("Long-Tail", 7.5e6, 0.60),
        ("Long-Tail", 10e6, 1.0),
        ("Long-Tail", 12e6, 1.0),
    ],
)
def test_dydx_open_interest_ramp(name: str, oi: float, expected: float) -> None:
    """IMF = base + (1 - base) x (OI - lower) / (upper - lower), clamped to [base, 1]; values by hand.

    dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier.go, GetInitialMarginQuoteQuantums.
    """
    assert dydx_imf(name, oi) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("name", ["Large-Cap", "Mid-Cap", "Small-Cap", "Long-Tail"])
@pytest.mark.parametrize("oi", [0.0, 30e6, 1e9])
def test_dydx_maintenance_ignores_open_interest(name: str, oi: float) -> None:
    """MM = |notional| x base IMF x maintenance fraction at any open interest.

    dydxprotocol/v4-chain protocol/x/perpetuals/lib/lib.go, GetMarginRequirementsInQuoteQuantums: the
    maintenance requirement is computed from the base initial requirement, before the OI ramp.
    """
    k = DYDX.tier_index(name)
    _, mm = dydx.requirements(-2_000_000.0, k, oi, DYDX)
    assert float(mm) == pytest.approx(2_000_000.0 * DYDX.tiers[k].maintenance_margin_fraction, rel=TOL)


def test_dydx_equal_caps_are_a_step() -> None:
    """lower == upper > 0: base IMF up to the cap, 1 from the cap on (dYdX tests OI >= upper first).

    dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier.go, GetInitialMarginQuoteQuantums.
    """
    got = dydx.adjusted_imf(0.1, [9e6, 10e6, 11e6], 10e6, 10e6)
    np.testing.assert_array_equal(got, [0.1, 1.0, 1.0])


def test_dydx_liquidation_limits() -> None:
    """Per-block limits: 10% of a position (minimum $1k), $100k notional, $1M insurance-fund loss.

    dydxprotocol/v4-chain protocol/x/clob/keeper/liquidations.go, GetMaxAndMinPositionNotionalLiquidatable:
    min = min($1,000, |n|), max = max(10% x |n|, min).
    """
    limits = LiquidationLimits()
    assert limits.max_position_portion == 0.10
    assert limits.min_position_notional == 1_000.0
    assert limits.max_notional_per_block == 100_000.0
    assert limits.max_insurance_lost_per_block == 1_000_000.0
    low, high = dydx.position_liquidation_bounds([500.0, -5_000.0, 20_000.0, 5e6], limits)
    np.testing.assert_allclose(low, [500.0, 1_000.0, 1_000.0, 1_000.0], rtol=TOL)
    np.testing.assert_allclose(high, [500.0, 1_000.0, 2_000.0, 500_000.0], rtol=TOL)


def test_dydx_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="tier: must be in"):
        dydx.requirements([1.0, 1.0], [0, 4], [0.0, 0.0], DYDX)
    with pytest.raises(ValueError, match="tier: must be integer"):
        dydx.requirements(1.0, 1.5, 0.0, DYDX)
    with pytest.raises(ValueError, match="oi_notional: must be finite and >= 0"):
        dydx.requirements(1.0, 0, -1.0, DYDX)
    with pytest.raises(ValueError, match="notional: must be finite, got nan"):
        dydx.requirements(float("nan"), 0, 0.0, DYDX)
    with pytest.raises(ValueError, match="open_interest_lower_cap: must not exceed"):
        LiquidityTier(
            name="x",
            initial_margin_fraction=0.1,
            maintenance_fraction=0.5,
            open_interest_lower_cap=5e6,
            open_interest_upper_cap=1e6,
        )
    with pytest.raises(ValueError, match="unknown liquidity tier 'Mega-Cap'"):
        DYDX.tier_index("Mega-Cap")


# ---------------------------------------------------------------------------------------------------
# Synthetix v3 perps
# ---------------------------------------------------------------------------------------------------

SNX = SynthetixParams()


def test_synthetix_btc_parameters() -> None:
    """Synthetixio/synthetix-deployments tomls/omnibus-base-mainnet-andromeda/perps/btc.toml."""
    assert SNX.skew_scale == 50_000.0
    assert SNX.initial_margin_ratio == 13.35
    assert SNX.maintenance_margin_scalar == 0.28
    assert SNX.minimum_initial_margin_ratio == 0.02
    assert SNX.minimum_position_margin == 50.0


@pytest.mark.parametrize(
    ("size", "imr", "mmr"),
    [
        (10.0, 0.02267, 0.0063476),  # 10 / 50,000 x 13.35 + 0.02; x 0.28
        (-10.0, 0.02267, 0.0063476),  # a short is margined on |size|
        (500.0, 0.1535, 0.04298),  # 500 / 50,000 x 13.35 + 0.02; x 0.28
        (0.0, 0.0, 0.0),  # the contract returns zeros for a zero size
    ],
)
def test_synthetix_btc_margin_ratios(size: float, imr: float, mmr: float) -> None:
    """IMR = |size| / skewScale x initialMarginRatio + minimumInitialMarginRatio, MMR = IMR x scalar.

    Synthetixio/synthetix-v3 markets/perps-market/contracts/storage/PerpsMarketConfiguration.sol,
    calculateRequiredMargins, with the BTC parameters of btc.toml: 10 BTC -> IMR 2.267%; 500 BTC -> IMR
    15.35%, MMR 4.298%.
    """
    got_imr, got_mmr = synthetix.margin_ratios(size, SNX)
    assert float(got_imr) == pytest.approx(imr, abs=TOL)
    assert float(got_mmr) == pytest.approx(mmr, abs=TOL)


def test_synthetix_btc_500_requirements_add_minimum_position_margin() -> None:
    """500 BTC at $60,000: IM = 30M x 15.35% + $50, MM = 30M x 4.298% + $50.

    Synthetixio/synthetix-v3 PerpsMarketConfiguration.sol, calculateRequiredMargins: the contract adds
    minimumPositionMargin to both the initial and the maintenance margin.
    """
    im, mm = synthetix.requirements(500.0, 60_000.0, SNX)
    assert float(im) == pytest.approx(4_605_050.0, rel=TOL)
    assert float(mm) == pytest.approx(1_289_450.0, rel=TOL)
    zero_im, zero_mm = synthetix.requirements(0.0, 60_000.0, SNX)
    assert (float(zero_im), float(zero_mm)) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------------
# Drift v2
# ---------------------------------------------------------------------------------------------------


def test_drift_perp_size_premium_10000_units() -> None:
    """MR 10%, imf 0.0005, 10,000 units: max(0.10, 0.8 x 0.10 + 0.0005 x sqrt(10,000)) = 13%.

    drift-labs/protocol-v2 programs/drift/src/math/margin.rs, calculate_size_premium_liability_weight.
    """
    ratio = drift.size_premium(0.10, 0.0005, 10_000.0)
    assert float(ratio) == pytest.approx(0.13, abs=TOL)
    initial, maintenance = drift.perp_margin_ratios(-10_000.0, DriftPerpParams())
    assert float(initial) == pytest.approx(0.13, abs=TOL)
    assert float(maintenance) == pytest.approx(0.09, abs=TOL)  # max(0.05, 0.04 + 0.05)
    im, mm = drift.perp_requirements(-10_000.0, 150.0, DriftPerpParams())
    assert float(im) == pytest.approx(195_000.0, rel=TOL)  # 10,000 x $150 x 13%
    assert float(mm) == pytest.approx(135_000.0, rel=TOL)  # 10,000 x $150 x 9%


def test_drift_perp_small_size_keeps_base_ratio() -> None:
    """100 units: 0.08 + 0.0005 x 10 = 0.085 < 0.10, so the base ratio holds (margin.rs)."""
    assert float(drift.size_premium(0.10, 0.0005, 100.0)) == 0.10


def test_drift_spot_asset_weight_2000_sol() -> None:
    """2,000 SOL, imf 0.003: size term 1.1 / (1 + 0.003 x sqrt(2,000)) = 0.9699, so AW stays 0.80.

    drift-labs/protocol-v2 programs/drift/src/math/margin.rs, calculate_size_discount_asset_weight
    (on chain the integer arithmetic truncates this to 9698 / 10^4; the formula's value is 0.969877).
    """
    size_term = float(drift.size_discount(1.1, 0.003, 2_000.0))
    assert round(size_term, 4) == 0.9699
    initial, maintenance = drift.spot_asset_weights(2_000.0, DriftSpotParams(), 0.0)
    assert float(initial) == 0.80
    assert float(maintenance) == 0.90


def test_drift_spot_large_deposit_is_discounted() -> None:
    """1,000,000 SOL: 1.1 / (1 + 0.003 x 1,000) = 0.275 < 0.80 (margin.rs, size discount)."""
    initial, maintenance = drift.spot_asset_weights(1e6, DriftSpotParams(), 0.0)
    assert float(initial) == pytest.approx(0.275, abs=TOL)
    assert float(maintenance) == pytest.approx(0.275, abs=TOL)


def test_drift_scaled_initial_asset_weight() -> None:
    """Initial weight x start / deposits once the market's deposits pass the start.

    drift-labs/protocol-v2 programs/drift/src/state/spot_market.rs, get_scaled_initial_asset_weight.
    """
    got = drift.scaled_initial_asset_weight(0.8, 10e6, [0.0, 5e6, 10e6, 20e6])
    np.testing.assert_allclose(got, [0.8, 0.8, 0.8, 0.4], rtol=TOL)
    np.testing.assert_array_equal(drift.scaled_initial_asset_weight(0.8, 0.0, 1e12), 0.8)


def test_drift_spot_liability_weight_premium() -> None:
    """Borrow of 10,000 tokens, LW 1.2 / 1.1, imf 0.003: max(1.2, 0.96 + 0.3) = 1.26; max(1.1, 0.88 + 0.3) = 1.18.

    drift-labs/protocol-v2 programs/drift/src/state/spot_market.rs, get_liability_weight (size premium
    of margin.rs on both the initial and the maintenance weight).
    """
    initial, maintenance = drift.spot_liability_weights(10_000.0, DriftSpotParams())
    assert float(initial) == pytest.approx(1.26, abs=TOL)
    assert float(maintenance) == pytest.approx(1.18, abs=TOL)


# ---------------------------------------------------------------------------------------------------
# Deribit standard margin (inverse options, BTC per contract)
# ---------------------------------------------------------------------------------------------------

DERIBIT = DeribitStandardParams()


@pytest.mark.parametrize(
    ("case", "strike", "underlying", "mark", "im", "mm"),
    [
        # max(0.15 - 10,000 / 100,000, 0.10) + 0.01 = 0.11; 0.075 + 0.01 = 0.085.
        ("the issue's OTM call", 110_000.0, 100_000.0, 0.01, 0.11, 0.085),
        # 0.15 - 0.05 = 0.10 exactly: at the floor.
        ("OTM call at the floor", 105_000.0, 100_000.0, 0.02, 0.12, 0.095),
        # 0.15 - 1.00 < 0.10: the floor.
        ("deep OTM call", 200_000.0, 100_000.0, 0.0001, 0.1001, 0.0751),
        # OTM 0: 0.15 + 0.12.
        ("ITM call", 90_000.0, 100_000.0, 0.12, 0.27, 0.195),
    ],
)
def test_deribit_short_call(case: str, strike: float, underlying: float, mark: float, im: float, mm: float) -> None:
    """Short call IM = max(0.15 - OTM / underlying, 0.10) + mark, MM = 0.075 + mark (BTC per contract).

    Deribit's published margin documentation (standard margin, inverse options): underlying 100,000,
    strike 110,000, mark 0.01 -> IM 0.11, MM 0.085.
    """
    got_im, got_mm = deribit.short_call_margin(strike, underlying, mark, DERIBIT)
    assert float(got_im) == pytest.approx(im, abs=TOL), case
    assert float(got_mm) == pytest.approx(mm, abs=TOL), case


@pytest.mark.parametrize(
    ("case", "strike", "underlying", "mark", "im", "mm"),
    [
        # OTM 10,000: max(0.05, 0.10) + 0.01 = 0.11; max(0.075, 0.00075) + 0.01 = 0.085.
        ("OTM put", 90_000.0, 100_000.0, 0.01, 0.11, 0.085),
        # OTM 0: 0.15 + 0.12 = 0.27; 0.075 + 0.12 = 0.195.
        ("ITM put", 110_000.0, 100_000.0, 0.12, 0.27, 0.195),
        # mark 3 BTC: MM = 0.075 x 3 + 3 = 3.225 > 0.15 + 3, so IM = MM.
        ("deep ITM put, IM = MM", 200_000.0, 50_000.0, 3.0, 3.225, 3.225),
    ],
)
def test_deribit_short_put(case: str, strike: float, underlying: float, mark: float, im: float, mm: float) -> None:
    """Short put IM = max(max(0.15 - OTM / U, 0.10) + mark, MM), MM = max(0.075, 0.075 x mark) + mark.

    Deribit's published margin documentation (standard margin, inverse options), OTM = max(U - K, 0).
    """
    got_im, got_mm = deribit.short_put_margin(strike, underlying, mark, DERIBIT)
    assert float(got_im) == pytest.approx(im, abs=TOL), case
    assert float(got_mm) == pytest.approx(mm, abs=TOL), case


def test_deribit_positions() -> None:
    """Longs pay nothing (premium paid up front); shorts pay |quantity| x the per-contract margin."""
    im, mm = deribit.option_requirements(
        quantity=[2.0, -2.0, -0.5, 0.0],
        is_call=[True, True, False, False],
        strike=[110_000.0, 110_000.0, 90_000.0, 90_000.0],
        underlying=100_000.0,
        mark=0.01,
        params=DERIBIT,
    )
    np.testing.assert_allclose(im, [0.0, 0.22, 0.055, 0.0], atol=TOL)
    np.testing.assert_allclose(mm, [0.0, 0.17, 0.0425, 0.0], atol=TOL)


def test_deribit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="underlying: must be > 0"):
        deribit.short_call_margin(100.0, 0.0, 0.01, DERIBIT)
    with pytest.raises(ValueError, match="mark: must be finite and >= 0"):
        deribit.short_put_margin(100.0, 100.0, -0.01, DERIBIT)
    with pytest.raises(ValueError, match="maintenance: must be in"):
        DeribitStandardParams(maintenance=0.2)


# ---------------------------------------------------------------------------------------------------
# Static leverage
# ---------------------------------------------------------------------------------------------------


def test_static_rule() -> None:
    """IM = |notional| x IMF, MM = |notional| x MMF; solvent's default 10% / 5%, overridable per asset."""
    params = StaticParams(
        assets={"DOGE": StaticFractions(initial_margin_fraction=0.25, maintenance_margin_fraction=0.125)}
    )
    imf, mmf = params.fractions(["BTC", "DOGE"])
    np.testing.assert_array_equal(imf, [0.10, 0.25])
    np.testing.assert_array_equal(mmf, [0.05, 0.125])
    im, mm = static.requirements([-1_000.0, 400.0], imf, mmf)
    np.testing.assert_allclose(im, [100.0, 100.0], rtol=TOL)
    np.testing.assert_allclose(mm, [50.0, 50.0], rtol=TOL)
    with pytest.raises(ValueError, match="maintenance_margin_fraction: must not exceed"):
        StaticFractions(initial_margin_fraction=0.05, maintenance_margin_fraction=0.10)
    with pytest.raises(ValueError, match="imf, mmf"):
        static.requirements(1.0, 0.05, 0.10)


# ---------------------------------------------------------------------------------------------------
# The closed set of rule names; parameters round-trip and fail closed
# ---------------------------------------------------------------------------------------------------


def test_rule_names_are_closed() -> None:
    assert BASELINE_NAMES == ("static", "dydx", "synthetix", "drift", "deribit")
    assert tuple(RULES) == BASELINE_NAMES
    assert all(RULES[name].name == name for name in BASELINE_NAMES)
    assert rule("dydx").params is DydxParams
    with pytest.raises(ValueError, match="unknown rule 'binance'; choose one of static, dydx"):
        rule("binance")


def test_baseline_params_round_trip_json() -> None:
    params = BaselineParams(rule="synthetix", synthetix=SynthetixParams(skew_scale=1_000.0))
    again = decode_json(msgspec.json.encode(params), BaselineParams, "baselines.json")
    assert again == params
    assert again.selected() == SynthetixParams(skew_scale=1_000.0)
    assert decode_json(b"{}", BaselineParams, "baselines.json") == BaselineParams()


@pytest.mark.parametrize(
    ("document", "where", "message"),
    [
        (b'{"rule": "binance"}', "rule", "Invalid enum value 'binance'"),
        (b'{"dydx": {"tiers": [], "typo": 1}}', "dydx.typo", "unknown field"),
        (b'{"static": {"default": {"initial_margin_fraction": 1.5}}}', "static.default.initial_margin_fraction", ""),
        (
            b'{"dydx": {"tiers": [{"name": "x", "initial_margin_fraction": 0.1, "maintenance_fraction": 0.5,'
            b' "open_interest_lower_cap": 9, "open_interest_upper_cap": 1}]}}',
            "dydx.tiers[0].open_interest_lower_cap",
            "must not exceed",
        ),
    ],
)
def test_bad_params_are_input_errors(document: bytes, where: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        decode_json(document, BaselineParams, "baselines.json")
    assert caught.value.where == where
    assert message in caught.value.message


def test_sum_by_account() -> None:
    """Per-account sums in CSR order; an account without positions owes 0."""
    got = sum_by_account([1.0, 2.0, 3.0, 4.0], [0, 2, 2, 4])
    np.testing.assert_array_equal(got, [3.0, 0.0, 7.0])
    with pytest.raises(ValueError, match="values: expected shape"):
        sum_by_account([1.0], [0, 2])


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------

sizes = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_subnormal=False)
magnitudes = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_subnormal=False)
open_interest = st.floats(min_value=0.0, max_value=2e8, allow_nan=False, allow_subnormal=False)
prices = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_subnormal=False)
tiers = st.integers(min_value=0, max_value=len(DYDX.tiers) - 1)


@settings(deadline=None)
@given(st.lists(st.tuples(sizes, tiers, open_interest), min_size=1, max_size=30))
def test_dydx_properties(rows: list[tuple[float, int, float]]) -> None:
    notional, tier, oi = (np.array(c) for c in zip(*rows, strict=True))
    im, mm = dydx.requirements(notional, tier, oi, DYDX)
    assert np.all(mm >= 0.0)
    assert np.all(im >= mm)
    twin = [dydx_twin(n, DYDX.tiers[k], o) for n, k, o in rows]
    np.testing.assert_allclose(im, [t[0] for t in twin], rtol=TOL, atol=0.0)
    np.testing.assert_allclose(mm, [t[1] for t in twin], rtol=TOL, atol=0.0)


@settings(deadline=None)
@given(tiers, magnitudes, magnitudes, open_interest, open_interest)
def test_dydx_monotone_in_size_and_open_interest(k: int, n1: float, n2: float, oi1: float, oi2: float) -> None:
    (n1, n2), (oi1, oi2) = sorted((n1, n2)), sorted((oi1, oi2))
    im_small, mm_small = dydx.requirements([n1, n2, n1], k, [oi1, oi1, oi2], DYDX)
    assert im_small[0] <= im_small[1]  # larger position, same OI
    assert im_small[0] <= im_small[2]  # same position, larger OI
    assert mm_small[0] <= mm_small[1]
    assert mm_small[0] == mm_small[2]  # maintenance ignores OI


@settings(deadline=None)
@given(st.lists(st.tuples(sizes, prices), min_size=1, max_size=30))
def test_synthetix_properties(rows: list[tuple[float, float]]) -> None:
    size, price = (np.array(c) for c in zip(*rows, strict=True))
    im, mm = synthetix.requirements(size, price, SNX)
    assert np.all(mm >= 0.0)
    assert np.all(im >= mm)
    twin = [synthetix_twin(s, p, SNX) for s, p in rows]
    np.testing.assert_allclose(im, [t[0] for t in twin], rtol=TOL, atol=0.0)
    np.testing.assert_allclose(mm, [t[1] for t in twin], rtol=TOL, atol=0.0)


@settings(deadline=None)
@given(magnitudes, magnitudes, prices)
def test_synthetix_monotone_in_size(s1: float, s2: float, price: float) -> None:
    im, mm = synthetix.requirements(sorted((s1, s2)), price, SNX)
    assert im[0] <= im[1]
    assert mm[0] <= mm[1]


@settings(deadline=None)
@given(st.lists(st.tuples(sizes, prices), min_size=1, max_size=30))
def test_drift_perp_properties(rows: list[tuple[float, float]]) -> None:
    size, price = (np.array(c) for c in zip(*rows, strict=True))
    params = DriftPerpParams()
    im, mm = drift.perp_requirements(size, price, params)
    assert np.all(mm >= 0.0)
    assert np.all(im >= mm)
    twin = [drift_perp_twin(s, p, params) for s, p in rows]
    np.testing.assert_allclose(im, [t[0] for t in twin], rtol=TOL, atol=0.0)
    np.testing.assert_allclose(mm, [t[1] for t in twin], rtol=TOL, atol=0.0)


@settings(deadline=None)
@given(magnitudes, magnitudes, prices)
def test_drift_monotone_in_size(s1: float, s2: float, price: float) -> None:
    small, large = sorted((s1, s2))
    im, mm = drift.perp_requirements([small, large], price, DriftPerpParams())
    assert im[0] <= im[1]
    assert mm[0] <= mm[1]
    aw_initial, aw_maintenance = drift.spot_asset_weights([small, large], DriftSpotParams(), 0.0)
    assert 0.0 <= aw_initial[1] <= aw_initial[0] <= 0.80
    assert 0.0 <= aw_maintenance[1] <= aw_maintenance[0] <= 0.90
    assert np.all(aw_initial <= aw_maintenance)
    lw_initial, lw_maintenance = drift.spot_liability_weights([small, large], DriftSpotParams())
    assert 1.20 <= lw_initial[0] <= lw_initial[1]
    assert 1.10 <= lw_maintenance[0] <= lw_maintenance[1]
    twin = [drift_discount_twin(0.80, 0.003, s) for s in (small, large)]
    np.testing.assert_allclose(aw_initial, twin, rtol=TOL, atol=0.0)


options = st.tuples(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_subnormal=False),  # quantity
    st.booleans(),  # is_call
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_subnormal=False),  # strike
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_subnormal=False),  # underlying
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_subnormal=False),  # mark
)


@settings(deadline=None)
@given(st.lists(options, min_size=1, max_size=30))
def test_deribit_properties(rows: list[tuple[float, bool, float, float, float]]) -> None:
    quantity, is_call, strike, underlying, mark = (np.array(c) for c in zip(*rows, strict=True))
    im, mm = deribit.option_requirements(quantity, is_call, strike, underlying, mark, DERIBIT)
    assert np.all(mm >= 0.0)
    assert np.all(im >= mm)
    twin = [deribit_twin(*row, DERIBIT) for row in rows]
    np.testing.assert_allclose(im, [t[0] for t in twin], rtol=TOL, atol=0.0)
    np.testing.assert_allclose(mm, [t[1] for t in twin], rtol=TOL, atol=0.0)


@settings(deadline=None)
@given(options, st.floats(min_value=1.0, max_value=10.0))
def test_deribit_monotone_in_size(row: tuple[float, bool, float, float, float], factor: float) -> None:
    quantity, is_call, strike, underlying, mark = row
    im, mm = deribit.option_requirements([quantity, quantity * factor], is_call, strike, underlying, mark, DERIBIT)
    assert im[0] <= im[1]
    assert mm[0] <= mm[1]


@settings(deadline=None)
@given(st.lists(sizes, min_size=1, max_size=30), st.floats(0.01, 1.0), st.floats(0.0, 1.0, allow_subnormal=False))
def test_static_properties(notional: list[float], imf: float, share: float) -> None:
    im, mm = static.requirements(notional, imf, imf * share)
    assert np.all(mm >= 0.0)
    assert np.all(im >= mm)
    np.testing.assert_allclose(im, [abs(n) * imf for n in notional], rtol=TOL, atol=0.0)


def test_inputs_are_not_mutated() -> None:
    notional = np.array([-1e6, 2e6, 3e7])
    tier = np.array([0, 2, 3])
    oi = np.array([1e6, 35e6, 7e6])
    strike = np.array([90_000.0, 110_000.0, 130_000.0])
    kept = [a.copy() for a in (notional, tier, oi, strike)]
    dydx.requirements(notional, tier, oi, DYDX)
    synthetix.requirements(notional, oi, SNX)
    drift.perp_requirements(notional, oi, DriftPerpParams())
    drift.spot_asset_weights(notional, DriftSpotParams(), oi)
    deribit.option_requirements(-notional, True, strike, 100_000.0, 0.01, DERIBIT)
    static.requirements(notional, 0.1, 0.05)
    sum_by_account(notional, [0, 1, 3])
    for before, after in zip(kept, (notional, tier, oi, strike), strict=True):
        np.testing.assert_array_equal(before, after)


# ---------------------------------------------------------------------------------------------------
# Plain-Python twins: each rule written out once more, one position at a time, from its source
# ---------------------------------------------------------------------------------------------------


def dydx_twin(notional: float, tier: LiquidityTier, oi: float) -> tuple[float, float]:
    base, lower, upper = tier.initial_margin_fraction, tier.open_interest_lower_cap, tier.open_interest_upper_cap
    if upper != 0.0 and oi >= upper:
        imf = 1.0
    elif upper == 0.0 or oi <= lower:
        imf = base
    else:
        imf = min(base + (1.0 - base) * (oi - lower) / (upper - lower), 1.0)
    return abs(notional) * imf, abs(notional) * base * tier.maintenance_fraction


def synthetix_twin(size: float, price: float, p: SynthetixParams) -> tuple[float, float]:
    if size == 0.0:
        return 0.0, 0.0
    imr = abs(size) / p.skew_scale * p.initial_margin_ratio + p.minimum_initial_margin_ratio
    mmr = imr * p.maintenance_margin_scalar
    notional = abs(size) * price
    return notional * imr + p.minimum_position_margin, notional * mmr + p.minimum_position_margin


def drift_premium_twin(weight: float, imf: float, size: float) -> float:
    return max(weight, 0.8 * weight + imf * math.sqrt(abs(size)))


def drift_discount_twin(weight: float, imf: float, size: float) -> float:
    return min(weight, 1.1 / (1.0 + imf * math.sqrt(abs(size))))


def drift_perp_twin(size: float, price: float, p: DriftPerpParams) -> tuple[float, float]:
    notional = abs(size) * price
    return (
        notional * drift_premium_twin(p.margin_ratio_initial, p.imf_factor, size),
        notional * drift_premium_twin(p.margin_ratio_maintenance, p.imf_factor, size),
    )


def deribit_twin(
    quantity: float, is_call: bool, strike: float, underlying: float, mark: float, p: DeribitStandardParams
) -> tuple[float, float]:
    if quantity >= 0.0:
        return 0.0, 0.0
    if is_call:
        otm = max(strike - underlying, 0.0)
        im = max(p.initial_base - otm / underlying, p.initial_floor) + mark
        mm = p.maintenance + mark
    else:
        otm = max(underlying - strike, 0.0)
        mm = max(p.maintenance, p.maintenance * mark) + mark
        im = max(max(p.initial_base - otm / underlying, p.initial_floor) + mark, mm)
    return -quantity * im, -quantity * mm
