"""Model parameters: one frozen, keyword-only configuration that rejects unknown fields.

Every field is documented, with its default and its source, in docs/model.md. `MarginParams`
round-trips to JSON (`to_json` / `params_from_json`); the CLI, the demo and the Python API all load
this same class.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

PARAMS_SCHEMA: Final = "solvent.params/1"

Probability = Annotated[float, msgspec.Meta(gt=0.5, lt=1.0)]
# Every number of a parameters file lies in a finite range (issue 12 item 14): a positive parameter is at least
# 1e-12 (5e-324 is not a positive duration or multiplier the engine can divide by) and at most 1e15.
Positive = Annotated[float, msgspec.Meta(ge=1e-12, le=1e15)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=1e15)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every configuration section."""


class VolatilityParams(_Config, frozen=True, kw_only=True):
    """How each asset's volatility is estimated and floored, and the anti-procyclicality tool (EMIR RTS 153/2013
    art. 28; docs/model.md). `apc_buffer_release`: in mode "buffer", a series of margins (the backtest, a stream
    keeping `engine.apc.ApcBufferState`) draws the buffer while the calculated margin rises and rebuilds it
    linearly over `apc_buffer_rebuild_days` (solvent.engine.apc); False keeps the fixed x(1 + apc_buffer)."""

    estimator: Literal["ewma", "garch"] = "ewma"
    ewma_lambda: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.94
    use_implied: bool = True
    apc_mode: Literal["none", "buffer", "stressed_weight", "floor"] = "floor"
    apc_buffer: NonNegative = 0.25
    apc_buffer_release: bool = True
    apc_buffer_rebuild_days: Positive = 60.0
    apc_stressed_weight: Fraction = 0.25
    apc_floor_lookback_days: Annotated[int, msgspec.Meta(ge=30)] = 3650
    vol_floor: NonNegative = 0.05
    time_floor_days: Positive = 1.0 / 1440.0


class GridParams(_Config, frozen=True, kw_only=True):
    """SPAN-style 16-scenario grid per asset (scenarios/grid.py).

    - `scan_confidence`: the scan's confidence; null (default): the model's `confidence`. The scan is the move
      the `measure` asks for at it (VaR or worst: the quantile; ES: the expected move beyond it).
    - `moves`: "lognormal" (default), each side's move on a lognormal price (expm1 of the normal log move, ES
      exact); "normal", SPAN's symmetric price-space scan (McMillan's worked example).
    """

    scan_confidence: Probability | None = None
    moves: Literal["lognormal", "normal"] = "lognormal"
    vol_scan: Positive = 0.25
    extreme_multiple: Positive = 2.0
    extreme_cover: Fraction = 0.35


class DeribitParams(_Config, frozen=True, kw_only=True):
    """Deribit-style portfolio-margin grid per asset.

    The ladder, vol shocks and term exponents are Deribit's (`private/pme/simulate`, June 2024). The extended
    moves and their damping are illustrative: Deribit's published documentation gives neither a move list nor a
    dampener, so the defaults follow SPAN's extreme move (twice the scan range, `max_move`, with 35% of its P&L
    counted; McMillan p. 670), which never dominates a linear position (0.7 x max_move) nor a naked short ATM
    option, and binds only for books short convexity beyond the ladder (docs/model.md, "deribit").
    """

    max_move: Positive = 0.16
    step: Positive = 0.04
    vol_up: Positive = 0.50
    vol_down: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.25
    short_dte_exponent: NonNegative = 0.30
    long_dte_exponent: NonNegative = 0.13
    pivot_days: Positive = 30.0
    extended_moves: tuple[float, ...] = (-0.32, 0.32)
    extended_damping: Fraction = 0.35


class FhsParams(_Config, frozen=True, kw_only=True):
    """Filtered historical simulation."""

    lookback_days: Annotated[int, msgspec.Meta(ge=10)] = 1000
    stressed_start: str | None = None
    stressed_end: str | None = None


class McParams(_Config, frozen=True, kw_only=True):
    """Stressed-correlation Monte Carlo (scenarios/mc.py).

    - `n_scenarios`: joint draws; 4,096, with `stratified` marginals: a single perpetual's ES99 varies by about
      1% (relative standard deviation) from seed to seed (24% with 256 plain draws; docs/benchmarks.md).
    - `stratified`: each asset's price and vol shocks a Latin-hypercube sample of their marginal, in the rank
      order of the joint draws (Iman-Conover): the dependence is sampled, the marginals stratified.
    - `stress_weight`: w; the offset between assets is credited at 1 - w (docs/model.md, "mc").
    """

    n_scenarios: Annotated[int, msgspec.Meta(ge=16)] = 4096
    stratified: bool = True
    distribution: Literal["t", "normal"] = "t"
    dof: Annotated[float, msgspec.Meta(gt=2.0)] = 4.0
    stress_weight: Fraction = 0.25
    vol_of_vol: NonNegative = 0.5
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 7


