"""Risk arrays: the P&L of one unit of every instrument under every scenario, and unit Greeks.

Linear products (spot, perpetual, future) move with their forward; an account's linear book on one
asset therefore nets to a single delta, and the kernel multiplies that delta by the asset's own
risk array. Options are fully revalued with Black-76 at the shocked forward and vol, after the MPOR's
time decay. A shocked vol is floored at `volatility.vol_floor`, whichever generator shocked it (a vol-down
shock scaled up for a short expiry would otherwise take the vol to 0 and a long option's value with it).
"""

from __future__ import annotations

import functools
import mmap
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit
from solvent.market.history import PriceHistory
from solvent.market.state import OPTION, MarketState
from solvent.params import MarginParams
from solvent.pricing import Greeks, black76_greeks, black76_price
from solvent.scenarios import generate_scenarios
from solvent.scenarios.base import ScenarioSet, in_group, mirrored_groups
from solvent.scenarios.deribit import vol_term_scale

FloatArray = NDArray[np.float64]

#: Columns of the unit-Greeks array.
DELTA, GAMMA, VEGA = 0, 1, 2
GREEK_NAMES = ("delta", "gamma", "vega")
VOL_POINT = 0.01


@dataclass(frozen=True, eq=False)
class RiskArrays:
    """Everything the aggregation kernel needs about instruments and scenarios.

    pnl_rows (I, W): P&L of one unit of each instrument, pnl_weight applied, on the scenarios where it can move
        (`scenarios_by_asset`: the shared scenarios, then its own asset's group; 0 in every other scenario, which is
        not stored), zero-padded to the widest asset. `instrument_pnl` is the dense (I, S) view, built on demand: the
        Monte Carlo's stress groups at 200 assets would make it 8.4 GB.
    asset_pnl (A, S): P&L of one unit of each asset (price x move x weight); with the Monte Carlo's stress groups
        (`ScenarioSet.repeats`) written only where the asset moves, its zeros left as untouched pages.
    linear_weight (I,): units of the asset one unit of a linear instrument is worth in the
        scenarios (contract_size x forward / spot); 0 for options, which use pnl_rows.
    unit_greeks (I, 3): per unit of instrument: delta (units of the underlying asset), gamma
        (delta change per 1 USD move of the asset) and vega (USD per vol point, 0.01).
    value (I,): present value of one unit (options: premium; linear products: 0).
    group_offsets (G + 1,): scenario groups (see ScenarioSet.group).
    group_asset (G,) or None: the asset column each group shocks (`ScenarioSet.group_asset`: ALL_ASSETS for a
        joint group, -1 for one that shocks no traded asset), None for joint generators. Instrument rows are 0
        outside their own asset's group and the joint groups; the kernel skips the groups of assets an account
        does not hold.
    group_mirror (G,), group_scale (G,) or None: for a group that shocks one asset, the joint group that moves
        that asset identically (-1: none) and the ratio of their pnl weights (`scenarios.base.mirrored_groups`);
        the kernel reads such a group's rows as group_scale x the joint group's.
    group_repeats (G,) or None: `ScenarioSet.repeats`; a group that repeats a stored one (>= 0) moves its own asset
        alone, so every other asset's asset_pnl row is 0 there by construction (`scenario_plan.group_plan` need not
        scan it: on 200 assets, 200 x 51,456 zeros).
    """

    instrument_asset: NDArray[np.int32]
    pnl_rows: FloatArray
    asset_pnl: FloatArray
    linear_weight: FloatArray
    unit_greeks: FloatArray
    value: FloatArray
    group_offsets: NDArray[np.int64]
    n_assets: int
    group_asset: NDArray[np.int64] | None = None
    group_mirror: NDArray[np.int64] | None = None
    group_scale: FloatArray | None = None
    group_repeats: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        widest = max((columns.shape[0] for columns in self.scenarios_by_asset), default=self.n_scenarios)
        if self.pnl_rows.shape[0] != self.instrument_asset.shape[0] or self.pnl_rows.shape[1] < widest:
            raise ValueError(
                f"pnl_rows {self.pnl_rows.shape}: one row per instrument ({self.instrument_asset.shape[0]}) and at "
                f"least {widest} columns (the shared scenarios and the widest asset's own groups) expected"
            )

    @property
    def n_scenarios(self) -> int:
        """S."""
        return int(self.asset_pnl.shape[1])

    @functools.cached_property
    def rows_by_asset(self) -> tuple[NDArray[np.int64], ...]:
        """Per asset column, the instruments on it (ascending)."""
        return _positions_by_value(self.instrument_asset, self.n_assets)

    @functools.cached_property
    def shared_scenarios(self) -> NDArray[np.int64]:
        """(K,) ascending: the scenarios of the groups no single asset owns (ALL_ASSETS, -1; every scenario when
        group_asset is None), in which an instrument on any asset may move: the first K columns of pnl_rows."""
        if self.group_asset is None:
            return np.arange(self.n_scenarios, dtype=np.int64)
        return np.flatnonzero(self._scenario_owner < 0).astype(np.int64)

    @functools.cached_property
    def scenarios_by_asset(self) -> tuple[NDArray[np.int64], ...]:
        """Per asset column, the scenarios its instruments' pnl_rows hold, column by column: the shared ones, then
        those of the groups it owns (`ScenarioSet.group_asset`; an instrument shows no P&L in another asset's)."""
        shared = self.shared_scenarios
        if self.group_asset is None:
            return (shared,) * self.n_assets
        owned = _positions_by_value(self._scenario_owner, self.n_assets)
        return tuple(np.concatenate([shared, own]) for own in owned)

    @property
    def _scenario_owner(self) -> NDArray[np.int64]:
        """(S,) the owner asset of each scenario's group (`group_asset`, which must not be None)."""
        assert self.group_asset is not None
        return np.repeat(self.group_asset, np.diff(self.group_offsets)).astype(np.int64)

    @property
    def pnl_is_dense(self) -> bool:
        """Whether pnl_rows is the dense (I, S) array itself (no scenario group belongs to one asset)."""
        return bool(self.shared_scenarios.shape[0] == self.n_scenarios == self.pnl_rows.shape[1])

    def dense_rows(self, instruments: NDArray[np.int64] | NDArray[np.int32]) -> FloatArray:
        """(n, S) the P&L of one unit of each of `instruments` in every scenario (0 outside its columns)."""
        picked = np.asarray(instruments, dtype=np.int64)
        if self.pnl_is_dense:
            return np.asarray(self.pnl_rows[picked], dtype=np.float64)
        out = np.zeros((picked.shape[0], self.n_scenarios), dtype=np.float64)
        asset = self.instrument_asset[picked]
        for a in np.unique(asset).tolist():
            at = np.flatnonzero(asset == a)
            columns = self.scenarios_by_asset[a]
            out[np.ix_(at, columns)] = self.pnl_rows[picked[at], : columns.shape[0]]
        return out

    def unit_row(self, instrument: int) -> FloatArray:
        """(S,) one unit of `instrument`'s P&L in every scenario: a view of pnl_rows when it is dense, else that
        row alone scattered (a what-if reads one instrument, never the whole dense view)."""
        if self.pnl_is_dense:
            return np.asarray(self.pnl_rows[instrument], dtype=np.float64)
        row: FloatArray = self.dense_rows(np.array([instrument], dtype=np.int64))[0]
        return row

    @property
    def instrument_pnl(self) -> FloatArray:
        """(I, S) the dense view of pnl_rows: pnl_rows itself when it is dense, else built on first use and kept
        until `refresh_risk_arrays` next writes the arrays (for callers that read every row; what-if and the
        pre-trade check read only their instruments' rows: `dense_rows`, `unit_row`)."""
        if self.pnl_is_dense:
            return self.pnl_rows
        dense = self.__dict__.get("_dense_pnl")
        if dense is None:
            dense = self.dense_rows(np.arange(self.instrument_asset.shape[0]))
            self.__dict__["_dense_pnl"] = dense
        return np.asarray(dense, dtype=np.float64)

    def group_rows(self, g: int, instruments: NDArray[np.int64]) -> FloatArray:
        """(n, size of group g) the P&L of one unit of each of `instruments` in scenario group g."""
        lo, hi = int(self.group_offsets[g]), int(self.group_offsets[g + 1])
        shared = self.shared_scenarios
        owner = -1 if self.group_asset is None else int(self.group_asset[g])
        if owner < 0:
            at = int(np.searchsorted(shared, lo))
            return np.array(self.pnl_rows[instruments, at : at + hi - lo], dtype=np.float64)
        out = np.zeros((instruments.shape[0], hi - lo), dtype=np.float64)
        if owner < self.n_assets and hi > lo:
            own = self.scenarios_by_asset[owner][shared.shape[0] :]
            at = shared.shape[0] + int(np.searchsorted(own, lo))
            picked = np.flatnonzero(self.instrument_asset[instruments] == owner)
            out[picked] = self.pnl_rows[instruments[picked], at : at + hi - lo]
        return out


