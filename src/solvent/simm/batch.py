"""SIMM for every portfolio of a CRIF at once: calculator.py's arithmetic over integer-coded arrays.

Over 600 lines because it follows calculator.py and margins.py stage for stage (units, netting, delta, vega,
curvature, base correlation, the totals), so that each stage can be read beside the twin it is tested against.

The rows are split into units (side, portfolio, regulation), netted per risk factor with one sort, and
every margin is computed for all units together: weighted sensitivities and concentration factors by
segment sums, the intra-bucket sums sum_ij WS_i WS_j rho_ij f_ij over the pairs of each bucket, the
inter-bucket (or cross-currency) aggregation over the pairs of buckets of each risk class, curvature's
theta and lambda per risk class, then the risk-class, product-class and portfolio totals. Weights,
thresholds and correlations come from the same scalar functions as the per-portfolio calculator
(margins.py), called once per distinct combination of what they read. A post unit with its call unit's
rows (always, when regulations are not enforced) takes the call unit's delta and vega margins and
recomputes only curvature, signs flipped. Additional IM (parameter rows) and the winning regulation reuse
calculator.py per unit that has them. tests/test_simm_batch.py ties this to `calculator.calculate` (the slow
twin) margin by margin.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from solvent.simm.calculator import (
    MARGIN_TYPES,
    PRODUCT_CLASSES,
    RISK_CLASSES,
    ResultKey,
    SimmReport,
    SimmResult,
    _additional,
    _fx_pair,
    _net,
    _regulations,
    _winner,
)
from solvent.simm.calibration import Calibration
from solvent.simm.columns import CrifColumns
from solvent.simm.crif import PARAMETER_TYPES
from solvent.simm.margins import (
    CALCULATION_CURRENCY,
    Sensitivity,
    correlation,
    curvature_lambda,
    risk_weight,
    sigma,
)

_TINY = (42 * 2.220446049250313e-16) ** 2
_IR_DELTA = ("Risk_IRCurve", "Risk_Inflation", "Risk_XCcyBasis")
_IR_VOL = ("Risk_IRVol", "Risk_InflationVol")
# bucketed risk type -> (risk class, margin type of its delta/vega margin)
_BUCKETED = {
    "Risk_FX": ("FX", "Delta"), "Risk_FXVol": ("FX", "Vega"),
    "Risk_CreditQ": ("CreditQualifying", "Delta"), "Risk_CreditVol": ("CreditQualifying", "Vega"),
    "Risk_CreditNonQ": ("CreditNonQualifying", "Delta"), "Risk_CreditVolNonQ": ("CreditNonQualifying", "Vega"),
    "Risk_Equity": ("Equity", "Delta"), "Risk_EquityVol": ("Equity", "Vega"),
    "Risk_Commodity": ("Commodity", "Delta"), "Risk_CommodityVol": ("Commodity", "Vega"),
    "Risk_BaseCorr": ("CreditQualifying", "BaseCorr"),
}  # fmt: skip
_CURVATURE = ("Risk_FXVol", "Risk_CreditVol", "Risk_CreditVolNonQ", "Risk_EquityVol", "Risk_CommodityVol")
_RF_LABELS = ("Risk_CreditVol", "Risk_CreditVolNonQ")


# a product class or bucket per row: one name for all, or (codes, names)
_Names = str | tuple[np.ndarray, Sequence[str]]


class _Out:
    """Margins of all units as rows (unit, key, value), each key (product class, risk class, margin type,
    bucket) registered once and referred to by its number."""

    def __init__(self) -> None:
        self.index: dict[ResultKey, int] = {}
        self.units: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def emit(self, units: np.ndarray, pcs: _Names, rc: str, mt: str, buckets: _Names, values: np.ndarray) -> None:
        n = len(units)
        if not n:
            return
        pc_codes, pc_names = (np.zeros(n, dtype=np.int64), (pcs,)) if isinstance(pcs, str) else pcs
        b_codes, b_names = (np.zeros(n, dtype=np.int64), (buckets,)) if isinstance(buckets, str) else buckets
        nb = len(b_names)
        uniq, inverse = np.unique(pc_codes * nb + b_codes, return_inverse=True)
        ids = [
            self.index.setdefault((pc_names[u // nb] or "Empty", rc, mt, b_names[u % nb]), len(self.index))
            for u in uniq.tolist()
        ]
        self.units.append(units)
        self.keys.append(np.array(ids, dtype=np.int64)[inverse])
        self.values.append(values)

    def copy_to(self, mirror: np.ndarray) -> None:
        """Repeat every row so far of a unit u with mirror[u] >= 0 for unit mirror[u]."""
        for n in range(len(self.units)):
            chosen = np.flatnonzero(mirror[self.units[n]] >= 0)
            if len(chosen):
                self.units.append(mirror[self.units[n][chosen]])
                self.keys.append(self.keys[n][chosen])
                self.values.append(self.values[n][chosen])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.units:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(self.units), np.concatenate(self.keys), np.concatenate(self.values)


@dataclass(frozen=True)
class _Factors:
    """Netted risk factors, one per row: codes into `values`, USD amount, and the unit's curvature multiplier."""

    unit: np.ndarray
    pc: np.ndarray
    rt: np.ndarray
    q: np.ndarray
    b: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    amount: np.ndarray
    multiplier: np.ndarray
    values: dict[str, tuple[str, ...]]  # "pc", "rt", "q", "b", "l1", "l2" -> strings

    def take(self, idx: np.ndarray) -> _Factors:
        arrays = {k: getattr(self, k)[idx] for k in ("unit", "pc", "rt", "q", "b", "l1", "l2", "amount", "multiplier")}
        return _Factors(**arrays, values=self.values)

    def __len__(self) -> int:
        return len(self.unit)

    def text(self, field: str, i: int) -> str:
        return self.values[field][int(getattr(self, field)[i])]

    def rt_in(self, names: Sequence[str]) -> np.ndarray:
        return np.isin(self.rt, [i for i, v in enumerate(self.values["rt"]) if v in names])


