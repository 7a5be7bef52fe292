"""SIMM delta, vega, curvature and base-correlation margin of one risk class within one product class.

Each function takes the netted sensitivities of one portfolio, regulation and product class and
returns the margin per bucket (per currency for interest rate and FX) and in total under "All", or
None where the risk class has no sensitivities. The formulas are ISDA SIMM's (weighted sensitivities,
concentration factors CR, intra-bucket correlations rho and f, bucket aggregation with S_b clamped to
[-K_b, K_b], the curvature lambda(theta)); the choices the methodology leaves open follow the Open
Source Risk Engine's SimmCalculator so that the two agree to the last digit (docs/simm.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from solvent.simm.calibration import Calibration

CALCULATION_CURRENCY = "USD"
_Q995 = float(ndtri(0.995))
_TINY = float((42 * np.finfo(float).eps) ** 2)  # QuantLib's close_enough(x, 0.0)

Margins = dict[str, float]


class Sensitivity(NamedTuple):
    """One netted risk factor: a CRIF row summed over trades (USD amount)."""

    risk_type: str
    qualifier: str
    bucket: str
    label1: str
    label2: str
    amount: float


def curvature_lambda(theta: float) -> float:
    """lambda(theta) = (Phi^-1(0.995)^2 - 1) (1 + theta) - theta."""
    return (_Q995 * _Q995 - 1.0) * (1.0 + theta) - theta


def _is_zero(x: float) -> bool:
    return bool(abs(x) < _TINY)


def _quadratic(ws: np.ndarray, corr: np.ndarray) -> float:
    """ws' corr ws, with corr's diagonal taken as 1."""
    return float(ws @ corr @ ws)


def _clamp(s: float, k: float) -> float:
    return max(min(s, k), -k)


def _concentration(total: float, threshold: float) -> float:
    return max(1.0, math.sqrt(abs(total / threshold)))


def _aggregate(k: Sequence[float], s: Sequence[float], gamma: np.ndarray) -> float:
    """sum K_b^2 + sum_{b != c} gamma_bc S_b S_c, with S_b clamped to [-K_b, K_b] (not square-rooted).

    Plain Python: a portfolio has a handful of buckets, where numpy's per-call cost dominates.
    """
    ss = [_clamp(x, y) for x, y in zip(s, k, strict=True)]
    g = gamma.tolist()
    total = sum(x * x for x in k)
    for i in range(1, len(ss)):
        row = g[i]
        for j in range(i):
            total += 2.0 * row[j] * ss[i] * ss[j]
    return total


# ---------------------------------------------------------------------------------------------- weights


def risk_weight(cal: Calibration, risk_type: str, qualifier: str, bucket: str, label1: str) -> float:
    """RW_k of one sensitivity."""
    if risk_type == "Risk_FX":
        return cal.bucket_weights["Risk_FX"][
            ("", cal.fx_groups.group(CALCULATION_CURRENCY), cal.fx_groups.group(qualifier))
        ]
    if risk_type in cal.flat_weights:
        return cal.flat_weights[risk_type]
    if risk_type == "Risk_IRCurve":
        return cal.tenor_weights[(cal.ir_buckets.group(qualifier), label1, "")]
    return cal.bucket_weights[risk_type][(bucket, "", "")]


def sigma(cal: Calibration, risk_type: str, qualifier: str, bucket: str) -> float:
    """sigma_kj that turns a vega into vega risk: the delta risk weight times sqrt(365/14)/Phi^-1(0.99)."""
    if risk_type == "Risk_EquityVol":
        return cal.sigma_multiplier * risk_weight(cal, "Risk_Equity", qualifier, bucket, "")
    if risk_type == "Risk_CommodityVol":
        return cal.sigma_multiplier * risk_weight(cal, "Risk_Commodity", qualifier, bucket, "")
    if risk_type == "Risk_FXVol":
        g1, g2 = cal.fx_groups.group(qualifier[:3]), cal.fx_groups.group(qualifier[3:6])
        return cal.sigma_multiplier * cal.bucket_weights["Risk_FX"][("", g2, g1)]
    return 1.0


# ---------------------------------------------------------------------------------------------- correlations

_EQUITY = ("Risk_Equity", "Risk_EquityVol")
_CREDIT_Q = ("Risk_CreditQ", "Risk_CreditVol")
_CREDIT_NQ = ("Risk_CreditNonQ", "Risk_CreditVolNonQ")
_COMMODITY = ("Risk_Commodity", "Risk_CommodityVol")


def correlation(cal: Calibration, rt: str, a: Sensitivity, b: Sensitivity) -> float:
    """Correlation between two sensitivities of the same (non interest-rate) risk type."""
    if rt == "Risk_FX":
        g = cal.fx_groups.group
        return cal.intra["Risk_FX"][(g(CALCULATION_CURRENCY), g(a.qualifier), g(b.qualifier))]
    if a.qualifier == b.qualifier and a.label1 == b.label1 and a.label2 == b.label2:
        return 1.0
    same_q = a.qualifier == b.qualifier
    residual = a.bucket == "Residual" or b.bucket == "Residual"
    if rt in _EQUITY:
        if residual:
            return 1.0 if same_q else 0.0
        if a.bucket == b.bucket:
            return 1.0 if same_q else cal.intra["Risk_Equity"][(a.bucket, "", "")]
        return cal.inter["Risk_Equity"][("", a.bucket, b.bucket)]
    if rt in _CREDIT_Q:
        if residual:
            return cal.crq_residual if a.bucket == b.bucket else 0.0
        if a.bucket == b.bucket:
            return cal.crq_same if same_q else cal.crq_diff
        return cal.inter["Risk_CreditQ"][("", a.bucket, b.bucket)]
    if rt in _CREDIT_NQ:
        if residual:
            return cal.crnq_residual if a.bucket == b.bucket else 0.0
        if a.bucket == b.bucket:
            return cal.crnq_same if a.label2 == b.label2 else cal.crnq_diff
        return cal.crnq_inter
    if rt in _COMMODITY:
        if a.bucket == b.bucket:
            return 1.0 if same_q else cal.intra["Risk_Commodity"][(a.bucket, "", "")]
        return cal.inter["Risk_Commodity"][("", a.bucket, b.bucket)]
    if rt == "Risk_FXVol":
        return 1.0 if same_q else cal.fx_vol
    if rt == "Risk_BaseCorr":
        return cal.base_corr
    return 0.0


def _matrix(cal: Calibration, rt: str, items: Sequence[Sensitivity]) -> np.ndarray:
    n = len(items)
    out = np.eye(n)
    for i in range(n):
        for j in range(i):
            out[i, j] = out[j, i] = correlation(cal, rt, items[i], items[j])
    return out


def _tenor_corr(cal: Calibration, tenors: Sequence[str]) -> np.ndarray:
    table = cal.intra["Risk_IRCurve"]
    return np.array([[1.0 if x == y else table[("", x, y)] for y in tenors] for x in tenors])


def _by(items: Sequence[Sensitivity], attribute: str) -> dict[str, list[Sensitivity]]:
    out: dict[str, list[Sensitivity]] = {}
    for item in items:
        out.setdefault(getattr(item, attribute), []).append(item)
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------- interest rate


def ir_delta(cal: Calibration, items: Sequence[Sensitivity]) -> Margins | None:
    """Interest-rate delta: IRCurve, Inflation and XCcyBasis per currency, then across currencies."""
    rows = [s for s in items if s.risk_type in ("Risk_IRCurve", "Risk_Inflation", "Risk_XCcyBasis")]
    if not rows:
        return None
    k: dict[str, float] = {}
    s: dict[str, float] = {}
    cr: dict[str, float] = {}
    for ccy, group in _by(rows, "qualifier").items():
        curve = [x for x in group if x.risk_type == "Risk_IRCurve"]
        inflation = sum(x.amount for x in group if x.risk_type == "Risk_Inflation")
        xccy = sum(x.amount for x in group if x.risk_type == "Risk_XCcyBasis")
        has_inflation = any(x.risk_type == "Risk_Inflation" for x in group)
        cr[ccy] = _concentration(sum(x.amount for x in curve) + inflation, cal.threshold("Risk_IRCurve", ccy, ""))
        ws = np.array([risk_weight(cal, x.risk_type, ccy, "", x.label1) * x.amount * cr[ccy] for x in curve])
        corr = _tenor_corr(cal, [x.label1 for x in curve])
        sub = np.array([[1.0 if a.label2 == b.label2 else cal.ir_sub_curve for b in curve] for a in curve])
        k2 = _quadratic(ws, corr * sub) if curve else 0.0
        total = float(ws.sum()) if curve else 0.0
        ws_inf = cal.flat_weights["Risk_Inflation"] * inflation * cr[ccy] if has_inflation else 0.0
        k2 += ws_inf * ws_inf + 2.0 * cal.ir_inflation * ws_inf * total
        ws_x = cal.flat_weights["Risk_XCcyBasis"] * xccy
        k2 += ws_x * ws_x + 2.0 * cal.ir_xccy * ws_x * total + 2.0 * cal.ir_xccy * ws_inf * ws_x
        s[ccy] = total + ws_inf + ws_x
        k[ccy] = math.sqrt(max(k2, 0.0))
    return {**k, "All": math.sqrt(max(_across_currencies(cal, k, s, cr, squared=False), 0.0))}


def _across_currencies(cal: Calibration, k: Margins, s: Margins, cr: Margins | None, *, squared: bool) -> float:
    """The sum under the square root across currencies: gamma = the outer correlation (squared for curvature) x g."""
    ccys = list(k)
    rho = cal.ir_outer**2 if squared else cal.ir_outer
    gamma = np.full((len(ccys), len(ccys)), rho)
    if cr is not None:
        c = np.array([cr[x] for x in ccys])
        gamma = gamma * np.minimum.outer(c, c) / np.maximum.outer(c, c)
    return _aggregate([k[x] for x in ccys], [s[x] for x in ccys], gamma)


def _ir_vol_groups(items: Sequence[Sensitivity]) -> dict[str, list[Sensitivity]]:
    return _by([s for s in items if s.risk_type in ("Risk_IRVol", "Risk_InflationVol")], "qualifier")


def ir_vega(cal: Calibration, items: Sequence[Sensitivity]) -> Margins | None:
    """Interest-rate vega: IRVol and InflationVol per currency, then across currencies."""
    groups = _ir_vol_groups(items)
    if not groups:
        return None
    k: dict[str, float] = {}
    s: dict[str, float] = {}
    cr: dict[str, float] = {}
    for ccy, group in groups.items():
        cr[ccy] = _concentration(sum(x.amount for x in group), cal.threshold("Risk_IRVol", ccy, ""))
        ws = np.array([cal.flat_weights[x.risk_type] * x.amount * cr[ccy] for x in group])
        corr = _ir_vol_corr(cal, group, squared=False)
        k[ccy] = math.sqrt(max(_quadratic(ws, corr), 0.0))
        s[ccy] = float(ws.sum())
    return {**k, "All": math.sqrt(max(_across_currencies(cal, k, s, cr, squared=False), 0.0))}


def _ir_vol_corr(cal: Calibration, group: Sequence[Sensitivity], *, squared: bool) -> np.ndarray:
    table = cal.intra["Risk_IRCurve"]

    def rho(a: Sensitivity, b: Sensitivity) -> float:
        if a.risk_type == b.risk_type == "Risk_IRVol":
            return 1.0 if a.label1 == b.label1 else table[("", a.label1, b.label1)]
        if a.risk_type == b.risk_type:
            return 1.0
        return cal.ir_inflation

    out = np.array([[rho(a, b) for b in group] for a in group])
    return out * out if squared else out


def ir_curvature(cal: Calibration, items: Sequence[Sensitivity], multiplier: float) -> Margins | None:
    """Interest-rate curvature from IRVol/InflationVol vegas (sign flipped for the post side), HVR_IR^-2 scaled."""
    groups = _ir_vol_groups(items)
    if not groups:
        return None
    k: dict[str, float] = {}
    s: dict[str, float] = {}
    sum_ws = sum_abs = 0.0
    for ccy, group in groups.items():
        vol = [x for x in group if x.risk_type == "Risk_IRVol"]
        ws = np.array([cal.curvature_weight(x.label1) * (x.amount * multiplier) for x in vol])
        inf = [x for x in group if x.risk_type == "Risk_InflationVol"]
        ws_inf = sum(cal.curvature_weight(x.label1) * (x.amount * multiplier) for x in inf)
        k2 = _quadratic(ws, _ir_vol_corr(cal, vol, squared=True)) if vol else 0.0
        total = float(ws.sum()) if vol else 0.0
        k2 += ws_inf * ws_inf + 2.0 * cal.ir_inflation**2 * ws_inf * total
        k[ccy] = math.sqrt(max(k2, 0.0))
        s[ccy] = total + ws_inf
        sum_ws += total + ws_inf
        sum_abs += float(np.abs(ws).sum()) + abs(ws_inf)
    if _is_zero(sum_abs):
        return {"All": 0.0}
    theta = min(sum_ws / sum_abs, 0.0)
    inner = _across_currencies(cal, k, s, None, squared=True)
    margin = sum_ws + curvature_lambda(theta) * math.sqrt(max(inner, 0.0))
    return {**k, "All": cal.curvature_scaling * max(margin, 0.0)}


# ---------------------------------------------------------------------------------------------- other classes


def delta_vega(cal: Calibration, rt: str, items: Sequence[Sensitivity]) -> Margins | None:
    """Delta or vega margin of a bucketed risk type (credit, equity, commodity, FX, base correlation)."""
    rows = [s for s in items if s.risk_type == rt]
    if not rows:
        return None
    hvr = cal.hvr.get(rt, 1.0)
    is_fx = rt in ("Risk_FX", "Risk_FXVol")
    buckets = _by(rows, "bucket")
    k: dict[str, float] = {}
    s: dict[str, float] = {}
    out: dict[str, float] = {}
    for bucket, group in buckets.items():
        group = [x for x in group if not (rt == "Risk_FX" and x.qualifier == CALCULATION_CURRENCY)]
        scaled = [x.amount * sigma(cal, rt, x.qualifier, bucket) * hvr for x in group]
        by_q: dict[str, float] = {}
        for x, v in zip(group, scaled, strict=True):
            by_q[x.qualifier] = by_q.get(x.qualifier, 0.0) + v
        cr = {q: _concentration(v, cal.threshold(rt, q, bucket)) for q, v in by_q.items()}
        ws = np.array(
            [
                risk_weight(cal, rt, x.qualifier, bucket, x.label1) * v * cr[x.qualifier]
                for x, v in zip(group, scaled, strict=True)
            ]
        )
        c = np.array([cr[x.qualifier] for x in group])
        f = np.minimum.outer(c, c) / np.maximum.outer(c, c) if group else np.zeros((0, 0))
        weighted = _matrix(cal, rt, group) * f
        k[bucket] = math.sqrt(max(_quadratic(ws, weighted), 0.0)) if group else 0.0
        s[bucket] = float(ws.sum()) if group else 0.0
        if is_fx:  # FX is broken down by currency (pair): the K of that qualifier's own sensitivities
            for q in by_q:
                mask = np.array([x.qualifier == q for x in group])
                out[q] = math.sqrt(max(_quadratic(ws[mask], weighted[np.ix_(mask, mask)]), 0.0))
    residual = k.pop("Residual", 0.0)
    s.pop("Residual", None)
    names = list(k)
    gamma = _bucket_gamma(cal, rt, buckets, names, squared=False)
    margin = math.sqrt(max(_aggregate([k[b] for b in names], [s[b] for b in names], gamma), 0.0)) + residual
    if not _is_zero(residual):
        out["Residual"] = residual
    if not is_fx:
        out.update(k)
    out["All"] = margin
    return out


def _bucket_gamma(
    cal: Calibration, rt: str, buckets: dict[str, list[Sensitivity]], names: Sequence[str], *, squared: bool
) -> np.ndarray:
    """Inter-bucket correlations, looked up (as ORE does) between the first qualifier of each bucket."""
    first = [min(buckets[b], key=lambda x: x.qualifier) for b in names]
    heads = [Sensitivity(rt, x.qualifier, x.bucket, "", "", 0.0) for x in first]
    gamma = _matrix(cal, rt, heads)
    return gamma * gamma if squared else gamma


_RF_LABELS = ("Risk_CreditVol", "Risk_CreditVolNonQ")


def curvature(cal: Calibration, rt: str, items: Sequence[Sensitivity], multiplier: float) -> Margins | None:
    """Curvature margin of a bucketed vega risk type (credit, equity, commodity, FX)."""
    rows = [s for s in items if s.risk_type == rt]
    if not rows:
        return None
    buckets = _by(rows, "bucket")
    k: dict[str, float] = {}
    s: dict[str, float] = {}
    absolute: dict[str, float] = {}
    for bucket, group in buckets.items():
        ws = np.array(
            [
                cal.curvature_weight(x.label1) * ((x.amount * multiplier) * sigma(cal, rt, x.qualifier, bucket))
                for x in group
            ]
        )
        if rt == "Risk_EquityVol" and bucket == "12":
            ws = np.zeros_like(ws)
        corr = _matrix(cal, rt, group)
        k[bucket] = math.sqrt(max(_quadratic(ws, corr * corr), 0.0))
        s[bucket] = float(ws.sum())
        per_q: dict[str, float] = {}
        for x, w in zip(group, ws, strict=True):
            per_q[x.qualifier] = per_q.get(x.qualifier, 0.0) + (abs(float(w)) if rt in _RF_LABELS else float(w))
        absolute[bucket] = sum(abs(v) for v in per_q.values())
    res_k, res_s, res_abs = k.pop("Residual", 0.0), s.pop("Residual", 0.0), absolute.pop("Residual", 0.0)
    names = list(k)
    sum_s, sum_abs = sum(s.values()), sum(absolute.values())
    margin = 0.0
    if not _is_zero(sum_abs):
        theta = min(sum_s / sum_abs, 0.0)
        inner = _aggregate(
            [k[b] for b in names], [s[b] for b in names], _bucket_gamma(cal, rt, buckets, names, squared=True)
        )
        margin = max(sum_s + curvature_lambda(theta) * math.sqrt(max(inner, 0.0)), 0.0)
    out = dict(k)
    if not _is_zero(res_abs):
        theta = min(res_s / res_abs, 0.0)
        out["Residual"] = max(res_s + curvature_lambda(theta) * res_k, 0.0)
        margin += out["Residual"]
    out["All"] = margin
    return out