def _positions_by_value(values: NDArray[np.integer], n: int) -> tuple[NDArray[np.int64], ...]:
    """For each v in 0..n-1, the positions of `values` equal to v, ascending (`np.flatnonzero(values == v)`): one
    stable sort, not n scans (200 assets x 51,456 scenarios)."""
    order = np.argsort(values, kind="stable").astype(np.int64)
    bounds = np.searchsorted(values[order], np.arange(n + 1), side="left")
    return tuple(order[bounds[v] : bounds[v + 1]] for v in range(n))


def build_risk_arrays(
    state: MarketState, scenarios: ScenarioSet, time_floor_years: float, vol_floor: float = 0.0
) -> RiskArrays:
    """Revalue every instrument under every scenario, one asset at a time (`refresh_risk_arrays`); shocked vols
    are floored at `vol_floor` (`volatility.vol_floor` on every engine path)."""
    n_instruments = len(state.instruments)
    mirror, scale = mirrored_groups(scenarios)
    arrays = RiskArrays(
        instrument_asset=state.instruments.asset,
        pnl_rows=np.zeros((n_instruments, _pnl_width(scenarios, len(state.assets)))),
        asset_pnl=_lazy_zeros((len(state.assets), scenarios.n_scenarios)),
        linear_weight=np.zeros(n_instruments),
        unit_greeks=np.zeros((n_instruments, 3)),
        value=np.zeros(n_instruments),
        group_offsets=scenarios.group_offsets,
        n_assets=len(state.assets),
        group_asset=scenarios.group_asset,
        group_mirror=mirror,
        group_scale=scale,
        group_repeats=scenarios.repeats,
    )
    _write_rows(arrays, state, scenarios, time_floor_years, np.arange(len(state.assets)), vol_floor, fresh=True)
    return arrays