class ScenarioParams(_Config, frozen=True, kw_only=True):
    """Which scenario generator, and each generator's settings."""

    method: Literal["grid", "deribit", "fhs", "mc"] = "grid"
    grid: GridParams = msgspec.field(default_factory=GridParams)
    deribit: DeribitParams = msgspec.field(default_factory=DeribitParams)
    fhs: FhsParams = msgspec.field(default_factory=FhsParams)
    mc: McParams = msgspec.field(default_factory=McParams)


class MaintenanceParams(_Config, frozen=True, kw_only=True):
    """Maintenance margin: a fraction of IM, the same machinery at its own confidence and MPOR, or IM's market
    risk scaled to the liquidation horizon (docs/model.md, "Maintenance margin on the liquidation horizon").

    - `mode`: "fraction" (MM = fraction x IM), "model" (its own confidence and MPOR) or "liquidation": the
      account's market risk x sqrt(H / mpor), H the time the engine's own close-out needs (detection
      `predictive.horizon_seconds` + (slices - 1) x `liquidation.cooldown_seconds`, the slices from
      `liquidation.max_share_per_slice`, `max_notional_per_slice` and the stressed depth), plus the
      liquidity and oracle terms, at least `floor` x IM (solvent.liquidation.horizon).
    - `floor`: MM >= floor x IM in mode "liquidation": 0.5, Hyperliquid's maintenance margin (half the initial
      margin at maximum leverage); dYdX v4's tiers give 0.5-0.6.

    The default is "liquidation" (issue 12 item 8): IM covers the margin period of risk (EMIR RTS 153/2013
    art. 26: at least two days), MM only the engine's own close-out of a breaching account, so MM is set on
    that horizon instead of a fixed 0.8 IM on the same two days. "fraction" stays available (Deribit's
    portfolio margin: MM = 0.8 IM).
    """

    mode: Literal["fraction", "model", "liquidation"] = "liquidation"
    fraction: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.8
    confidence: Probability = 0.975
    mpor_days: Positive = 1.0
    floor: Fraction = 0.5


class LiquidityParams(_Config, frozen=True, kw_only=True):
    """The liquidity add-on: close-out cost of net delta and vega per asset (docs/model.md)."""

    enabled: bool = True
    stress: Annotated[float, msgspec.Meta(ge=1.0)] = 2.0
    impact_coefficient: NonNegative = 1.0
    adv_half_spread: NonNegative = 0.0005
    require_depth: bool = False


class BasisParams(_Config, frozen=True, kw_only=True):
    """The basis and calendar contingency (docs/model.md, "Basis and calendar contingency").

    - `enabled`: add the `basis` IM term.
    - `rate`: per asset, rate x min(long, short) x price, long and short the sums of the positive and negative
      book deltas (spot, perpetual, each expiry): the offsetting notional across books. 0.01, Deribit's
      portfolio margin ("1% of underlying value is added for offsetting futures"; 2% in its earlier version).
    - `vega_contingency`: per asset, this x min(long vega, short vega) over expiries (vega in USD per vol
      point): the vega netted across expiries. 0.25, Deribit's earlier portfolio margin (25% contingency on
      vega offsetting in different expirations).
    """

    enabled: bool = True
    rate: NonNegative = 0.01
    vega_contingency: NonNegative = 0.25


class ConcentrationParams(_Config, frozen=True, kw_only=True):
    """The concentration add-on (docs/model.md, "Concentration add-on and risk tier").

    form "simm": CR = max(1, sqrt(|x| / T)) on the asset's share of market risk, with
    T = min(threshold, max(relative_floor, min(oi_share x OI, depth_share x stressed depth))).
    form "ramp": the IMF ramps from ramp_base_imf between ramp_lower_cap and ramp_upper_cap of the
    driver (the account's |x| or the asset's open interest); the add-on is (IMF - base) x |x|.
    """

    enabled: bool = True
    form: Literal["simm", "ramp"] = "simm"
    threshold: Positive = 37_000_000.0
    oi_share: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] | None = None
    depth_share: Positive | None = 1.0
    depth_distance: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.02
    relative_floor: NonNegative = 1_000_000.0
    ramp_base_imf: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.05
    ramp_lower_cap: NonNegative = 40_000_000.0
    ramp_upper_cap: NonNegative = 100_000_000.0
    ramp_driver: Literal["account", "open_interest"] = "account"

    def __post_init__(self) -> None:
        if self.ramp_lower_cap > self.ramp_upper_cap:
            raise ValueError(
                f"ramp_lower_cap: must not exceed ramp_upper_cap {self.ramp_upper_cap!r}, got {self.ramp_lower_cap!r}"
            )