# ---------------------------------------------------------------------------------------------- array helpers


_DENSE = 1 << 22  # a key span up to which lookups use a table instead of a sort

# integer codes and how many values they can take
_Key = tuple[np.ndarray, int]


def _key(columns: Sequence[_Key]) -> _Key:
    """One code per row for the combination of the columns' codes (equal rows, equal code)."""
    n = len(columns[0][0])
    key, span = np.zeros(n, dtype=np.int64), 1
    for codes, size in columns:
        if span * max(size, 1) >= 2**62:
            key, span = _compact((key, span))
        key, span = key * max(size, 1) + codes, span * max(size, 1)
    return key, span


def _compact(key: _Key) -> _Key:
    """The same grouping with codes 0..count-1, in the order of the original codes."""
    codes, span = key
    if span <= _DENSE:
        used = np.zeros(span, dtype=bool)
        used[codes] = True
        rank = np.cumsum(used) - 1
        return rank[codes], int(used.sum())
    uniq, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), len(uniq)


def _segments(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment id per row, start of each segment) of rows sorted so that equal keys are adjacent."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.cumsum(change) - 1, np.flatnonzero(change)


def _pairs(seg: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) over every ordered pair of rows (i == j included) within each segment."""
    sizes = np.diff(np.append(starts, len(seg)))
    per = sizes[seg]
    i = np.repeat(np.arange(len(seg)), per)
    offset = np.arange(len(i)) - np.repeat(np.cumsum(per) - per, per)
    return i, starts[seg[i]] + offset


def _lookup(fn: Callable[[int], float], key: _Key) -> np.ndarray:
    """fn(row) for every row, called once per distinct key (fn must depend on the row only through its key)."""
    codes, span = key
    if len(codes) == 0:
        return np.zeros(0)
    if span > _DENSE:
        codes, span = _compact(key)
    first = np.full(span, -1, dtype=np.int64)
    first[codes] = np.arange(len(codes))
    used = np.flatnonzero(first >= 0)
    table = np.zeros(span)
    table[used] = [fn(r) for r in first[used].tolist()]
    return table[codes]


def _sum(seg: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    return np.bincount(seg, weights=values, minlength=count)[:count]


def _factor_key(f: _Factors, fields: Sequence[str]) -> _Key:
    units = int(f.unit.max(initial=0)) + 1
    return _key([(getattr(f, x), len(f.values[x]) if x in f.values else units) for x in fields])


def _pair_corr(
    f: _Factors,
    seg: np.ndarray,
    starts: np.ndarray,
    rho: Callable[[int, int], float],
    key: Callable[[np.ndarray, np.ndarray], _Key],
    *,
    squared: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, rho_ij) over the ordered pairs of each segment, rho_ii = 1; rho(i, j) once per distinct key(i, j)."""
    i, j = _pairs(seg, starts)
    corr = _lookup(lambda r: rho(int(i[r]), int(j[r])), key(i, j))
    if squared:
        corr = corr * corr
    corr[i == j] = 1.0
    return i, j, corr


def _descriptor_pairs(f: _Factors, fields: Sequence[str]) -> Callable[[np.ndarray, np.ndarray], _Key]:
    """Pairs keyed by the `fields` of both factors."""
    desc, count = _compact(_factor_key(f, fields))
    return lambda i, j: _key([(desc[i], count), (desc[j], count)])


def _bucketed_pairs(f: _Factors, *, labels: bool = True) -> Callable[[np.ndarray, np.ndarray], _Key]:
    """Pairs keyed by what margins.correlation() reads of two sensitivities of a bucketed risk type: the risk type,
    both buckets, whether qualifiers (and, with `labels`, label1 and label2) are equal, and FX's two currencies."""
    fx = _is(f, "Risk_FX")
    fxq, nfx = _compact((np.where(fx, f.q, 0), len(f.values["q"])))
    nrt, nb = len(f.values["rt"]), len(f.values["b"])

    def key(i: np.ndarray, j: np.ndarray) -> _Key:
        same = [(f.q[i] == f.q[j]).astype(np.int64)]
        if labels:
            same += [(f.l1[i] == f.l1[j]).astype(np.int64), (f.l2[i] == f.l2[j]).astype(np.int64)]
        columns = [(f.rt[i], nrt), (f.b[i], nb), (f.b[j], nb), *((x, 2) for x in same), (fxq[i], nfx), (fxq[j], nfx)]
        return _key(columns)

    return key


def _aggregate(
    cls: np.ndarray, k: np.ndarray, s: np.ndarray, gamma: Callable[[np.ndarray, np.ndarray], np.ndarray], count: int
) -> np.ndarray:
    """Per class: sum K_b^2 + sum_{b != c} gamma_bc S_b S_c, S_b clamped to [-K_b, K_b] (buckets sorted by class)."""
    seg, starts = _segments(cls)
    i, j = _pairs(seg, starts)
    off = i != j
    i, j = i[off], j[off]
    clamped = np.clip(s, -k, k)
    total = _sum(cls, k * k, count)
    return np.asarray(total + _sum(cls[i], gamma(i, j) * clamped[i] * clamped[j], count))