def _pnl_width(scenarios: ScenarioSet, n_assets: int) -> int:
    """W of `RiskArrays.pnl_rows`: the shared scenarios and the most any one asset's own groups hold."""
    if scenarios.group_asset is None:
        return scenarios.n_scenarios
    owner = scenarios.group_asset[scenarios.group]
    own = np.bincount(owner[(owner >= 0) & (owner < n_assets)], minlength=n_assets)
    return int(np.count_nonzero(owner < 0)) + (int(own.max()) if own.size else 0)


def refresh_risk_arrays(
    arrays: RiskArrays,
    state: MarketState,
    scenarios: ScenarioSet,
    time_floor_years: float,
    assets: NDArray[np.int64],
    vol_floor: float = 0.0,
) -> None:
    """Recompute, in place, the rows of `arrays` that belong to `assets` (their instruments and their own
    asset_pnl row) at `state`; the other rows are left as they are.

    The streaming engine calls this for the assets whose price moved; a full build writes every asset
    through the same code (`_write_rows`). Each asset's rows are computed from the same inputs either way,
    so an incremental update and a rebuild agree bit for bit.
    """
    _write_rows(arrays, state, scenarios, time_floor_years, assets, vol_floor, fresh=False)


def _write_rows(
    arrays: RiskArrays,
    state: MarketState,
    scenarios: ScenarioSet,
    time_floor_years: float,
    assets: NDArray[np.int64],
    vol_floor: float,
    fresh: bool,
) -> None:
    """`refresh_risk_arrays`; `fresh`: arrays just built, asset_pnl still all zeros (no earlier figures to clear)."""
    weight = scenarios.pnl_weight
    table = state.instruments
    same_table = arrays.instrument_asset is table.asset  # arrays built on this table: its rows by asset hold
    arrays.__dict__.pop("_dense_pnl", None)  # the dense view, if built, is stale from here
    now = _options_now(state, np.asarray(assets, dtype=np.int64), time_floor_years)
    for a in np.asarray(assets, dtype=np.int64).tolist():
        _asset_pnl_row(arrays.asset_pnl[a], float(state.price[a]), scenarios, a, fresh)
        rows = arrays.rows_by_asset[a] if same_table else np.flatnonzero(table.asset == a)
        if not rows.size:
            continue
        columns = arrays.scenarios_by_asset[a]
        if a not in table.option_assets:  # the same figures as `_asset_rows`, in one compiled pass
            _linear_rows(
                rows,
                table.contract_size,
                state.forward,
                float(state.price[a]),
                scenarios.price_column(a, columns),
                in_group(scenarios, a, columns),
                weight[columns],
                arrays.pnl_rows,
                arrays.unit_greeks,
                arrays.value,
                arrays.linear_weight,
            )
            continue
        pnl, greeks, value, linear = _asset_rows(
            state, scenarios, time_floor_years, rows, a, now, vol_floor, _mirrored_scenarios(arrays, a), columns
        )
        target = _span(rows)
        if isinstance(target, slice):  # written in place, not through a temporary
            np.multiply(pnl, weight[columns], out=arrays.pnl_rows[target, : columns.shape[0]])
        else:
            arrays.pnl_rows[rows, : columns.shape[0]] = pnl * weight[columns]
        arrays.unit_greeks[rows] = greeks
        arrays.value[rows] = value
        arrays.linear_weight[rows] = linear