class StablePriceParams(_Config, frozen=True, kw_only=True):
    """Mango v4's stable price (market/stable_price.py; docs/model.md, "Stable price"). Defaults are Mango's.

    - `delay_interval_s`: length of one delay interval, over which the oracle is averaged into one delay
      price; 3600 s.
    - `delay_intervals`: number of delay prices kept (the delay price is that many intervals old); 24 (24 h).
    - `delay_growth_limit`: largest relative change between consecutive delay prices; 0.06 (6% an hour).
    - `stable_growth_limit`: largest relative change of the stable price per second of elapsed time, reduced
      by the square of (lesser / greater) of the stable and delay prices; 0.0003 (0.03%/s, about 290% in an
      hour updated every 10 s).
    - `min_update_s`: an update sooner than this after the last one is ignored; 10 s.
    - `max_update_s`: the elapsed time one update can use; 600 s (a long gap cannot release a large step).
    """

    delay_interval_s: Positive = 3600.0
    delay_intervals: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 24
    delay_growth_limit: NonNegative = 0.06
    stable_growth_limit: NonNegative = 0.0003
    min_update_s: NonNegative = 10.0
    max_update_s: Positive = 600.0


class OracleParams(_Config, frozen=True, kw_only=True):
    """How source quotes are aggregated into a price and an uncertainty (see the module docstring).

    (`kw_only` is repeated here because msgspec applies it only to the fields of the class that sets it.)

    - `staleness_s`: a quote older than this (seconds before `now`) is STALE. 60 s, the usual age bound
      in pull-oracle integrations (Pyth's `getPriceNoOlderThan(id, 60)`); venues with slower feeds raise it.
    - `future_tolerance_s`: clock skew allowed between a source's clock and ours before a timestamp counts
      as in the future (FUTURE); 5 s.
    - `outlier_k`: rejection threshold in robust standard deviations (1.4826 * MAD); 5, loose enough that
      honest venues in a fast market survive, tight enough for a 20x pump or a 75% bad print.
    - `outlier_floor`: the robust scale is at least this fraction of the median (0.002: with k = 5 a
      quote within 1% of the median is never an outlier, even when the others agree exactly).
    - `max_twap_deviation`: the price is clamped to twap * (1 -/+ this); 0.10.
    - `twap_window_s`: the TWAP window for `twap`; 600 s. Longer resists slower pumps, lags real moves.
    - `min_sources`: fewer accepted quotes -> TOO_FEW_SOURCES. 1, so a single aggregated feed (e.g. one
      Pyth price with its band) works; a venue wiring three or more independent sources should set 2 or 3
      so that losing sources is flagged rather than silently leaving one source in charge.
    - `weight_dispersion`, `weight_confidence`, `weight_staleness`: weights of D, C and S in U; 1 each.
    - `max_uncertainty`: the cap on U as a fraction of the reference price, and U itself when no
      well-formed quote is left at all; 0.5, the order of the deepest one-day crypto falls on record (ETH
      lost over 40% on 12 March 2020): with no usable price, margin covers such a move. (Degraded states
      with quotes use the last known band, not the cap: a degraded oracle pauses liquidation instead.)
    - `pessimistic_k`: k for `pessimistic_prices`: collateral balances are valued at max(P - kU, 0)
      (debts at P + kU); 0 (off).
    - `uncertainty_charge`: where U is charged, once (docs/model.md, "Oracle uncertainty"). "buffer" (default):
      the explicit, attributable `oracle` IM term c * sum_a |net delta_a| * U_a, the scenarios untouched.
      "scan": every scenario price move widened by z * U_a / P_a instead (for option books whose loss is not
      linear in the price), the `oracle` term then 0. Never both: one BTC perp at 60,000 with a $600 band pays
      600 more, not 1,200.
    - `buffer_multiplier`: c of the `oracle` IM term (charge "buffer"); 1.
    - `scan_widening`: z; under charge "scan" every scenario price move of asset a is widened away from 0 by
      z * U_a / P_a; 1.
    - `stable_price`: the stable price's parameters (`StablePriceParams`); used where the market carries a
      stable price (the `stable_price` IM term).
    """

    staleness_s: Positive = 60.0
    future_tolerance_s: NonNegative = 5.0
    outlier_k: Positive = 5.0
    outlier_floor: NonNegative = 0.002
    max_twap_deviation: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.10
    twap_window_s: Positive = 600.0
    min_sources: Annotated[int, msgspec.Meta(ge=1)] = 1
    weight_dispersion: NonNegative = 1.0
    weight_confidence: NonNegative = 1.0
    weight_staleness: NonNegative = 1.0
    max_uncertainty: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    pessimistic_k: NonNegative = 0.0
    uncertainty_charge: Literal["buffer", "scan"] = "buffer"
    buffer_multiplier: NonNegative = 1.0
    scan_widening: NonNegative = 1.0
    stable_price: StablePriceParams = msgspec.field(default_factory=StablePriceParams)

    @property
    def buffer_factor(self) -> float:
        """c of the `oracle` IM term as charged: `buffer_multiplier` under charge "buffer", 0 under "scan"."""
        return self.buffer_multiplier if self.uncertainty_charge == "buffer" else 0.0

    @property
    def scan_factor(self) -> float:
        """z of the scan widening as charged: `scan_widening` under charge "scan", 0 under "buffer"."""
        return self.scan_widening if self.uncertainty_charge == "scan" else 0.0