def _sqrt(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(np.maximum(x, 0.0)))


def _names(f: _Factors, field: str, rows: np.ndarray) -> tuple[np.ndarray, Sequence[str]]:
    return getattr(f, field)[rows], f.values[field]


def _pc_names(f: _Factors, rows: np.ndarray) -> tuple[np.ndarray, Sequence[str]]:
    return f.pc[rows], f.values["pc"]


def _sens(f: _Factors, r: int) -> Sensitivity:
    return Sensitivity(f.text("rt", r), f.text("q", r), f.text("b", r), f.text("l1", r), f.text("l2", r), 0.0)


def _head(f: _Factors, r: int) -> Sensitivity:
    return Sensitivity(f.text("rt", r), f.text("q", r), f.text("b", r), "", "", 0.0)


def _lambda(theta: np.ndarray) -> np.ndarray:
    return np.array([curvature_lambda(t) for t in theta.tolist()], dtype=float)


def _is_zero(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(x) < _TINY)


# ---------------------------------------------------------------------------------------------- bucketed classes


@dataclass(frozen=True)
class _Buckets:
    """Per-bucket sums of one margin type: the factors, where each bucket starts, and its K and S."""

    g: _Factors
    starts: np.ndarray
    k: np.ndarray
    s: np.ndarray
    residual: np.ndarray  # per bucket: is it the Residual bucket
    cls: np.ndarray  # per bucket: its (unit, product class, risk type) class
    cstarts: np.ndarray  # first bucket of each class


def _buckets(g: _Factors, ws: np.ndarray, k2: np.ndarray, seg: np.ndarray, starts: np.ndarray) -> _Buckets:
    heads = starts
    residual = np.array([v == "Residual" for v in g.values["b"]], dtype=bool)[g.b[heads]]
    cls, cstarts = _segments(g.unit[heads], g.pc[heads], g.rt[heads])
    return _Buckets(g, starts, _sqrt(k2), _sum(seg, ws, len(starts)), residual, cls, cstarts)