def _options_now(state: MarketState, assets: NDArray[np.int64], time_floor_years: float) -> Greeks:
    """(I,) per instrument, Black-76 at `state` of the options on `assets` (0 for every other instrument): one call
    for them all, not one an asset (each option's figures are the same, element by element)."""
    table = state.instruments
    picked = np.flatnonzero((table.kind == OPTION) & np.isin(table.asset, assets))
    spread = np.zeros((len(Greeks._fields), table.asset.shape[0]), dtype=np.float64)
    if not picked.size:  # no option to price (nor its floors to check)
        return Greeks(*spread)
    now = black76_greeks(
        state.forward[picked],
        table.strike[picked],
        state.expiry_years[picked],
        state.option_vol[picked],
        state.rate,
        table.is_call[picked],
        time_floor=time_floor_years,
    )
    spread[:, picked] = now
    return Greeks(*spread)


def _asset_pnl_row(row: FloatArray, price: float, scenarios: ScenarioSet, a: int, fresh: bool) -> None:
    """Write asset a's row of asset_pnl, price x move x weight, in place: in the scenarios where a can move only
    (`ScenarioSet.moving_scenarios`) when the set holds repeats, the rest left 0 (price x 0 x weight, weights being
    >= 0) and its pages untouched (`_lazy_zeros`). `fresh`: the row is all zeros yet (a build), nothing to clear."""
    moving = scenarios.moving_scenarios(a)
    if moving is None:
        row[:] = (price * scenarios.price_column(a)) * scenarios.pnl_weight
        return
    if not fresh:
        row[np.flatnonzero(row)] = 0.0  # a refresh's earlier figures (a read of untouched pages maps no memory)
    row[moving] = (price * scenarios.price_column(a, moving)) * scenarios.pnl_weight[moving]


def _lazy_zeros(shape: tuple[int, int]) -> FloatArray:
    """A zeroed (n, m) float64 array whose pages take memory when first written, not before: a private anonymous
    mapping, which numpy does not advise into 2 MB pages as it does its own large arrays (a write anywhere in
    such a page maps all of it). asset_pnl under the Monte Carlo's stress groups is almost all zeros: on 200 assets
    each row moves in 2 of 201 groups, 0.8 MB written of 82 MB. np.zeros where there is no such mapping."""
    size = shape[0] * shape[1] * 8
    private = getattr(mmap, "MAP_PRIVATE", None)
    if not size or private is None:
        return np.zeros(shape, dtype=np.float64)
    return np.frombuffer(mmap.mmap(-1, size, flags=private), dtype=np.float64).reshape(shape)