class VenueParams(_Config, frozen=True, kw_only=True):
    """Positions held at other venues (docs/model.md, "Cross, isolated and multi-venue accounts").

    - `remote_pnl_haircut`: h; the unrealised gain of a linear position held at another venue counts in
      equity at (1 - h) of its value (a loss counts in full): a gain held elsewhere cannot be withdrawn
      here until that venue settles it. 0.5, a solvent default.
    """

    remote_pnl_haircut: Fraction = 0.5


class CollateralParams(_Config, frozen=True, kw_only=True):
    """Collateral valuation: dynamic haircuts or the integrated mode (docs/model.md, "Collateral").

    mode "none": balances at market value (no haircut). "haircut": each positive balance loses
    h = clip(h_mkt + h_book, floor, cap), h_book the marginal close-out cost of q after wrong_way x the long
    delta of the same asset (issue 12 item 6), then Drift's size scaling; the
    value removed is reported as `collateral_haircut` and deducted from equity (not an IM term).
    "integrated": non-USD balances are spot deltas inside the scenarios; h_mkt is dropped for the
    assets the scenarios move (factors/haircuts.py).
    """

    mode: Literal["none", "haircut", "integrated"] = "none"
    liquidity: bool = True
    wrong_way: NonNegative = 1.0
    stablecoins: tuple[str, ...] = ("DAI", "USDC", "USDT")
    depeg: Fraction = 0.12
    depeg_scenario: bool = False
    floor: Fraction = 0.0
    cap: Fraction = 1.0
    asset_floor: dict[str, Fraction] = msgspec.field(default_factory=dict)
    asset_cap: dict[str, Fraction] = msgspec.field(default_factory=dict)
    scale_start: NonNegative = 0.0
    size_imf: NonNegative = 0.0

    def __post_init__(self) -> None:
        for asset in sorted(set(self.asset_floor) | set(self.asset_cap) | {""}):
            low = self.asset_floor.get(asset, self.floor)
            high = self.asset_cap.get(asset, self.cap)
            if low > high:
                where = f"asset_floor.{asset}" if asset else "floor"
                raise ValueError(f"{where}: must not exceed the cap {high!r}, got {low!r}")


class PredictiveParams(_Config, frozen=True, kw_only=True):
    """Predictive, velocity-aware liquidation (docs/model.md, "Predictive liquidation").

    - `horizon_seconds`: h, how long a liquidation takes to complete; the breach probability is over h.
    - `threshold`: flag an account early when its probability of breaching MM within h exceeds this.
    - `halflife_seconds`: half-life of each asset's price-velocity and fast-volatility EWMAs.
    - `correlation`: the correlation between the returns of two different assets in the delta-normal loss
      volatility, used when the scenarios are not a sample of joint returns (grid, deribit); fhs and mc
      use the correlation of their own scenario moves.
    - `use_drift`: whether the current price velocity drifts equity (else the motion is driftless).
    - `action`: what an early flag does: "flag" (reduce-only: pre-trade checks refuse risk-increasing
      orders) or "deleverage" (also a pre-emptive partial liquidation back to the liquidation target).
    Defaults are placeholders to calibrate in the stress lab, not published figures.
    """

    horizon_seconds: Positive = 60.0
    threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.10
    halflife_seconds: Positive = 300.0
    correlation: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] = 0.8
    use_drift: bool = True
    action: Literal["flag", "deleverage"] = "flag"