def _inter(cal: Calibration, bk: _Buckets, *, squared: bool) -> np.ndarray:
    """Per class: the inter-bucket sum over its non-residual buckets, gamma between each bucket's first qualifier."""
    nr = np.flatnonzero(~bk.residual)
    heads = bk.starts[nr]
    g = bk.g

    def gamma(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        a, b = heads[i], heads[j]
        key = _bucketed_pairs(g, labels=False)(a, b)
        out = _lookup(
            lambda r: correlation(cal, g.text("rt", int(a[r])), _head(g, int(a[r])), _head(g, int(b[r]))), key
        )
        return out * out if squared else out

    return _aggregate(bk.cls[nr], bk.k[nr], bk.s[nr], gamma, len(bk.cstarts))


def _bucket_rows(bk: _Buckets, rows: np.ndarray) -> tuple[np.ndarray, _Names, _Names]:
    """(unit, product class, bucket name) of the buckets at `rows`."""
    heads = bk.starts[rows]
    return bk.g.unit[heads], _pc_names(bk.g, heads), _names(bk.g, "b", heads)


def _class_rows(bk: _Buckets, classes: np.ndarray) -> tuple[np.ndarray, _Names, _Names]:
    heads = bk.starts[bk.cstarts[classes]]
    return bk.g.unit[heads], _pc_names(bk.g, heads), _names(bk.g, "rt", heads)


def _delta_vega(cal: Calibration, f: _Factors, out: _Out) -> None:
    """delta_vega() of every bucketed risk type (credit, equity, commodity, FX, base correlation) of every unit."""
    g = f.take(np.flatnonzero(f.rt_in(tuple(_BUCKETED))))
    if not len(g):
        return
    seg, starts = _segments(g.unit, g.pc, g.rt, g.b)
    rt_names, q_names = g.values["rt"], g.values["q"]
    usd_fx = np.zeros(len(g), dtype=bool)
    if "Risk_FX" in rt_names and CALCULATION_CURRENCY in q_names:
        usd_fx = (g.rt == rt_names.index("Risk_FX")) & (g.q == q_names.index(CALCULATION_CURRENCY))
    rtqb = _factor_key(g, ("rt", "q", "b"))
    sig = _lookup(lambda r: sigma(cal, g.text("rt", r), g.text("q", r), g.text("b", r)), rtqb)
    hvr = _lookup(lambda r: cal.hvr.get(g.text("rt", r), 1.0), _factor_key(g, ("rt",)))
    scaled = g.amount * sig * hvr
    qseg, qstarts = _segments(seg, g.q)
    qsum = _sum(qseg, np.where(usd_fx, 0.0, scaled), len(qstarts))
    thr = _lookup(lambda r: 1.0 if usd_fx[r] else cal.threshold(g.text("rt", r), g.text("q", r), g.text("b", r)), rtqb)[
        qstarts
    ]
    cr = np.where(usd_fx[qstarts], 1.0, np.maximum(1.0, np.sqrt(np.abs(qsum / thr))))[qseg]
    rw = _lookup(
        lambda r: 0.0 if usd_fx[r] else risk_weight(cal, *(g.text(x, r) for x in ("rt", "q", "b", "l1"))),
        _factor_key(g, ("rt", "q", "b", "l1")),
    )
    ws = rw * scaled * cr

    def rho(i: int, j: int) -> float:
        if usd_fx[i] or usd_fx[j]:
            return 0.0
        return correlation(cal, g.text("rt", i), _sens(g, i), _sens(g, j))

    i, j, corr = _pair_corr(g, seg, starts, rho, _bucketed_pairs(g))
    terms = ws[i] * ws[j] * (corr * (np.minimum(cr[i], cr[j]) / np.maximum(cr[i], cr[j])))
    bk = _buckets(g, ws, _sum(seg[i], terms, len(starts)), seg, starts)
    residual = _sum(bk.cls[bk.residual], bk.k[bk.residual], len(bk.cstarts))
    margin = _sqrt(_inter(cal, bk, squared=False)) + residual
    # FX is broken down by qualifier: the K of the pairs of one qualifier's sensitivities
    fx = np.array([v in ("Risk_FX", "Risk_FXVol") for v in rt_names], dtype=bool)[g.rt]
    same = (qseg[i] == qseg[j]) & fx[i]
    kq = _sqrt(_sum(qseg[i][same], terms[same], len(qstarts)))
    for rt in np.unique(g.rt[starts]).tolist():
        rc, mt = _BUCKETED[rt_names[rt]]
        classes = np.flatnonzero(g.rt[starts[bk.cstarts]] == rt)
        if rt_names[rt] in ("Risk_FX", "Risk_FXVol"):
            rows = qstarts[np.isin(seg[qstarts], np.flatnonzero(np.isin(bk.cls, classes))) & ~usd_fx[qstarts]]
            out.emit(g.unit[rows], _pc_names(g, rows), rc, mt, _names(g, "q", rows), kq[qseg[rows]])
        res = classes[~_is_zero(residual[classes])]
        unit, pcs, _ = _class_rows(bk, res)
        out.emit(unit, pcs, rc, mt, "Residual", residual[res])
        if rt_names[rt] not in ("Risk_FX", "Risk_FXVol"):
            buckets = np.flatnonzero(np.isin(bk.cls, classes) & ~bk.residual)
            unit, pcs, names = _bucket_rows(bk, buckets)
            out.emit(unit, pcs, rc, mt, names, bk.k[buckets])
        unit, pcs, _ = _class_rows(bk, classes)
        out.emit(unit, pcs, rc, mt, "All", margin[classes])


def _curvature(cal: Calibration, f: _Factors, out: _Out) -> None:
    """curvature() of every bucketed vega risk type (credit, equity, commodity, FX) of every unit."""
    g = f.take(np.flatnonzero(f.rt_in(_CURVATURE)))
    if not len(g):
        return
    seg, starts = _segments(g.unit, g.pc, g.rt, g.b)
    rt_names = g.values["rt"]
    sig = _lookup(
        lambda r: sigma(cal, g.text("rt", r), g.text("q", r), g.text("b", r)), _factor_key(g, ("rt", "q", "b"))
    )
    cw = _lookup(lambda r: cal.curvature_weight(g.text("l1", r)), _factor_key(g, ("l1",)))
    ws = cw * ((g.amount * g.multiplier) * sig)
    if "Risk_EquityVol" in rt_names and "12" in g.values["b"]:
        ws[(g.rt == rt_names.index("Risk_EquityVol")) & (g.b == g.values["b"].index("12"))] = 0.0
    i, j, corr = _pair_corr(
        g, seg, starts, lambda a, b: correlation(cal, g.text("rt", a), _sens(g, a), _sens(g, b)),
        _bucketed_pairs(g), squared=True,
    )  # fmt: skip
    bk = _buckets(g, ws, _sum(seg[i], ws[i] * ws[j] * corr, len(starts)), seg, starts)
    qseg, qstarts = _segments(seg, g.q)
    rf = np.array([v in _RF_LABELS for v in rt_names], dtype=bool)[g.rt]
    per_q = _sum(qseg, np.where(rf, np.abs(ws), ws), len(qstarts))
    absolute = _sum(seg[qstarts], np.abs(per_q), len(starts))
    n = len(bk.cstarts)
    nr, res = ~bk.residual, bk.residual
    sum_s, sum_abs = _sum(bk.cls[nr], bk.s[nr], n), _sum(bk.cls[nr], absolute[nr], n)
    live = ~_is_zero(sum_abs)
    theta = np.minimum(np.divide(sum_s, sum_abs, out=np.zeros(n), where=live), 0.0)
    inner = _inter(cal, bk, squared=True)
    margin = np.where(live, np.maximum(sum_s + _lambda(theta) * _sqrt(inner), 0.0), 0.0)
    res_k, res_s, res_abs = (_sum(bk.cls[res], x[res], n) for x in (bk.k, bk.s, absolute))
    res_live = ~_is_zero(res_abs)
    res_theta = np.minimum(np.divide(res_s, res_abs, out=np.zeros(n), where=res_live), 0.0)
    res_margin = np.maximum(res_s + _lambda(res_theta) * res_k, 0.0)
    margin = margin + np.where(res_live, res_margin, 0.0)
    for rt in np.unique(g.rt[starts]).tolist():
        rc = _BUCKETED[rt_names[rt]][0]
        classes = np.flatnonzero(g.rt[starts[bk.cstarts]] == rt)
        buckets = np.flatnonzero(np.isin(bk.cls, classes) & nr)
        unit, pcs, names = _bucket_rows(bk, buckets)
        out.emit(unit, pcs, rc, "Curvature", names, bk.k[buckets])
        shown = classes[res_live[classes]]
        unit, pcs, _ = _class_rows(bk, shown)
        out.emit(unit, pcs, rc, "Curvature", "Residual", res_margin[shown])
        unit, pcs, _ = _class_rows(bk, classes)
        out.emit(unit, pcs, rc, "Curvature", "All", margin[classes])


# ---------------------------------------------------------------------------------------------- interest rate


def _by_currency(f: _Factors, names: Sequence[str]) -> tuple[_Factors, np.ndarray, np.ndarray]:
    """The factors of `names`, sorted by (unit, product class, currency), with their currency segments."""
    g = f.take(np.flatnonzero(f.rt_in(names)))
    g = g.take(np.argsort(_factor_key(g, ("unit", "pc", "q", "rt", "l1", "l2"))[0], kind="stable"))
    seg, starts = _segments(g.unit, g.pc, g.q)
    return g, seg, starts


def _is(g: _Factors, name: str) -> np.ndarray:
    names = g.values["rt"]
    return g.rt == names.index(name) if name in names else np.zeros(len(g), dtype=bool)


def _across_currencies(
    cal: Calibration,
    g: _Factors,
    starts: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    cr: np.ndarray | None,
    *,
    squared: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(class per currency segment, per class: the cross-currency sum), gamma = outer correlation (x g(CR))."""
    cls, cstarts = _segments(g.unit[starts], g.pc[starts])
    outer = cal.ir_outer**2 if squared else cal.ir_outer

    def gamma(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        if cr is None:
            return np.full(len(i), outer)
        return np.asarray(outer * np.minimum(cr[i], cr[j]) / np.maximum(cr[i], cr[j]))

    return cls, _aggregate(cls, k, s, gamma, len(cstarts))


def _ir_vol_rho(cal: Calibration, g: _Factors) -> Callable[[int, int], float]:
    table = cal.intra["Risk_IRCurve"]

    def rho(i: int, j: int) -> float:
        a, b = g.text("rt", i), g.text("rt", j)
        if a == b == "Risk_IRVol":
            la, lb = g.text("l1", i), g.text("l1", j)
            return 1.0 if la == lb else table[("", la, lb)]
        return 1.0 if a == b else cal.ir_inflation

    return rho


def _emit_ir(out: _Out, g: _Factors, starts: np.ndarray, cls: np.ndarray, mt: str, k: np.ndarray,
             total: np.ndarray, shown: np.ndarray) -> None:  # fmt: skip
    """Per currency K and the class total ("All") of the classes in `shown` (a boolean per class)."""
    rows = np.flatnonzero(shown[cls])
    heads = starts[rows]
    out.emit(g.unit[heads], _pc_names(g, heads), "InterestRate", mt, _names(g, "q", heads), k[rows])
    _, first = _segments(cls)
    classes = np.flatnonzero(shown)
    heads = starts[first[classes]]
    out.emit(g.unit[heads], _pc_names(g, heads), "InterestRate", mt, "All", total[classes])


def _ir_delta(cal: Calibration, f: _Factors, out: _Out) -> None:
    """ir_delta() of every unit: IRCurve, Inflation and XCcyBasis per currency, then across currencies."""
    g, seg, starts = _by_currency(f, _IR_DELTA)
    if not len(g):
        return
    curve, xccy = _is(g, "Risk_IRCurve"), _is(g, "Risk_XCcyBasis")
    thr = _lookup(lambda r: cal.threshold("Risk_IRCurve", g.text("q", r), ""), _factor_key(g, ("q",)))[starts]
    cr_ccy = np.maximum(1.0, np.sqrt(np.abs(_sum(seg, np.where(xccy, 0.0, g.amount), len(starts)) / thr)))
    cr = np.where(xccy, 1.0, cr_ccy[seg])
    rw = _lookup(
        lambda r: risk_weight(cal, g.text("rt", r), g.text("q", r), "", g.text("l1", r))
        if curve[r] else cal.flat_weights[g.text("rt", r)],
        _factor_key(g, ("rt", "q", "l1")),
    )  # fmt: skip
    ws = rw * g.amount * cr
    table = cal.intra["Risk_IRCurve"]

    def rho(i: int, j: int) -> float:
        if curve[i] and curve[j]:
            la, lb = g.text("l1", i), g.text("l1", j)
            tenor = 1.0 if la == lb else table[("", la, lb)]
            return tenor * (1.0 if g.text("l2", i) == g.text("l2", j) else cal.ir_sub_curve)
        if g.rt[i] == g.rt[j]:
            return 1.0
        return cal.ir_xccy if xccy[i] or xccy[j] else cal.ir_inflation

    i, j, corr = _pair_corr(g, seg, starts, rho, _descriptor_pairs(g, ("rt", "l1", "l2")))
    k = _sqrt(_sum(seg[i], ws[i] * ws[j] * corr, len(starts)))
    cls, total = _across_currencies(cal, g, starts, k, _sum(seg, ws, len(starts)), cr_ccy, squared=False)
    _emit_ir(out, g, starts, cls, "Delta", k, _sqrt(total), np.ones(len(total), dtype=bool))


def _ir_vega(cal: Calibration, f: _Factors, out: _Out) -> None:
    """ir_vega() of every unit: IRVol and InflationVol per currency, then across currencies."""
    g, seg, starts = _by_currency(f, _IR_VOL)
    if not len(g):
        return
    thr = _lookup(lambda r: cal.threshold("Risk_IRVol", g.text("q", r), ""), _factor_key(g, ("q",)))[starts]
    cr_ccy = np.maximum(1.0, np.sqrt(np.abs(_sum(seg, g.amount, len(starts)) / thr)))
    rw = _lookup(lambda r: cal.flat_weights[g.text("rt", r)], _factor_key(g, ("rt",)))
    ws = rw * g.amount * cr_ccy[seg]
    i, j, corr = _pair_corr(g, seg, starts, _ir_vol_rho(cal, g), _descriptor_pairs(g, ("rt", "l1")))
    k = _sqrt(_sum(seg[i], ws[i] * ws[j] * corr, len(starts)))
    cls, total = _across_currencies(cal, g, starts, k, _sum(seg, ws, len(starts)), cr_ccy, squared=False)
    _emit_ir(out, g, starts, cls, "Vega", k, _sqrt(total), np.ones(len(total), dtype=bool))


def _ir_curvature(cal: Calibration, f: _Factors, out: _Out) -> None:
    """ir_curvature() of every unit: from the IRVol/InflationVol vegas, HVR_IR^-2 scaled."""
    g, seg, starts = _by_currency(f, _IR_VOL)
    if not len(g):
        return
    cw = _lookup(lambda r: cal.curvature_weight(g.text("l1", r)), _factor_key(g, ("l1",)))
    ws = cw * (g.amount * g.multiplier)
    i, j, corr = _pair_corr(g, seg, starts, _ir_vol_rho(cal, g), _descriptor_pairs(g, ("rt", "l1")), squared=True)
    k = _sqrt(_sum(seg[i], ws[i] * ws[j] * corr, len(starts)))
    s = _sum(seg, ws, len(starts))
    inflation = _is(g, "Risk_InflationVol")
    absolute = _sum(seg, np.where(inflation, 0.0, np.abs(ws)), len(starts))
    absolute += np.abs(_sum(seg, np.where(inflation, ws, 0.0), len(starts)))
    cls, inner = _across_currencies(cal, g, starts, k, s, None, squared=True)
    n = len(inner)
    sum_ws, sum_abs = _sum(cls, s, n), _sum(cls, absolute, n)
    live = ~_is_zero(sum_abs)
    theta = np.minimum(np.divide(sum_ws, sum_abs, out=np.zeros(n), where=live), 0.0)
    margin = sum_ws + _lambda(theta) * _sqrt(inner)
    total = np.where(live, cal.curvature_scaling * np.maximum(margin, 0.0), 0.0)
    _emit_ir(out, g, starts, cls, "Curvature", k, total, live)
    dead = np.flatnonzero(~live)
    _, first = _segments(cls)
    heads = starts[first[dead]]
    out.emit(g.unit[heads], _pc_names(g, heads), "InterestRate", "Curvature", "All", total[dead])


# ---------------------------------------------------------------------------------------------- totals


def _totals(cal: Calibration, out: _Out, units: int) -> None:
    """calculator._populate() for every unit: risk-class sums, product-class aggregation, totals (added to out)."""
    keys = list(out.index)
    rcs, mts = (*RISK_CLASSES, "All"), (*MARGIN_TYPES, "All")
    pcs = [p for p in PRODUCT_CLASSES if any(k[0] == p and k[3] == "All" for k in keys)]
    if not pcs:
        return
    unit, key, value = out.arrays()
    total = np.array([k[3] == "All" for k in keys], dtype=bool)[key]
    unit, key, value = unit[total], key[total], value[total]
    at = (unit, *(np.array([names.index(k[x]) for k in keys], dtype=np.int64)[key] for x, names in
                  ((0, pcs), (1, rcs), (2, mts))))  # fmt: skip
    m = np.zeros((units, len(pcs), len(rcs), len(mts)))
    present = np.zeros(m.shape, dtype=bool)
    m[at], present[at] = value, True
    nr, nm = len(RISK_CLASSES), len(MARGIN_TYPES)
    for x in range(nm):  # the risk-class margin: the sum of its margin types, in calculator order
        m[:, :, :nr, nm] += m[:, :, :nr, x]
    present[:, :, :nr, nm] = present[:, :, :nr, :nm].any(axis=-1)
    psi = np.array([[1.0 if a == b else cal.risk_class_corr[(a, b)] for b in RISK_CLASSES] for a in RISK_CLASSES])
    across = np.einsum("upam,ab,upbm->upm", m[:, :, :nr, :], psi, m[:, :, :nr, :])
    m[:, :, nr, :] = _sqrt(across)
    present[:, :, nr, :] = present[:, :, :nr, :].any(axis=2)
    for x, pc in enumerate(pcs):
        for b, name in enumerate(mts):
            shown = np.flatnonzero(present[:, x, nr, b])
            out.emit(shown, pc, "All", name, "All", m[shown, x, nr, b])
        for a in range(nr):
            shown = np.flatnonzero(present[:, x, a, nm])
            out.emit(shown, pc, rcs[a], "All", "All", m[shown, x, a, nm])
    summed = np.zeros((units, len(rcs), len(mts)))
    for x in range(len(pcs)):  # product classes in calculator order
        summed += np.where(present[:, x], m[:, x], 0.0)
    anywhere = np.asarray(present.any(axis=1))
    anywhere[:, nr, nm] = True
    anywhere &= np.asarray(present.any(axis=(1, 2, 3)))[:, None, None]
    for a, rc_name in enumerate(rcs):
        for b, mt_name in enumerate(mts):
            shown = np.flatnonzero(anywhere[:, a, b])
            out.emit(shown, "All", rc_name, mt_name, "All", summed[shown, a, b])


def _margins(out: _Out, units: int) -> list[dict[ResultKey, float]]:
    """The margins of each unit as calculator.py keys them (a later row's value wins, as a later update does)."""
    unit, key, value = out.arrays()
    order = np.argsort(unit, kind="stable")
    names = np.empty(len(out.index), dtype=object)
    for k, i in out.index.items():
        names[i] = k
    rows = zip(names[key[order]].tolist(), value[order].tolist(), strict=True)
    sizes = np.bincount(unit, minlength=units).tolist()
    return [dict(itertools.islice(rows, n)) for n in sizes]


# ---------------------------------------------------------------------------------------------- units and netting

# (side, portfolio, regulation)
_Unit = tuple[str, str, str]


def _risk_factors(crif: CrifColumns) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
    """(codes, names) per row of the risk-factor fields calculator._net() keys on (an FX vol's pair sorted)."""
    text = crif.text
    q = text["qualifier"]
    q_values = tuple(sorted(set(q.values) | {_fx_pair(v) for v in q.values}))
    index = {v: i for i, v in enumerate(q_values)}
    plain = np.array([index[v] for v in q.values], dtype=np.int64)
    paired = np.array([index[_fx_pair(v)] for v in q.values], dtype=np.int64)
    rt = text["risk_type"]
    fx_vol = np.array([v == "Risk_FXVol" for v in rt.values], dtype=bool)[rt.codes]
    codes = {
        "pc": text["product_class"].codes, "rt": rt.codes, "q": np.where(fx_vol, paired[q.codes], plain[q.codes]),
        "b": text["bucket"].codes, "l1": text["label1"].codes, "l2": text["label2"].codes,
    }  # fmt: skip
    names = {
        "pc": text["product_class"].values, "rt": rt.values, "q": q_values, "b": text["bucket"].values,
        "l1": text["label1"].values, "l2": text["label2"].values,
    }  # fmt: skip
    return codes, names


def _expand(lists: Sequence[Sequence[int]], inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, unit) for every row r and every unit in lists[inverse[r]]."""
    counts = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.array([u for x in lists for u in x], dtype=np.int64)
    per = counts[inverse]
    row = np.repeat(np.arange(len(inverse)), per)
    position = np.arange(len(row)) - np.repeat(np.cumsum(per) - per, per)
    return row, flat[(np.cumsum(counts) - counts)[inverse[row]] + position]


def _units(crif: CrifColumns, enforce_regulations: bool) -> tuple[list[_Unit], np.ndarray, np.ndarray]:
    """(units sorted, and the row and unit of each (row, unit) membership).

    split_by_regulation()'s rules over the distinct (portfolio, regulation list) pairs instead of the rows.
    """
    portfolio = crif.text["portfolio"]
    sides = []
    regs: dict[tuple[str, str], set[str]] = {}
    for side, field in (("Call", "collect_regulations"), ("Post", "post_regulations")):
        col = crif.text[field]
        sets = [(_regulations(v) if enforce_regulations else {"Unspecified"}) - {"Excluded"} for v in col.values]
        n = max(len(col.values), 1)
        uniq, inverse = np.unique(portfolio.codes * n + col.codes, return_inverse=True)
        pairs = [(portfolio.values[u // n], sets[u % n]) for u in uniq.tolist()]
        for p, names in pairs:
            regs.setdefault((side, p), set()).update(names)
        sides.append((side, pairs, inverse))
    both = sorted(key for key, names in regs.items() if {"SEC", "CFTC"} <= names)
    for names in regs.values():
        if "Unspecified" in names and len(names) > 1:
            names.discard("Unspecified")
    for p in portfolio.values:
        call, post = regs.get(("Call", p), set()), regs.get(("Post", p), set())
        if call == {"Unspecified"} and post != {"Unspecified"}:
            call.clear()
        elif post == {"Unspecified"} and call != {"Unspecified"}:
            post.clear()
    units = sorted((side, p, r) for (side, p), names in regs.items() for r in names)
    ids = {u: i for i, u in enumerate(units)}
    expanded = [
        _expand([[ids[(side, p, r)] for r in sorted(names) if (side, p, r) in ids] for p, names in pairs], inverse)
        for side, pairs, inverse in sides
    ]
    rows = np.concatenate([r for r, _ in expanded])
    members = np.concatenate([m for _, m in expanded])
    if both:  # SEC also takes the CFTC rows of the risk factors it lacks
        codes, names = _risk_factors(crif)
        factor, span = _compact(_key([(codes[k], len(names[k])) for k in ("pc", "rt", "q", "b", "l1", "l2")]))
        sec = np.full(len(units), -1, dtype=np.int64)
        cftc = np.zeros(len(units), dtype=bool)
        for n, (side, p) in enumerate(both):
            sec[ids[(side, p, "SEC")]] = n
            cftc[ids[(side, p, "CFTC")]] = True
        owner = np.full(len(units), -1, dtype=np.int64)
        owner[cftc] = [sec[ids[(side, p, "SEC")]] for side, p, _ in (units[u] for u in np.flatnonzero(cftc))]
        in_sec = sec[members] >= 0
        have = sec[members[in_sec]] * span + factor[rows[in_sec]]
        from_cftc = np.flatnonzero(cftc[members])
        wanted = ~np.isin(owner[members[from_cftc]] * span + factor[rows[from_cftc]], have)
        extra = from_cftc[wanted]
        to_unit = np.array([ids[(side, p, "SEC")] for side, p in both], dtype=np.int64)
        rows = np.concatenate([rows, rows[extra]])
        members = np.concatenate([members, to_unit[owner[members[extra]]]])
    return units, rows, members


def _mirrors(units: Sequence[_Unit], rows: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Per unit: the post unit of the same portfolio and regulation with the same rows (for a call unit), or -1.

    Such a pair has the same delta and vega margins, and curvature with every sensitivity's sign flipped.
    """
    order = np.lexsort((rows, members))
    rows, members = rows[order], members[order]
    bounds = np.searchsorted(members, np.arange(len(units) + 1))
    ids = {u: i for i, u in enumerate(units)}
    pairs = [(i, ids.get(("Post", p, r), -1)) for i, (side, p, r) in enumerate(units) if side == "Call"]
    call = np.array([i for i, j in pairs if j >= 0], dtype=np.int64)
    post = np.array([j for _, j in pairs if j >= 0], dtype=np.int64)
    sizes = np.diff(bounds)
    same_size = sizes[call] == sizes[post]
    call, post = call[same_size], post[same_size]
    n = sizes[call]
    pair = np.repeat(np.arange(len(call)), n)
    offset = np.arange(len(pair)) - np.repeat(np.cumsum(n) - n, n)
    differ = rows[bounds[call][pair] + offset] != rows[bounds[post][pair] + offset]
    same = np.bincount(pair, weights=differ, minlength=len(call)) == 0
    mirror = np.full(len(units), -1, dtype=np.int64)
    mirror[call[same]] = post[same]
    return mirror


def _factors(crif: CrifColumns, rows: np.ndarray, unit: np.ndarray, multiplier: np.ndarray) -> _Factors:
    """The risk factors of every unit, netted (amounts summed per unit and risk factor), sorted by unit and factor."""
    codes, values = _risk_factors(crif)
    cols = {"unit": unit, **{k: v[rows] for k, v in codes.items()}}
    sizes = {"unit": int(unit.max()) + 1 if len(unit) else 1, **{k: len(v) for k, v in values.items()}}
    order = np.argsort(
        _key([(cols[k], sizes[k]) for k in ("unit", "pc", "rt", "b", "q", "l1", "l2")])[0], kind="stable"
    )
    cols = {k: v[order] for k, v in cols.items()}
    _, starts = _segments(*cols.values())
    amount = np.add.reduceat(crif.amount_usd[rows][order], starts) if len(starts) else np.zeros(0)
    heads = {k: v[starts] for k, v in cols.items()}
    return _Factors(**heads, amount=amount, multiplier=multiplier[heads["unit"]], values=values)


def calculate_batch(crif: CrifColumns, cal: Calibration, *, enforce_regulations: bool = True) -> SimmReport:
    """`calculator.calculate` for every portfolio of `crif` at once (same report, to rounding)."""
    units, rows, unit = _units(crif, enforce_regulations)
    rt = crif.text["risk_type"]
    is_param = np.array([v in PARAMETER_TYPES for v in rt.values], dtype=bool)[rt.codes[rows]]
    multiplier = np.array([1.0 if side == "Call" else -1.0 for side, _, _ in units])
    mirror = _mirrors(units, rows, unit)
    mirrored = np.zeros(len(units), dtype=bool)
    mirrored[mirror[mirror >= 0]] = True
    risk = ~is_param & ~mirrored[unit]  # a mirrored post unit is computed from its call unit
    f = _factors(crif, rows[risk], unit[risk], multiplier)
    out = _Out()
    for part in (_ir_delta, _delta_vega, _ir_vega):
        part(cal, f, out)
    out.copy_to(mirror)
    shown = f.take(np.flatnonzero(mirror[f.unit] >= 0))
    flipped = dataclasses.replace(shown, unit=mirror[shown.unit], multiplier=-shown.multiplier)
    for part in (_ir_curvature, _curvature):
        part(cal, f, out)
        part(cal, flipped, out)
    _totals(cal, out, len(units))
    margins = _margins(out, len(units))
    params: dict[int, dict[tuple[str, str, str, str, str, str], list[float]]] = {}
    order = np.argsort(unit[is_param], kind="stable")
    param_units, param_rows = unit[is_param][order], rows[is_param][order]
    bounds = np.flatnonzero(np.diff(param_units)) + 1
    heads = param_units[np.append(0, bounds)].tolist() if len(param_units) else []
    for u, chunk in zip(heads, np.split(param_rows, bounds) if heads else [], strict=True):
        params[u] = _net(crif.records(chunk))
    has_risk = np.zeros(len(units), dtype=bool)
    has_risk[f.unit] = True
    has_risk[mirror[has_risk & (mirror >= 0)]] = True
    results: list[SimmResult] = []
    for u, (side, p, regulation) in enumerate(units):
        net = params.get(u, {})
        if has_risk[u] or any(k[1] == "Param_AddOnFixedAmount" for k in net):
            if net:
                _additional(margins[u], net)
            results.append(SimmResult(portfolio=p, side=side, regulation=regulation, margins=margins[u]))
    by_portfolio: dict[tuple[str, str], list[SimmResult]] = {}
    for r in results:
        by_portfolio.setdefault((r.side, r.portfolio), []).append(r)
    winners = {key: mine[0].regulation if len(mine) == 1 else _winner(mine) for key, mine in by_portfolio.items()}
    return SimmReport(calibration_version=cal.version, mpor_days=cal.mpor_days, results=tuple(results), winners=winners)
