"""Oracle aggregation: manipulation replays, bad prints, staleness, bad input, properties and a slow twin.

Replays (figures from ../shared/REFERENCES.md, "Crash episodes", and the acceptance lines of issue 3):
- Mango Markets, 11 October 2022: MNGO went from $0.038 to $0.91 on the oracle's sources within minutes
  (Mango's post-mortem and Solidus Labs' account of the attack); about $114M was then borrowed against
  the inflated collateral.
- 12 March 2020 ("Black Thursday"): ETH printed a low of 26 on one venue while others traded near 110
  (Bitstamp ETH daily candle and MakerDAO's Black Thursday post-mortem for the ~110 level).
"""

from __future__ import annotations

import itertools
import math
import statistics

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.errors import InputError
from solvent.formats.errors import decode_json
from solvent.market.oracle import (
    MAD_SCALE,
    OracleParams,
    OracleResult,
    OracleStatus,
    Rejection,
    aggregate,
    classify,
    pessimistic_prices,
    twap,
    validate_quotes,
)

NOW = 1_665_527_000.0  # 11 October 2022, evening UTC: the replay clock (seconds since the epoch)
PARAMS = OracleParams()


def _one(
    prices: list[float],
    *,
    confidences: list[float] | None = None,
    ages: list[float] | None = None,
    reference: float = math.nan,
    params: OracleParams = PARAMS,
    vol: float | None = None,
) -> OracleResult:
    """Aggregate one asset's quotes (ages in seconds before NOW; TWAP `reference`)."""
    n = len(prices)
    conf = [0.0] * n if confidences is None else confidences
    age = [1.0] * n if ages is None else ages
    return aggregate(
        np.array([prices]),
        np.array([conf]),
        NOW - np.array([age]),
        NOW,
        np.array([reference]),
        params,
        vol=None if vol is None else np.array([vol]),
    )


# --- Mango Markets, 11 October 2022 -------------------------------------------------------------------

MNGO_HONEST = [0.0379, 0.0380, 0.0380, 0.0381, 0.0380]
MNGO_PUMPED = 0.91  # about 24x, the level MNGO reached on the oracle's sources
MNGO_UNITS = 100_000_000.0  # a hypothetical MNGO collateral holding


def _mngo_twap() -> float:
    """TWAP over the 10 minutes before the pump: prices every 10 s oscillating around $0.038."""
    times = NOW - 600.0 + 10.0 * np.arange(60)
    prices = 0.038 + 0.0001 * np.sin(np.arange(60))
    return float(twap(times, prices, PARAMS.twap_window_s, NOW))


def test_mango_single_pumped_source_does_not_move_the_price() -> None:
    """Five sources near $0.038, one pumped to $0.91 within the last minute: the price is the honest median.

    Mango Markets, 11 October 2022 (Mango's and Solidus Labs' accounts). Borrowing power
    (collateral units x price) is exactly what it was before the pump.
    """
    reference = _mngo_twap()
    before = _one(MNGO_HONEST, ages=[3, 5, 8, 2, 4], reference=reference)
    pumped = [*MNGO_HONEST[:4], MNGO_PUMPED]
    after = _one(pumped, ages=[3, 5, 8, 2, 30], reference=reference)

    assert after.status[0] == OracleStatus.OK
    assert after.rejected[0].tolist() == [0, 0, 0, 0, Rejection.OUTLIER]
    assert after.price[0] == np.median(MNGO_HONEST[:4])
    assert abs(after.price[0] / reference - 1.0) <= PARAMS.max_twap_deviation
    assert MNGO_UNITS * after.price[0] == MNGO_UNITS * before.price[0]
    # A mean of the sources would have lent against ~$0.21 a token, 5.5x the honest value.
    assert MNGO_UNITS * np.mean(pumped) > 5.0 * MNGO_UNITS * after.price[0]


def test_mango_pumped_source_raises_uncertainty_never_lowers_it() -> None:
    """The rejected source still counts in the dispersion: manipulation can only make margin more cautious."""
    reference = _mngo_twap()
    before = _one(MNGO_HONEST, reference=reference)
    after = _one([*MNGO_HONEST[:4], MNGO_PUMPED], reference=reference)
    assert after.uncertainty[0] >= before.uncertainty[0]


