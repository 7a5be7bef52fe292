"""The scenario set every generator returns and every risk array is built on."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Smallest price move widening leaves (a -100% move is not a price); a move already below it is kept.
MIN_WIDENED_MOVE = -0.99
#: `group_asset` of a joint group, in which every asset moves (the Monte Carlo's joint draws beside its per-asset
#: groups); -1 marks a group that shocks no traded asset (the stablecoin de-peg).
ALL_ASSETS = -2


@dataclass(frozen=True, eq=False, init=False)
class ScenarioSet:
    """S joint scenarios over A assets (columns in `MarketState.assets` order).

    price_move (S, A): relative price move, new price = price * (1 + move), move > -1.
    vol_move (S, A): relative implied-vol move, new vol = vol * (1 + move), move > -1.
        Both are dense views: the set stores `price_rows`, `vol_rows` (R, A), the moves of the groups that are not
        repeats (every scenario's when `repeats` is None, and then the views are those arrays themselves), and
        builds the dense views on first use. Hot paths read one asset's column (`price_column`, `vol_column`) or
        some scenarios' rows (`price_move_at`) instead.
    pnl_weight (S,): factor applied to every P&L in the scenario (SPAN's extreme-move cover
        fraction, Deribit's extended-move damping); 1 elsewhere.
    group (S,): non-decreasing group index. The margin measure is taken within each group and the
        group results are summed: per-asset grids have one group per asset (no offsets between
        assets, as in SPAN); joint generators (fhs, mc) have a single group 0.
    horizon_years: the margin period of risk the moves span; options decay by it.
    group_asset: for per-asset grids, the asset column each group shocks (G,); an instrument's
        P&L counts only in its own asset's group (elsewhere its asset is unchanged, and charging
        its time decay once per other asset would double count it), and in a group marked ALL_ASSETS
        (a joint group beside per-asset ones). None for joint generators.
    vol_term: (exponent up to pivot, exponent beyond, pivot in years) when vol moves scale with
        each option's time to expiry as (pivot / T) ** exponent (Deribit); None for no scaling.
    labels: a short human label per scenario.
    repeats (G,) or None: for each group, -1 when its moves are stored, else the stored group of the same size whose
        moves it repeats with its own asset (`group_asset`) alone moving, every other asset 0 (the Monte Carlo's
        per-asset stress groups: on 200 assets 200 repeats of 256 draws, 165 MB of mostly zero moves if dense).

    Built from dense `price_move`, `vol_move` (every scenario's; `repeats` dropped) or from `price_rows`, `vol_rows`
    and `repeats`; `dataclasses.replace(s, price_move=m)` gives a dense set with the new price moves.
    """

    name: str
    price_rows: FloatArray
    vol_rows: FloatArray
    pnl_weight: FloatArray
    group: NDArray[np.int32]
    horizon_years: float
    labels: tuple[str, ...]
    vol_term: tuple[float, float, float] | None = None
    group_asset: NDArray[np.int64] | None = None
    repeats: NDArray[np.int64] | None = None

    def __init__(
        self,
        name: str,
        price_move: FloatArray | None = None,
        vol_move: FloatArray | None = None,
        pnl_weight: FloatArray | None = None,
        group: NDArray[np.int32] | None = None,
        horizon_years: float = 0.0,
        labels: tuple[str, ...] = (),
        vol_term: tuple[float, float, float] | None = None,
        group_asset: NDArray[np.int64] | None = None,
        *,
        price_rows: FloatArray | None = None,
        vol_rows: FloatArray | None = None,
        repeats: NDArray[np.int64] | None = None,
    ) -> None:
        if pnl_weight is None or group is None:
            raise ValueError("pnl_weight and group are required")
        if price_move is not None or vol_move is not None:  # dense moves given: they replace any stored rows
            layout = None if repeats is None else _layout(repeats, group, group_asset)
            price_rows = price_move if price_move is not None else _dense(price_rows, layout)
            vol_rows = vol_move if vol_move is not None else _dense(vol_rows, layout)
            repeats = None
        if price_rows is None or vol_rows is None:
            raise ValueError("price and vol moves are required")
        for key, value in (
            ("name", name),
            ("price_rows", price_rows),
            ("vol_rows", vol_rows),
            ("pnl_weight", pnl_weight),
            ("group", group),
            ("horizon_years", horizon_years),
            ("labels", labels),
            ("vol_term", vol_term),
            ("group_asset", group_asset),
            ("repeats", repeats),
        ):
            object.__setattr__(self, key, value)
        self._check()

    def _check(self) -> None:
        s = self.group.shape[0]
        r, a = self.price_rows.shape
        if self.vol_rows.shape != (r, a) or self.pnl_weight.shape != (s,):
            raise ValueError("scenario arrays disagree in shape")
        if len(self.labels) != s:
            raise ValueError("one label per scenario")
        if s and np.any(np.diff(self.group) < 0):
            raise ValueError("group must be non-decreasing")
        if self.repeats is None:
            if r != s:
                raise ValueError("scenario arrays disagree in shape")
        else:
            offsets = self.group_offsets
            sizes = np.diff(offsets)
            rep, owner = self.repeats, self.group_asset
            if owner is None or rep.shape != sizes.shape or owner.shape != sizes.shape:
                raise ValueError("repeats needs one entry per group, and group_asset")
            copies = np.flatnonzero(rep >= 0)
            source = rep[copies]
            if np.any(source >= rep.shape[0]) or np.any(rep[source] >= 0) or np.any(sizes[source] != sizes[copies]):
                raise ValueError("a repeat must name a stored group of its own size")
            if np.any((owner[copies] < 0) | (owner[copies] >= a)):
                raise ValueError("a repeat keeps one asset column")
            if int(sizes[rep < 0].sum()) != r:
                raise ValueError("price_rows must hold the stored groups' scenarios")
        if np.any(self.price_rows <= -1.0) or np.any(self.vol_rows <= -1.0):
            raise ValueError("price and vol moves must be greater than -100%")

    @property
    def n_scenarios(self) -> int:
        """S."""
        return int(self.group.shape[0])

    @property
    def n_assets(self) -> int:
        """A."""
        return int(self.price_rows.shape[1])

    @property
    def group_offsets(self) -> NDArray[np.int64]:
        """(G + 1,) CSR offsets of each group's scenarios."""
        counts = np.bincount(self.group) if self.group.size else np.zeros(0, dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def moving_scenarios(self, asset: int) -> NDArray[np.int64] | None:
        """The scenarios (ascending) outside which `asset`'s moves are 0 (the stored groups and its own repeats);
        None when every scenario is stored (any may move it)."""
        if self.repeats is None or self.group_asset is None:
            return None
        offsets = self._offsets
        groups = np.flatnonzero((self.repeats < 0) | (self.group_asset == asset)).tolist()
        return np.concatenate([np.arange(offsets[g], offsets[g + 1]) for g in groups] or [np.zeros(0)]).astype(np.int64)

    @functools.cached_property
    def _offsets(self) -> NDArray[np.int64]:
        return self.group_offsets

    @functools.cached_property
    def _rows_kept(self) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
        """(row (S,), kept (S,)): each scenario's stored row and the asset it keeps (ALL_ASSETS: every one); None
        when every scenario is stored."""
        return None if self.repeats is None else _layout(self.repeats, self.group, self.group_asset)

    def price_column(self, asset: int, scenarios: NDArray[np.int64] | None = None) -> FloatArray:
        """(S,) or (len(scenarios),): asset's price moves in every scenario or in `scenarios`."""
        return _column(self.price_rows, self._rows_kept, asset, scenarios)

    def vol_column(self, asset: int, scenarios: NDArray[np.int64] | None = None) -> FloatArray:
        """(S,) or (len(scenarios),): asset's vol moves in every scenario or in `scenarios`."""
        return _column(self.vol_rows, self._rows_kept, asset, scenarios)

    def price_move_at(self, scenarios: NDArray[np.int64]) -> FloatArray:
        """(n, A) the price moves of `scenarios` (indices), every asset."""
        layout = self._rows_kept
        if layout is None:
            return np.asarray(self.price_rows[scenarios], dtype=np.float64)
        return _dense(self.price_rows, (layout[0][scenarios], layout[1][scenarios]))

    @functools.cached_property
    def price_move(self) -> FloatArray:
        """(S, A) every scenario's price moves (`price_rows` itself when every scenario is stored)."""
        return _dense(self.price_rows, self._rows_kept)

    @functools.cached_property
    def vol_move(self) -> FloatArray:
        """(S, A) every scenario's vol moves (`vol_rows` itself when every scenario is stored)."""
        return _dense(self.vol_rows, self._rows_kept)


def _layout(
    repeats: NDArray[np.int64], group: NDArray[np.int32], group_asset: NDArray[np.int64] | None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(row (S,), kept (S,)): each scenario's row of the stored moves and the one asset it keeps (ALL_ASSETS: all)."""
    counts = np.bincount(group, minlength=repeats.shape[0]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    stored = repeats < 0
    first = np.concatenate([[0], np.cumsum(np.where(stored, counts, 0))])  # each stored group's first stored row
    source = np.where(stored, np.arange(repeats.shape[0]), repeats)
    within = np.arange(group.shape[0]) - offsets[group]
    row = (first[source[group]] + within).astype(np.int64)
    owner = np.full(repeats.shape[0], ALL_ASSETS, dtype=np.int64) if group_asset is None else group_asset
    kept = np.where(stored, ALL_ASSETS, owner)[group].astype(np.int64)
    return row, kept


def _dense(rows: FloatArray | None, layout: tuple[NDArray[np.int64], NDArray[np.int64]] | None) -> FloatArray:
    """The dense moves of stored `rows` under `layout` (`_layout`; None: `rows` themselves)."""
    assert rows is not None
    if layout is None:
        return rows
    row, kept = layout
    out = rows[row]
    moving = (kept[:, np.newaxis] == ALL_ASSETS) | (kept[:, np.newaxis] == np.arange(rows.shape[1]))
    out[~moving] = 0.0
    return out


def _column(
    rows: FloatArray,
    layout: tuple[NDArray[np.int64], NDArray[np.int64]] | None,
    asset: int,
    scenarios: NDArray[np.int64] | None,
) -> FloatArray:
    """One asset's column of the dense moves (`_dense`), in every scenario or in `scenarios`."""
    if layout is None:
        return np.asarray(rows[:, asset] if scenarios is None else rows[scenarios, asset], dtype=np.float64)
    row, kept = layout if scenarios is None else (layout[0][scenarios], layout[1][scenarios])
    moving = (kept == ALL_ASSETS) | (kept == asset)
    return np.where(moving, rows[row, asset], 0.0)


def traded_assets(instrument_asset: NDArray[np.int32]) -> NDArray[np.int64]:
    """Sorted asset columns that have at least one instrument: the assets generators shock."""
    return np.unique(instrument_asset).astype(np.int64)


def per_asset_grid(
    name: str,
    n_assets: int,
    traded: NDArray[np.int64],
    price: FloatArray,
    vol: FloatArray,
    weight: FloatArray,
    labels: tuple[str, ...],
    horizon_years: float,
    vol_term: tuple[float, float, float] | None = None,
) -> ScenarioSet:
    """One group per traded asset; in group g only asset traded[g] moves.

    price, vol: (T, L) moves of each traded asset's ladder of L scenarios (rows in `traded` order);
    weight: (L,) pnl weights of the ladder; labels: T x L labels, group by group.
    """
    n_traded, per_asset = price.shape
    rows = np.arange(per_asset * n_traded)
    cols = np.repeat(traded, per_asset)
    price_move = np.zeros((rows.size, n_assets), dtype=np.float64)
    vol_move = np.zeros((rows.size, n_assets), dtype=np.float64)
    price_move[rows, cols] = price.ravel()
    vol_move[rows, cols] = vol.ravel()
    return ScenarioSet(
        name=name,
        price_move=price_move,
        vol_move=vol_move,
        pnl_weight=np.tile(weight, n_traded),
        group=np.repeat(np.arange(n_traded, dtype=np.int32), per_asset),
        group_asset=traded,
        horizon_years=horizon_years,
        labels=labels,
        vol_term=vol_term,
    )


def widen_price_moves(scenarios: ScenarioSet, width: FloatArray) -> ScenarioSet:
    """Every non-zero price move of asset a pushed `width[a]` further from 0, in its own direction.

    width: (A,) >= 0, the relative oracle uncertainty times `oracle.scan_widening`. Up moves become
    m + w; down moves m - w, floored at MIN_WIDENED_MOVE (never above the original move); zero moves
    stay 0. Every |move| is non-decreasing in w, so more uncertainty never shrinks a scenario. An all-zero
    `width` returns `scenarios` itself (bit-for-bit unchanged). Vol moves, weights and groups are kept.
    """
    w = np.asarray(width, dtype=np.float64)
    if w.shape != (scenarios.n_assets,) or not np.all(np.isfinite(w) & (w >= 0.0)):
        raise ValueError(f"width must be {scenarios.n_assets} finite values >= 0, got {w}")
    if not np.any(w > 0.0):
        return scenarios
    m = scenarios.price_rows  # a repeat's zero moves stay 0, its kept asset's widen as the stored ones do
    down = np.maximum(m - w, np.minimum(m, MIN_WIDENED_MOVE))
    moved = np.where(m > 0.0, m + w, np.where(m < 0.0, down, m))
    return replace(scenarios, price_rows=np.asarray(moved, dtype=np.float64))


def mirrored_groups(scenarios: ScenarioSet) -> tuple[NDArray[np.int64], FloatArray]:
    """(mirror (G,), scale (G,)): for each group that shocks one asset a, a joint group (ALL_ASSETS) that moves a
    exactly as it does, scenario for scenario (price and vol), or -1; and the ratio of their constant pnl weights.

    An instrument on a then has, in the mirrored group, scale x its P&L in the joint group (the same moves, so the
    same unweighted P&L): the Monte Carlo's per-asset stress groups are its joint draws with one asset moving, and
    the kernel builds their P&L from the joint rows an account has just read (`kernel.own_mirrors`)."""
    offsets = scenarios.group_offsets
    n_groups = offsets.shape[0] - 1
    mirror = np.full(n_groups, -1, dtype=np.int64)
    scale = np.ones(n_groups, dtype=np.float64)
    owner = scenarios.group_asset
    if owner is None or owner.shape != (n_groups,):
        return mirror, scale
    weight = scenarios.pnl_weight
    flat = [hi > lo and bool(np.all(weight[lo:hi] == weight[lo])) for lo, hi in itertools.pairwise(offsets.tolist())]
    joints = [j for j in range(n_groups) if owner[j] == ALL_ASSETS and flat[j] and weight[offsets[j]] > 0.0]
    repeats = scenarios.repeats
    for g in range(n_groups):
        a = int(owner[g])
        if a < 0 or not flat[g]:
            continue
        own = np.arange(offsets[g], offsets[g + 1])
        for j in joints:
            joint = np.arange(offsets[j], offsets[j + 1])
            if (repeats is not None and repeats[g] == j) or (
                joint.shape == own.shape
                and np.array_equal(scenarios.price_column(a, own), scenarios.price_column(a, joint))
                and np.array_equal(scenarios.vol_column(a, own), scenarios.vol_column(a, joint))
            ):
                mirror[g] = j
                scale[g] = weight[offsets[g]] / weight[offsets[j]]
                break
    return mirror, scale


def in_group(scenarios: ScenarioSet, asset: int, picked: NDArray[np.int64] | None = None) -> NDArray[np.bool_] | None:
    """(S,) (or (len(picked),), in scenarios `picked`) whether an instrument on `asset` shows P&L in each scenario (its
    own asset's group, or a joint group marked ALL_ASSETS); None when every scenario counts (joint generators)."""
    if scenarios.group_asset is None:
        return None
    owner = scenarios.group_asset[scenarios.group if picked is None else scenarios.group[picked]]
    return np.asarray((owner == asset) | (owner == ALL_ASSETS))


def with_depeg_scenario(scenarios: ScenarioSet, columns: NDArray[np.int64], move: float) -> ScenarioSet:
    """`scenarios` plus one stablecoin de-peg scenario in a group of its own (docs/model.md, "Collateral").

    The scenario moves the price of every asset in `columns` by -`move` (vol and every other asset
    unchanged, pnl_weight 1). Being its own group, its loss (floored at 0) adds to the market risk. In
    a per-asset grid its group shocks no traded asset (`group_asset` -1), so instruments show no P&L
    there; in a joint set (fhs, mc) options also decay over the MPOR in it, as in every joint scenario.
    No stablecoin column, or `move` 0: `scenarios` itself.
    """
    if columns.size == 0 or move == 0.0:
        return scenarios
    n_assets = scenarios.n_assets
    price = np.zeros((1, n_assets))
    price[0, columns] = -move
    group = int(scenarios.group[-1]) + 1 if scenarios.group.size else 0
    group_asset = scenarios.group_asset
    repeats = scenarios.repeats
    return replace(
        scenarios,
        price_rows=np.vstack([scenarios.price_rows, price]),
        vol_rows=np.vstack([scenarios.vol_rows, np.zeros((1, n_assets))]),
        pnl_weight=np.append(scenarios.pnl_weight, 1.0),
        group=np.append(scenarios.group, np.int32(group)).astype(np.int32),
        group_asset=None if group_asset is None else np.append(group_asset, -1).astype(np.int64),
        repeats=None if repeats is None else np.append(repeats, -1).astype(np.int64),
        labels=(*scenarios.labels, f"stablecoin de-peg -{move:.0%}"),
    )