@jit()
def _linear_rows(
    rows: NDArray[np.int64],
    size: FloatArray,
    forward: FloatArray,
    spot: float,
    moves: FloatArray,
    in_group: NDArray[np.bool_] | None,
    weight: FloatArray,
    pnl_rows: FloatArray,
    unit_greeks: FloatArray,
    value: FloatArray,
    linear_weight: FloatArray,
) -> None:  # pragma: no cover - compiled
    """`_asset_rows` for linear instruments `rows` of one asset, written in place, operation for operation:
    P&L (size x forward) x move (x 0 or 1 off the asset's group) x weight in the scenarios `moves`, `in_group` and
    `weight` list (the asset's columns of pnl_rows), delta and linear weight size x forward / spot, no gamma, vega
    or value."""
    for r in rows:
        notional = size[r] * forward[r]
        linear = notional / spot
        for s in range(moves.shape[0]):
            pnl = notional * moves[s]
            if in_group is not None:
                pnl = pnl * (1.0 if in_group[s] else 0.0)
            pnl_rows[r, s] = pnl * weight[s]
        unit_greeks[r, 0] = linear
        unit_greeks[r, 1] = 0.0
        unit_greeks[r, 2] = 0.0
        value[r] = 0.0
        linear_weight[r] = linear


def _mirrored_scenarios(arrays: RiskArrays, a: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(copies, sources): the columns of asset a's pnl_rows (`RiskArrays.scenarios_by_asset`) holding its own group
    when that mirrors a joint group (`RiskArrays.group_mirror`), and the columns of the joint group's scenarios they
    repeat; both empty otherwise."""
    none = np.zeros(0, dtype=np.int64)
    owner, mirror = arrays.group_asset, arrays.group_mirror
    if owner is None or mirror is None:
        return none, none
    offsets = arrays.group_offsets
    scenarios = arrays.scenarios_by_asset[a]  # ascending, and holding both groups' scenarios
    for g in np.flatnonzero((owner == a) & (mirror >= 0)).tolist():
        j = int(mirror[g])
        copies = np.searchsorted(scenarios, np.arange(offsets[g], offsets[g + 1])).astype(np.int64)
        return copies, np.searchsorted(scenarios, np.arange(offsets[j], offsets[j + 1])).astype(np.int64)
    return none, none


def _asset_rows(
    state: MarketState,
    scenarios: ScenarioSet,
    time_floor_years: float,
    rows: NDArray[np.int64],
    a: int,
    now: Greeks,
    vol_floor: float = 0.0,
    mirrored: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
    columns: NDArray[np.int64] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(R, C) unweighted P&L, (R, 3) unit Greeks, (R,) values, (R,) linear weights of instruments `rows` on asset a
    (options revalued at vol max(v (1 + u tau), vol_floor)), in the scenarios `columns` (every scenario when None).
    `now` (`_options_now`): the options' Black-76 figures at `state`, per instrument.
    `mirrored` (copies, sources): positions among them that move a exactly as `sources` do
    (`_mirrored_scenarios`): the options' P&L there is copied, not revalued."""
    table = state.instruments
    spot = state.price[a]
    forward = state.forward[rows]
    size = table.contract_size[rows]
    moves = scenarios.price_column(a, columns)  # (C,)
    is_option = table.kind[rows] == OPTION
    counts = in_group(scenarios, a, columns)
    notional = size * forward
    pnl = np.empty((rows.size, moves.size), dtype=np.float64)
    plain = np.flatnonzero(~is_option)  # options: the same figure below, in the columns not revalued or copied alone
    pnl[plain] = notional[plain, np.newaxis] * moves[np.newaxis, :]
    greeks = np.zeros((rows.size, 3), dtype=np.float64)
    value = np.zeros(rows.size, dtype=np.float64)
    linear = np.where(is_option, 0.0, notional / spot)
    greeks[:, DELTA] = linear
    if is_option.any():
        o = np.flatnonzero(is_option)
        f0, k, t0, v0 = forward[o], table.strike[rows[o]], state.expiry_years[rows[o]], state.option_vol[rows[o]]
        calls = table.is_call[rows[o]]
        now = Greeks(*(figure[rows[o]] for figure in now))
        dfds = f0 / spot
        value[o] = size[o] * now.price
        greeks[o, DELTA] = size[o] * now.delta * dfds
        greeks[o, GAMMA] = size[o] * now.gamma * dfds**2
        greeks[o, VEGA] = size[o] * now.vega * VOL_POINT
        # Per-asset groups: an instrument moves only in its own asset's group (and in a joint group), so options are
        # revalued there alone (elsewhere their P&L is 0 below).
        copies, sources = mirrored if mirrored is not None else (np.zeros(0, dtype=np.int64),) * 2
        revalue = counts
        if counts is not None and copies.size:
            revalue = counts.copy()
            revalue[copies] = False
        counted: slice | NDArray[np.int64] = slice(None) if revalue is None else np.flatnonzero(revalue)
        shocks = moves[counted]
        vol_moves = scenarios.vol_column(a, columns)[counted][np.newaxis, :]  # (1, C counted): the same every option
        if scenarios.vol_term is not None:  # (O, C counted)
            vol_moves = vol_moves * vol_term_scale(t0, scenarios.vol_term)[:, np.newaxis]
        t1 = np.maximum(t0 - scenarios.horizon_years, 0.0)[:, np.newaxis]
        shocked = black76_price(
            f0[:, np.newaxis] * (1.0 + shocks[np.newaxis, :]),
            k[:, np.newaxis],
            t1,
            np.maximum(v0[:, np.newaxis] * np.maximum(1.0 + vol_moves, 0.0), vol_floor),
            state.rate,
            calls[:, np.newaxis],
            time_floor=time_floor_years,
        )
        np.subtract(shocked, now.price[:, np.newaxis], out=shocked)
        block = (_span(o), counted) if isinstance(counted, slice) else _block(o, counted)
        if all(isinstance(index, slice) for index in block):  # a view of pnl: written in place
            np.multiply(size[o, np.newaxis], shocked, out=pnl[block])
        else:
            pnl[block] = size[o, np.newaxis] * shocked
        if revalue is not None:
            rest = ~revalue
            rest[copies] = False
            rest_at = np.flatnonzero(rest)
            if rest_at.size:  # none where every column is revalued or copied (the Monte Carlo's)
                pnl[_block(o, rest_at)] = notional[o, np.newaxis] * moves[np.newaxis, rest_at]
        if copies.size:
            pnl[_block(o, copies)] = pnl[_block(o, sources)]
    if counts is not None and not counts.all():  # x 1.0 everywhere leaves every bit as it is
        pnl *= counts[np.newaxis, :]
    return pnl, greeks, value, linear


def _span(index: NDArray[np.int64]) -> slice | NDArray[np.int64]:
    """`index` as a slice when it is a run of consecutive positions i, i + 1, ... (a view, not a gather), else as is."""
    start = int(index[0]) if index.size else -1
    if start >= 0 and np.array_equal(index, np.arange(start, start + index.size)):
        return slice(start, start + index.size)
    return index


def _block(rows: NDArray[np.int64], columns: NDArray[np.int64]) -> tuple[slice | NDArray[np.int64], ...]:
    """The index of the (rows x columns) block of a 2-d array (`np.ix_`), by slices where they are runs (`_span`)."""
    spans = _span(rows), _span(columns)
    if isinstance(spans[0], slice) or isinstance(spans[1], slice):
        return spans
    return np.ix_(rows, columns)


def scenario_risk_arrays(
    state: MarketState, params: MarginParams, history: PriceHistory | None = None
) -> tuple[ScenarioSet, RiskArrays]:
    """The scenarios `params` call for and the risk arrays on them: the one path margin and attribution share."""
    scenarios = generate_scenarios(state, params, history)
    time_floor = params.volatility.time_floor_days / params.days_per_year
    return scenarios, build_risk_arrays(state, scenarios, time_floor, params.volatility.vol_floor)