def test_mango_majority_pumped_is_clamped_to_the_twap_band() -> None:
    """Three of five sources pumped to $0.91 (a majority): the median follows them, the TWAP guard does not.

    The price is clamped to twap x 1.10 and flagged DEVIATES_FROM_TWAP, with the uncertainty at its cap;
    borrowing power rises by at most the 10% band, never 24x.
    """
    reference = _mngo_twap()
    result = _one([0.0380, 0.0381, MNGO_PUMPED, MNGO_PUMPED, MNGO_PUMPED], reference=reference)

    assert result.status[0] == OracleStatus.DEVIATES_FROM_TWAP
    assert result.degraded[0]
    assert result.median[0] == MNGO_PUMPED
    assert result.price[0] == pytest.approx(reference * (1.0 + PARAMS.max_twap_deviation), rel=1e-15)
    assert result.clamp[0] == pytest.approx(MNGO_PUMPED - result.price[0], rel=1e-15)
    assert result.uncertainty[0] == PARAMS.max_uncertainty * reference
    assert MNGO_UNITS * result.price[0] <= 1.1 * MNGO_UNITS * reference * (1 + 1e-15)
    asset_price, _ = pessimistic_prices(result.price, result.uncertainty, 1.0)
    assert asset_price[0] < reference


def test_mango_majority_dumped_is_clamped_from_below() -> None:
    """The mirror image (a majority of sources printing far below the TWAP): clamped at twap x 0.90."""
    result = _one([0.0380, 0.0381, 0.001, 0.001, 0.001], reference=0.038)
    assert result.status[0] == OracleStatus.DEVIATES_FROM_TWAP
    assert result.price[0] == pytest.approx(0.038 * 0.9, rel=1e-15)


# --- 12 March 2020: a single-venue bad print ----------------------------------------------------------


def test_black_thursday_eth_bad_print_is_rejected() -> None:
    """ETH low of 26 on one venue while the others traded near 110 (12 March 2020): an outlier, price ~110.

    Since issue 12 item 3 the price stays between the lower and upper median of the valid quotes (here the
    median of all five, 109.7), so that no rejection can take it outside the honest quotes' range.
    """
    result = _one([110.3, 109.7, 26.0, 110.9, 109.4], reference=110.0)
    assert result.rejected[0].tolist() == [0, 0, Rejection.OUTLIER, 0, 0]
    assert result.status[0] == OracleStatus.OK
    assert result.n_used[0] == 4
    assert result.price[0] == 109.7


def test_assets_are_aggregated_independently() -> None:
    """Two assets in one call give exactly what each gives alone (rows do not interact)."""
    mango = _one([*MNGO_HONEST[:4], MNGO_PUMPED], reference=0.038)
    eth = _one([110.3, 109.7, 26.0, 110.9, 109.4], reference=110.0)
    both = aggregate(
        np.array([[*MNGO_HONEST[:4], MNGO_PUMPED], [110.3, 109.7, 26.0, 110.9, 109.4]]),
        np.zeros((2, 5)),
        np.full((2, 5), NOW - 1.0),
        NOW,
        np.array([0.038, 110.0]),
        PARAMS,
    )
    for name in ("price", "uncertainty", "status", "n_used", "rejected", "dispersion"):
        expected = np.concatenate([getattr(mango, name), getattr(eth, name)])
        np.testing.assert_array_equal(getattr(both, name), expected, err_msg=name)


# --- Staleness and too few sources --------------------------------------------------------------------