class LiquidationParams(_Config, frozen=True, kw_only=True):
    """Partial liquidation and the backstop waterfall (docs/model.md, "Liquidation").

    - `method`: "proportional" closes the same fraction of every position; "greedy" closes positions in
      order of their contribution to market risk (largest first; hedges last).
    - `target`: close until equity >= target x IM (1: back to IM).
    - `max_share_per_slice`: at most this share of each position in one slice (Hyperliquid: 20%).
    - `cooldown_seconds`: the wait after a slice before the next (Hyperliquid: 30 s).
    - `max_notional_per_slice`: a notional cap per account and slice, USD (dYdX v4: $100k per block); None: none.
    - `min_slice_notional`: a slice closes at least this notional of a position, or all of it (dYdX: $1k).
    - `min_position_notional`: never leave a position smaller than this (dust): close it in full instead.
    - `fee`: the liquidation fee, a fraction of the notional closed, paid to the insurance fund (placeholder).
    """

    method: Literal["proportional", "greedy"] = "proportional"
    target: Annotated[float, msgspec.Meta(ge=1.0)] = 1.0
    max_share_per_slice: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.2
    cooldown_seconds: NonNegative = 30.0
    max_notional_per_slice: Positive | None = None
    min_slice_notional: NonNegative = 1_000.0
    min_position_notional: NonNegative = 100.0
    fee: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.005


class PretradeParams(_Config, frozen=True, kw_only=True):
    """The pre-trade check and the stream's fills (docs/model.md, "Pre-trade what-if").

    - `price_band`: b; a fill at `price` (USD per unit of the underlying) is off-market, refused by the
      pre-trade check and rejected by the stream (`FillRejected`), when |price - mark| > b x F, with mark
      the instrument's mark per unit of the underlying (F itself for a linear product, the premium for an
      option) and F the instrument's forward. 0.05: Paradex's price band (aggressive orders execute only
      within +-5% of the mark price in its documented example); GRVT's price protection band is 10% by
      default for most coins. An option's premium moves by less than its underlying (|delta| <= 1), so the
      band in units of F bounds it by the same move of the underlying.
    """

    price_band: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.05


class MarginParams(_Config, frozen=True, kw_only=True):
    """The whole model configuration."""

    schema: Literal["solvent.params/1"] = "solvent.params/1"
    measure: Literal["es", "var", "worst"] = "es"
    confidence: Probability = 0.99
    mpor_days: Positive = 2.0
    days_per_year: Annotated[float, msgspec.Meta(ge=250.0, le=366.0)] = 365.0
    volatility: VolatilityParams = msgspec.field(default_factory=VolatilityParams)
    scenarios: ScenarioParams = msgspec.field(default_factory=ScenarioParams)
    maintenance: MaintenanceParams = msgspec.field(default_factory=MaintenanceParams)
    liquidity: LiquidityParams = msgspec.field(default_factory=LiquidityParams)
    basis: BasisParams = msgspec.field(default_factory=BasisParams)
    concentration: ConcentrationParams = msgspec.field(default_factory=ConcentrationParams)
    oracle: OracleParams = msgspec.field(default_factory=OracleParams)
    collateral: CollateralParams = msgspec.field(default_factory=CollateralParams)
    venues: VenueParams = msgspec.field(default_factory=VenueParams)
    predictive: PredictiveParams = msgspec.field(default_factory=PredictiveParams)
    liquidation: LiquidationParams = msgspec.field(default_factory=LiquidationParams)
    pretrade: PretradeParams = msgspec.field(default_factory=PretradeParams)

    def to_json(self) -> bytes:
        """Serialise every field, defaults included, so the file documents the run."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2)


def params_from_json(data: bytes | str, source: str = "<params>") -> MarginParams:
    """Decode parameters; unknown fields, wrong types and out-of-range values raise InputError."""
    from solvent.formats.errors import decode_json

    return decode_json(data, MarginParams, source)