def test_all_sources_stale_is_explicit() -> None:
    """Every source older than the limit: ALL_STALE, the TWAP flagged as the price, and (issue 12 item 4) the
    uncertainty of the last known band, not the cap: D and C of the stale quotes, S over the age of the
    freshest of them, plus the gap between their median and the TWAP."""
    result = _one(
        [2000.0, 2001.0, 1999.0], confidences=[1.0, 2.0, 3.0], ages=[61.0, 300.0, 3600.0], reference=2000.0, vol=0.6
    )
    assert result.status[0] == OracleStatus.ALL_STALE
    assert result.degraded[0]
    assert result.rejected[0].tolist() == [Rejection.STALE] * 3
    assert result.n_used[0] == 0
    assert result.price[0] == 2000.0
    assert result.age[0] == 61.0
    staleness = 2000.0 * 0.6 * math.sqrt(61.0 / (365.0 * 86400.0))
    expected = MAD_SCALE * 1.0 + 2.0 + staleness + 0.0  # triple's MAD 1; second largest band 2; median = TWAP
    assert result.uncertainty[0] == pytest.approx(expected, rel=1e-14)
    assert result.uncertainty[0] < 0.01 * PARAMS.max_uncertainty * 2000.0


def test_all_stale_uncertainty_grows_with_age_and_keeps_the_gap_to_the_twap() -> None:
    """issue 12 item 4: the stale band widens as sqrt(age) and carries |stale median - TWAP|; cap without quotes."""
    young = _one([2000.0, 2010.0], ages=[61.0, 61.0], reference=1990.0, vol=0.6)
    old = _one([2000.0, 2010.0], ages=[3600.0, 3600.0], reference=1990.0, vol=0.6)
    assert young.staleness[0] < old.staleness[0]
    assert young.uncertainty[0] == pytest.approx(
        MAD_SCALE * 5.0 + young.staleness[0] + (2005.0 - 1990.0), rel=1e-14
    )
    nothing = _one([math.nan], reference=2000.0)
    assert nothing.status[0] == OracleStatus.TOO_FEW_SOURCES
    assert nothing.uncertainty[0] == PARAMS.max_uncertainty * 2000.0


def test_all_stale_without_twap_has_no_price() -> None:
    """No fresh quote and no TWAP: the price is NaN (the caller must fail closed), never a last price."""
    result = _one([2000.0], ages=[120.0])
    assert result.status[0] == OracleStatus.ALL_STALE
    assert math.isnan(result.price[0])


def test_quote_exactly_at_the_staleness_limit_is_fresh() -> None:
    result = _one([2000.0], ages=[PARAMS.staleness_s], reference=2000.0)
    assert result.rejected[0, 0] == Rejection.OK


def test_too_few_sources_falls_back_to_the_twap() -> None:
    """With min_sources = 3, two fresh sources of five are not enough: flagged, TWAP price; the uncertainty is
    the two quotes' band plus their median's gap to the TWAP (issue 12 item 4: not the cap)."""
    params = OracleParams(min_sources=3)
    result = _one([101.0, 102.0, 100.0, 100.0, 100.0], ages=[1, 1, 90, 90, 90], reference=100.0, params=params)
    assert result.status[0] == OracleStatus.TOO_FEW_SOURCES
    assert result.n_used[0] == 2
    assert result.price[0] == 100.0
    assert result.uncertainty[0] == pytest.approx(MAD_SCALE * 0.5 + 1.5, rel=1e-14)


def test_no_twap_means_maximum_uncertainty() -> None:
    """Without a TWAP the median cannot be checked: NO_TWAP (degraded: no new risk, no liquidation on it), the
    median as price, and the sources' own band as uncertainty (issue 12 item 4: not the cap)."""
    result = _one([100.0, 101.0, 102.0])
    assert result.status[0] == OracleStatus.NO_TWAP
    assert result.degraded[0]
    assert result.price[0] == 101.0
    assert result.uncertainty[0] == pytest.approx(MAD_SCALE * 1.0, rel=1e-14)


# --- Future timestamps and malformed quotes -----------------------------------------------------------


def test_future_timestamp_is_rejected() -> None:
    """A quote stamped an hour ahead is FUTURE; one a few seconds ahead (clock skew) is used with age 0."""
    result = _one([100.0, 100.5, 100.2], ages=[0.0, -3600.0, -3.0], reference=100.0)
    assert result.rejected[0].tolist() == [0, Rejection.FUTURE, 0]
    assert result.age[0] == 0.0
    assert result.price[0] == pytest.approx(100.1, rel=1e-15)


def test_validate_quotes_names_the_future_timestamp() -> None:
    with pytest.raises(InputError) as caught:
        validate_quotes(
            ["BTC", "ETH"],
            np.array([[60_000.0, 60_010.0], [2000.0, 2001.0]]),
            np.zeros((2, 2)),
            np.array([[NOW, NOW], [NOW, NOW + 3600.0]]),
            NOW,
            PARAMS,
            source="market.json",
        )
    assert caught.value.where == "oracle.ETH.sources[1].timestamp"
    assert str(caught.value).startswith("market.json: oracle.ETH.sources[1].timestamp: ")
    assert "in the future" in caught.value.message


@pytest.mark.parametrize(
    ("price", "confidence", "timestamp", "field"),
    [
        (math.nan, 0.0, NOW, "price"),
        (0.0, 0.0, NOW, "price"),
        (-5.0, 0.0, NOW, "price"),
        (100.0, -1.0, NOW, "confidence"),
        (100.0, math.inf, NOW, "confidence"),
        (100.0, 0.0, math.nan, "timestamp"),
    ],
)
def test_validate_quotes_names_a_malformed_field(price: float, confidence: float, timestamp: float, field: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_quotes(["SOL"], [[100.0, price]], [[0.0, confidence]], [[NOW, timestamp]], NOW, PARAMS)
    assert caught.value.where == f"oracle.SOL.sources[1].{field}"


def test_validate_quotes_accepts_stale_and_absent_quotes() -> None:
    """An old snapshot is not bad input, and padding is not a quote."""
    accepted = validate_quotes(
        ["SOL"], [[100.0, math.nan]], [[0.0, math.nan]], [[NOW - 1e6, math.nan]], NOW, PARAMS, present=[[True, False]]
    )
    assert accepted is None  # no InputError raised


@pytest.mark.parametrize(
    ("price", "confidence", "timestamp"),
    [
        (math.nan, 0.0, NOW),
        (math.inf, 0.0, NOW),
        (0.0, 0.0, NOW),
        (-1.0, 0.0, NOW),
        (1.0, -0.1, NOW),
        (1.0, 0.0, math.nan),
    ],
)
def test_malformed_quote_is_invalid(price: float, confidence: float, timestamp: float) -> None:
    codes = classify([[price, 100.0]], [[confidence, 0.0]], [[timestamp, NOW]], NOW, PARAMS)
    assert codes.tolist() == [[Rejection.INVALID, Rejection.OK]]


def test_padding_is_absent_and_ignored() -> None:
    """Assets with fewer sources are padded; padded slots are ABSENT and change nothing."""
    padded = aggregate(
        np.array([[100.0, 101.0, math.nan]]),
        np.array([[0.1, 0.2, math.nan]]),
        np.array([[NOW, NOW, math.nan]]),
        NOW,
        np.array([100.0]),
        PARAMS,
        present=np.array([[True, True, False]]),
    )
    plain = _one([100.0, 101.0], confidences=[0.1, 0.2], ages=[0.0, 0.0], reference=100.0)
    assert padded.rejected.tolist() == [[0, 0, Rejection.ABSENT]]
    assert padded.price[0] == plain.price[0]
    assert padded.uncertainty[0] == plain.uncertainty[0]


# --- The uncertainty formula --------------------------------------------------------------------------


def test_uncertainty_components_by_hand() -> None:
    """U = D + C + S (issue 12 item 3): D = 1.4826 x the largest MAD of any 3 or 4 quotes, C = the second
    largest band, S = twap * vol * sqrt(age / year) with the age of the oldest valid quote."""
    prices = [99.0, 100.0, 101.0, 102.0, 100.5]
    result = _one(
        prices, confidences=[0.05, 0.10, 0.20, 0.30, 0.15], ages=[30, 20, 45, 50, 40], reference=100.0, vol=0.8
    )
    # Sorted 99, 100, 100.5, 101, 102: the triple {99, 101, 102} has MAD min(2, 1) = 1, {99, 100.5, 102} 1.5;
    # the four {99, 100, 101, 102}: median 100.5, |devs| 1.5, .5, .5, 1.5 -> 1; {99, 100.5, 101, 102}: 1.25.
    dispersion = MAD_SCALE * 1.5
    staleness = 100.0 * 0.8 * math.sqrt(50.0 / (365.0 * 86400.0))
    assert result.dispersion[0] == pytest.approx(dispersion, rel=1e-15)
    assert result.confidence[0] == pytest.approx(0.20, rel=1e-15)
    assert result.staleness[0] == pytest.approx(staleness, rel=1e-15)
    assert result.age[0] == 50.0
    assert result.uncertainty[0] == pytest.approx(dispersion + 0.20 + staleness, rel=1e-15)


def test_uncertainty_weights() -> None:
    params = OracleParams(weight_dispersion=2.0, weight_confidence=0.5, weight_staleness=0.0)
    result = _one([99.0, 100.0, 101.0], confidences=[1.0] * 3, ages=[30] * 3, reference=100.0, vol=1.0, params=params)
    assert result.uncertainty[0] == pytest.approx(2.0 * MAD_SCALE * 1.0 + 0.5, rel=1e-15)


def test_uncertainty_is_capped() -> None:
    params = OracleParams(max_uncertainty=0.01)
    result = _one([100.0, 100.0], confidences=[5.0, 5.0], reference=100.0, params=params)
    assert result.uncertainty[0] == 1.0
    assert result.status[0] == OracleStatus.OK


# --- Pessimistic prices -------------------------------------------------------------------------------


def test_pessimistic_prices() -> None:
    asset, liability = pessimistic_prices(np.array([100.0, 1.0]), np.array([2.0, 0.8]), 2.0)
    np.testing.assert_array_equal(asset, [96.0, 0.0])  # floored at zero
    np.testing.assert_array_equal(liability, [104.0, 2.6])


def test_pessimistic_prices_off_by_default() -> None:
    price = np.array([100.0, 3.0])
    asset, liability = pessimistic_prices(price, np.array([2.0, 0.5]), PARAMS.pessimistic_k)
    np.testing.assert_array_equal(asset, price)
    np.testing.assert_array_equal(liability, price)


def test_pessimistic_prices_rejects_negative_k() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        pessimistic_prices(np.array([1.0]), np.array([0.1]), -1.0)


# --- TWAP -----------------------------------------------------------------------------------------------


def test_twap_by_hand() -> None:
    """Step function: 10 from t=0, 20 from t=60, 40 from t=90; window [30, 120] -> (30*10 + 30*20 + 30*40) / 90."""
    times = np.array([0.0, 60.0, 90.0, 500.0])  # the observation at 500 is after now and ignored
    assert float(twap(times, np.array([10.0, 20.0, 40.0, 1e9]), 90.0, 120.0)) == pytest.approx(70.0 / 3.0, rel=1e-15)


def test_twap_vectorised_over_assets() -> None:
    times = np.array([0.0, 60.0])
    out = twap(times, np.array([[10.0, 20.0], [1.0, 3.0]]), 120.0, 120.0)
    np.testing.assert_allclose(out, [15.0, 2.0], rtol=1e-15)


def test_twap_edges() -> None:
    assert math.isnan(float(twap([100.0], [5.0], 60.0, 50.0)))  # nothing observed yet
    assert float(twap([50.0, 50.0], [5.0, 6.0], 60.0, 50.0)) == 6.0  # everything observed exactly now
    assert float(twap([0.0], [5.0], 60.0, 1000.0)) == 5.0  # one old observation still in force
    with pytest.raises(ValueError, match="non-decreasing"):
        twap([2.0, 1.0], [1.0, 1.0], 60.0, 10.0)


# --- Parameters and bad calls ----------------------------------------------------------------------------


def test_params_defaults_and_round_trip() -> None:
    assert decode_json(b"{}", OracleParams, "<p>") == OracleParams()
    custom = OracleParams(min_sources=3, pessimistic_k=1.5)
    assert msgspec.json.decode(msgspec.json.encode(custom), type=OracleParams) == custom


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (b'{"staleness_s": 0}', "staleness_s"),
        (b'{"max_twap_deviation": 1.0}', "max_twap_deviation"),
        (b'{"min_sources": 0}', "min_sources"),
        (b'{"max_uncertainty": 1.5}', "max_uncertainty"),
        (b'{"stalenes_s": 60}', "stalenes_s"),
    ],
)
def test_params_reject_bad_values(document: bytes, where: str) -> None:
    with pytest.raises(InputError) as caught:
        decode_json(document, OracleParams, "params.json")
    assert caught.value.where == where


def test_params_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        OracleParams(60.0)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        PARAMS.staleness_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "call",
    [
        lambda: aggregate([[1.0]], [[0.0, 0.0]], [[NOW]], NOW, [1.0], PARAMS),
        lambda: aggregate([1.0], [0.0], [NOW], NOW, [1.0], PARAMS),
        lambda: aggregate(np.empty((1, 0)), np.empty((1, 0)), np.empty((1, 0)), NOW, [1.0], PARAMS),
        lambda: aggregate([[1.0]], [[0.0]], [[NOW]], NOW, [1.0, 2.0], PARAMS),
        lambda: aggregate([[1.0]], [[0.0]], [[NOW]], NOW, [-1.0], PARAMS),
        lambda: aggregate([[1.0]], [[0.0]], [[NOW]], NOW, [1.0], PARAMS, vol=[math.nan]),
    ],
    ids=["shape-mismatch", "one-dimensional", "no-sources", "twap-shape", "negative-twap", "nan-vol"],
)
def test_bad_calls_raise(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()


def test_inputs_are_not_mutated() -> None:
    prices = np.array([[110.3, 109.7, 26.0, math.nan]])
    conf = np.array([[0.1, 0.2, 0.3, 0.4]])
    times = np.array([[NOW, NOW - 100, NOW, NOW]])
    reference = np.array([110.0])
    copies = [a.copy() for a in (prices, conf, times, reference)]
    aggregate(prices, conf, times, NOW, reference, PARAMS, vol=np.array([0.5]))
    for original, copy in zip((prices, conf, times, reference), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


# --- Slow twin: one asset at a time, plain Python -----------------------------------------------------


def _mad(values: list[float]) -> float:
    centre = statistics.median(values)
    return statistics.median(abs(v - centre) for v in values)


def _wide_dispersion(values: list[float]) -> float:
    """D by brute force: 1.4826 x the largest MAD of any 3 or 4 of the quotes (their MAD for two, 0 for one)."""
    if len(values) < 3:
        return MAD_SCALE * _mad(values) if len(values) == 2 else 0.0
    subsets = [s for k in (3, 4) for s in itertools.combinations(values, k)]
    return MAD_SCALE * max(_mad(list(s)) for s in subsets)


def _reference(
    prices: list[float], confs: list[float], times: list[float], reference: float, vol: float, params: OracleParams
) -> tuple[float, float, int, list[int]]:
    """The rules of the module docstring, written out per quote with the statistics module and itertools."""
    codes = []
    for p, c, t in zip(prices, confs, times, strict=True):
        if not (math.isfinite(p) and p > 0 and math.isfinite(c) and c >= 0 and math.isfinite(t)):
            codes.append(Rejection.INVALID)
        elif NOW - t < -params.future_tolerance_s:
            codes.append(Rejection.FUTURE)
        elif NOW - t > params.staleness_s:
            codes.append(Rejection.STALE)
        else:
            codes.append(Rejection.OK)
    valid = [i for i, code in enumerate(codes) if code == Rejection.OK]
    has_twap = math.isfinite(reference)
    stale = [i for i, code in enumerate(codes) if code == Rejection.STALE]
    basis = valid if valid else stale
    if not basis:
        return reference, params.max_uncertainty * reference, OracleStatus.TOO_FEW_SOURCES, [int(c) for c in codes]
    quotes = [prices[i] for i in basis]
    centre = statistics.median(quotes)
    dispersion = _wide_dispersion(quotes)
    scale = max(dispersion, params.outlier_floor * centre)
    for i in valid:
        if abs(prices[i] - centre) > params.outlier_k * scale:
            codes[i] = Rejection.OUTLIER
    accepted = [i for i in valid if codes[i] == Rejection.OK]
    ordered = sorted(quotes)
    n = len(ordered)
    ref = reference if has_twap else centre
    cap = params.max_uncertainty * ref
    lo, hi = ref * (1 - params.max_twap_deviation), ref * (1 + params.max_twap_deviation)
    if valid:
        raw = statistics.median(prices[i] for i in accepted) if accepted else math.nan
        median = min(max(raw, ordered[(n - 1) // 2]), ordered[n // 2]) if accepted else math.nan
        age = max(NOW - min(times[i] for i in basis), 0.0)  # the oldest valid quote
    else:
        median = math.nan
        age = max(NOW - max(times[i] for i in basis), 0.0)  # the newest stale quote
    price = min(max(median, lo), hi) if has_twap else median
    confs_b = sorted((confs[i] for i in basis), reverse=True)
    confidence = confs_b[1] if n >= 3 else statistics.median(confs_b)
    second_hi, second_lo = (ordered[-2], ordered[1]) if n >= 3 else (centre, centre)
    gap = max(second_hi - hi, lo - second_lo, 0.0) if has_twap else 0.0
    status = OracleStatus.DEVIATES_FROM_TWAP if price != median else OracleStatus.OK
    if not has_twap:
        status = OracleStatus.NO_TWAP
    if not valid:
        status, price = OracleStatus.ALL_STALE, reference
    elif len(accepted) < params.min_sources:
        status, price = OracleStatus.TOO_FEW_SOURCES, reference
    if status in (OracleStatus.ALL_STALE, OracleStatus.TOO_FEW_SOURCES) and has_twap:
        gap = max(gap, abs(centre - reference))
    total = (
        params.weight_dispersion * dispersion
        + params.weight_confidence * confidence
        + params.weight_staleness * ref * vol * math.sqrt(age / (365.0 * 86400.0))
        + gap
    )
    return price, min(total, cap), status, [int(c) for c in codes]


_QUOTE = st.tuples(
    st.one_of(st.floats(80.0, 120.0), st.sampled_from([5.0, 1000.0, math.nan, -1.0, 0.0])),
    st.one_of(st.floats(0.0, 2.0), st.just(-1.0)),
    st.one_of(st.floats(-4.0, 90.0), st.just(-3600.0), st.just(math.nan)),  # ages; negative = ahead of NOW
)
_ROW = st.lists(_QUOTE, min_size=1, max_size=7)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(_ROW, min_size=1, max_size=4),
    reference=st.one_of(st.floats(90.0, 110.0), st.just(math.nan)),
    vol=st.floats(0.0, 3.0),
    min_sources=st.integers(1, 3),
)
def test_vectorised_agrees_with_slow_twin(
    rows: list[list[tuple[float, float, float]]], reference: float, vol: float, min_sources: int
) -> None:
    params = OracleParams(min_sources=min_sources)
    width = max(len(r) for r in rows)
    shape = (len(rows), width)
    prices, confs, times = np.full(shape, math.nan), np.full(shape, math.nan), np.full(shape, math.nan)
    present = np.zeros(shape, dtype=np.bool_)
    for a, row in enumerate(rows):
        for s, (p, c, age) in enumerate(row):
            prices[a, s], confs[a, s], times[a, s], present[a, s] = p, c, NOW - age, True
    result = aggregate(
        prices, confs, times, NOW, np.full(len(rows), reference), params, vol=np.full(len(rows), vol), present=present
    )
    for a, row in enumerate(rows):
        n = len(row)
        price, uncertainty, status, codes = _reference(
            list(prices[a, :n]), list(confs[a, :n]), list(times[a, :n]), reference, vol, params
        )
        assert result.rejected[a, :n].tolist() == codes
        assert (result.rejected[a, n:] == Rejection.ABSENT).all()
        assert result.status[a] == status
        np.testing.assert_allclose(result.price[a], price, rtol=1e-13)
        np.testing.assert_allclose(result.uncertainty[a], uncertainty, rtol=1e-12)


# --- Properties ---------------------------------------------------------------------------------------

WIDE = OracleParams(max_twap_deviation=0.9)  # the TWAP guard out of the way, for properties of the median
_FRESH = st.lists(st.tuples(st.floats(90.0, 110.0), st.floats(0.0, 1.0), st.floats(0.0, 30.0)), min_size=1, max_size=9)


def _fresh(row: list[tuple[float, float, float]], params: OracleParams = WIDE, vol: float = 0.8) -> OracleResult:
    prices, confs, ages = (list(x) for x in zip(*row, strict=True))
    return _one(prices, confidences=confs, ages=ages, reference=100.0, params=params, vol=vol)


@settings(max_examples=200, deadline=None)
@given(row=_FRESH)
def test_price_lies_within_the_accepted_sources(row: list[tuple[float, float, float]]) -> None:
    result = _fresh(row)
    accepted = np.array([p for (p, _, _), code in zip(row, result.rejected[0], strict=True) if code == 0])
    assert result.status[0] == OracleStatus.OK
    assert accepted.min() <= result.price[0] <= accepted.max()


@settings(max_examples=200, deadline=None)
@given(row=_FRESH, data=st.data())
def test_permuting_sources_changes_nothing(row: list[tuple[float, float, float]], data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(len(row))))
    base, permuted = _fresh(row), _fresh([row[i] for i in order])
    for name in ("price", "uncertainty", "status", "n_used", "median", "dispersion", "confidence", "staleness"):
        np.testing.assert_array_equal(getattr(permuted, name), getattr(base, name), err_msg=name)
    np.testing.assert_array_equal(permuted.rejected[0], base.rejected[0][list(order)])


@settings(max_examples=200, deadline=None)
@given(row=_FRESH, stretch=st.floats(1.0, 4.0))
def test_uncertainty_non_decreasing_in_dispersion(row: list[tuple[float, float, float]], stretch: float) -> None:
    """Spreading the sources away from their median (x -> m + c (x - m), c >= 1) never lowers U."""
    centre = float(np.median([p for p, _, _ in row]))
    spread = [(centre + stretch * (p - centre), c, a) for p, c, a in row]
    before, after = _fresh(row), _fresh(spread)
    assert after.uncertainty[0] >= before.uncertainty[0] * (1.0 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(row=_FRESH, delay=st.floats(0.0, 29.0))
def test_uncertainty_non_decreasing_in_staleness(row: list[tuple[float, float, float]], delay: float) -> None:
    """Every quote older by the same delay (none crossing the limit): U does not fall."""
    older = [(p, c, a + delay) for p, c, a in row]
    before, after = _fresh(row), _fresh(older)
    assert after.uncertainty[0] >= before.uncertainty[0]


@settings(max_examples=200, deadline=None)
@given(prices=st.lists(st.floats(90.0, 110.0), min_size=1, max_size=9))
def test_median_without_outliers_is_numpys(prices: list[float]) -> None:
    params = OracleParams(outlier_k=1e6, max_twap_deviation=0.9)
    result = _one(prices, reference=100.0, params=params)
    assert result.n_used[0] == len(prices)
    assert result.price[0] == np.median(prices)


@settings(max_examples=100, deadline=None)
@given(price=st.floats(91.0, 109.0), confidence=st.floats(0.0, 1.0), age=st.floats(0.0, 60.0))
def test_single_source_works(price: float, confidence: float, age: float) -> None:
    result = _one([price], confidences=[confidence], ages=[age], reference=100.0, vol=0.5)
    assert result.status[0] == OracleStatus.OK
    assert result.price[0] == price
    assert result.dispersion[0] == 0.0
    stamped_age = NOW - (NOW - age)  # the age the timestamp can represent (NOW is ~1.7e9 s)
    expected = confidence + 100.0 * 0.5 * math.sqrt(stamped_age / (365.0 * 86400.0))
    assert result.uncertainty[0] == pytest.approx(expected, rel=1e-14)
