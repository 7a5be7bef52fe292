"""SIMM for every portfolio, side and regulation of a CRIF, aggregated the way ORE's SimmCalculator does.

Each CRIF row goes to the call side under its collect regulations and to the post side under its post
regulations (an empty list means "Unspecified"; "Excluded" drops it). Rows are netted per risk factor;
margins per risk class and margin type (margins.py) are summed into risk-class margins, aggregated
across risk classes with the risk-class correlation matrix into product-class margins, and summed
over product classes; additional IM (product-class multipliers, fixed and notional add-ons) is then
added. Per side and portfolio the winning regulation is the one with the highest IM (ties broken in
ORE's regulation order). All amounts in USD.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from solvent.simm.calibration import Calibration
from solvent.simm.crif import CrifRecord
from solvent.simm.margins import (
    Margins,
    Sensitivity,
    curvature,
    delta_vega,
    ir_curvature,
    ir_delta,
    ir_vega,
)

SIDES = ("Call", "Post")
RISK_CLASSES = ("InterestRate", "CreditQualifying", "CreditNonQualifying", "Equity", "Commodity", "FX")
MARGIN_TYPES = ("Delta", "Vega", "Curvature", "BaseCorr", "AdditionalIM")
PRODUCT_CLASSES = (
    "RatesFX", "Rates", "FX", "Credit", "Equity", "Commodity", "Empty", "Other", "AddOnNotionalFactor",
    "AddOnFixedAmount",
)  # fmt: skip
# ORE's order of precedence when two regulations give the same IM.
REGULATIONS = (
    "APRA", "CFTC", "ESA", "FINMA", "KFSC", "HKMA", "JFSA", "MAS", "OSFI", "RBI", "SEC", "SEC_unseg", "USPR", "NONREG",
    "BACEN", "SANT", "SFC", "UK", "AMFQ", "BANX", "OJK", "Included", "Unspecified",
)  # fmt: skip
_TINY = (42 * 2.220446049250313e-16) ** 2

# (product class, risk class, margin type, bucket) -> initial margin (USD)
ResultKey = tuple[str, str, str, str]
# (product class, risk type, qualifier, bucket, label1, label2)
_FactorKey = tuple[str, str, str, str, str, str]
_FACTORS = ("Param_ProductClassMultiplier", "Param_AddOnNotionalFactor")

# (risk class, delta risk type, vega risk type) for the bucketed classes, in ORE's order
_BUCKETED = (
    ("FX", "Risk_FX", "Risk_FXVol"),
    ("CreditQualifying", "Risk_CreditQ", "Risk_CreditVol"),
    ("CreditNonQualifying", "Risk_CreditNonQ", "Risk_CreditVolNonQ"),
    ("Equity", "Risk_Equity", "Risk_EquityVol"),
    ("Commodity", "Risk_Commodity", "Risk_CommodityVol"),
)


@dataclass(frozen=True, kw_only=True)
class SimmResult:
    """The SIMM breakdown of one portfolio on one side under one regulation."""

    portfolio: str
    side: str
    regulation: str
    margins: dict[ResultKey, float]

    @property
    def total(self) -> float:
        return self.margins.get(("All", "All", "All", "All"), 0.0)


@dataclass(frozen=True, kw_only=True)
class SimmReport:
    """Every (side, portfolio, regulation) result, and the winning regulation per side and portfolio."""

    calibration_version: str
    mpor_days: int
    results: tuple[SimmResult, ...]
    winners: dict[tuple[str, str], str]

    @functools.cached_property
    def _by_key(self) -> dict[tuple[str, str, str], SimmResult]:
        return {(r.side, r.portfolio, r.regulation): r for r in self.results}

    def result(self, side: str, portfolio: str, regulation: str | None = None) -> SimmResult:
        """The result under `regulation` (default: the winning one)."""
        regulation = regulation or self.winners[(side, portfolio)]
        return self._by_key[(side, portfolio, regulation)]

    def final(self) -> list[SimmResult]:
        """The winning regulation's result per side and portfolio, call side first."""
        return [self.result(side, p) for side in SIDES for (s, p) in sorted(self.winners) if s == side]


def _class_margins(cal: Calibration, items: Sequence[Sensitivity], multiplier: float) -> list[tuple[str, str, Margins]]:
    """(risk class, margin type, margins) of one product class, in ORE's order (only the risk types present)."""
    by_type: dict[str, list[Sensitivity]] = {}
    for item in items:
        by_type.setdefault(item.risk_type, []).append(item)
    ir = [s for t in ("Risk_IRCurve", "Risk_Inflation", "Risk_XCcyBasis") for s in by_type.get(t, ())]
    ir_vol = [s for t in ("Risk_IRVol", "Risk_InflationVol") for s in by_type.get(t, ())]
    out: list[tuple[str, str, Margins | None]] = [("InterestRate", "Delta", ir_delta(cal, ir) if ir else None)]
    out += [(rc, "Delta", delta_vega(cal, d, by_type[d])) for rc, d, _ in _BUCKETED if d in by_type]
    out += [("InterestRate", "Vega", ir_vega(cal, ir_vol) if ir_vol else None)]
    out += [(rc, "Vega", delta_vega(cal, v, by_type[v])) for rc, _, v in _BUCKETED if v in by_type]
    out += [("InterestRate", "Curvature", ir_curvature(cal, ir_vol, multiplier) if ir_vol else None)]
    out += [(rc, "Curvature", curvature(cal, v, by_type[v], multiplier)) for rc, _, v in _BUCKETED if v in by_type]
    if "Risk_BaseCorr" in by_type:
        out += [("CreditQualifying", "BaseCorr", delta_vega(cal, "Risk_BaseCorr", by_type["Risk_BaseCorr"]))]
    return [(rc, mt, m) for rc, mt, m in out if m is not None]


def _rc_corr(cal: Calibration, a: str, b: str) -> float:
    return 1.0 if a == b else cal.risk_class_corr[(a, b)]


def _across_risk_classes(cal: Calibration, present: Sequence[tuple[str, float]]) -> float:
    """sqrt(sum_r sum_s psi_rs IM_r IM_s) over the (risk class, margin) pairs present."""
    total = sum(m * m for _, m in present)
    total += sum(2.0 * _rc_corr(cal, a, b) * ma * mb for i, (a, ma) in enumerate(present) for b, mb in present[:i])
    return math.sqrt(max(total, 0.0))


def _populate(cal: Calibration, margins: dict[ResultKey, float]) -> None:
    """Risk-class, product-class and portfolio totals, and the cross sums ORE reports beside them."""
    # (product class) -> (risk class, margin type) -> margin, of the "All" buckets, in ORE's orders
    table: dict[str, dict[tuple[str, str], float]] = {}
    for (pc, rc, mt, bucket), value in margins.items():
        if bucket == "All":
            table.setdefault(pc, {})[(rc, mt)] = value
    pcs = [pc for pc in PRODUCT_CLASSES if pc in table]
    for pc in pcs:
        cells = table[pc]
        for rc in RISK_CLASSES:
            parts = [cells[(rc, mt)] for mt in MARGIN_TYPES if (rc, mt) in cells]
            if parts:
                cells[(rc, "All")] = margins[(pc, rc, "All", "All")] = sum(parts)
        for mt in ("All", *MARGIN_TYPES):
            present = [(rc, cells[(rc, mt)]) for rc in RISK_CLASSES if (rc, mt) in cells]
            if present:
                cells[("All", mt)] = margins[(pc, "All", mt, "All")] = _across_risk_classes(cal, present)
    margins[("All", "All", "All", "All")] = sum(table[pc].get(("All", "All"), 0.0) for pc in pcs)
    for rc in (*RISK_CLASSES, "All"):
        for mt in (*MARGIN_TYPES, "All") if rc != "All" else MARGIN_TYPES:
            parts = [table[pc][(rc, mt)] for pc in pcs if (rc, mt) in table[pc]]
            if parts:
                margins[("All", rc, mt, "All")] = sum(parts)


def _add(margins: dict[ResultKey, float], pc: str, amount: float) -> None:
    for key in ((pc, "All", "AdditionalIM", "All"), (pc, "All", "All", "All"), ("All", "All", "AdditionalIM", "All"),
                ("All", "All", "All", "All")):  # fmt: skip
        margins[key] = margins.get(key, 0.0) + amount


def _additional(margins: dict[ResultKey, float], net: dict[_FactorKey, list[float]]) -> None:
    """Additional IM: (multiplier - 1) x product-class IM, fixed amounts, notional x factor / 100."""
    for (_, rt, q, *_), (factor, _usd) in net.items():
        if rt == "Param_ProductClassMultiplier" and (q, "All", "All", "All") in margins:
            _add(margins, q, (factor - 1.0) * margins[(q, "All", "All", "All")])
    for (_, rt, *_), (_amount, usd) in net.items():
        if rt == "Param_AddOnFixedAmount":
            _add(margins, "AddOnFixedAmount", usd)
    notionals = {k[2]: v[1] for k, v in net.items() if k[1] == "Notional"}
    for (_, rt, q, *_), (factor, _usd) in net.items():
        if rt == "Param_AddOnNotionalFactor" and q in notionals:
            _add(margins, "AddOnNotionalFactor", notionals[q] * factor / 100.0)


def regulation_margins(cal: Calibration, net: dict[_FactorKey, list[float]], side: str) -> dict[ResultKey, float]:
    """The full breakdown for one netted set of sensitivities on one side."""
    multiplier = 1.0 if side == "Call" else -1.0
    margins: dict[ResultKey, float] = {}
    by_pc: dict[str, list[Sensitivity]] = {}
    for k, v in net.items():
        by_pc.setdefault(k[0], []).append(Sensitivity(k[1], k[2], k[3], k[4], k[5], v[1]))
    for pc in PRODUCT_CLASSES:
        for rc, mt, values in _class_margins(cal, by_pc.get(pc, ()), multiplier):
            margins.update({(pc, rc, mt, bucket): value for bucket, value in values.items()})
    _populate(cal, margins)
    _additional(margins, net)
    return margins


def _regulations(text: str) -> set[str]:
    names = {r.strip() for r in text.strip().strip("[]").split(",") if r.strip()}
    return names or {"Unspecified"}


def _net(records: Iterable[CrifRecord]) -> dict[_FactorKey, list[float]]:
    net: dict[_FactorKey, list[float]] = {}
    for r in records:
        qualifier = _fx_pair(r.qualifier) if r.risk_type == "Risk_FXVol" else r.qualifier
        key = (r.product_class or "Empty", r.risk_type, qualifier, r.bucket, r.label1, r.label2)
        if key in net and r.risk_type in _FACTORS:
            net[key] = [max(net[key][0], r.amount), max(net[key][1], r.amount_usd)]  # a factor is not a sum
        elif key in net:
            net[key][0] += r.amount
            net[key][1] += r.amount_usd
        else:
            net[key] = [r.amount, r.amount_usd]
    return net


def _fx_pair(qualifier: str) -> str:
    """An FX volatility's currency pair in alphabetical order (USDJPY and JPYUSD are one risk factor), as ORE."""
    a, b = qualifier[:3], qualifier[3:]
    return a + b if a <= b else b + a


def split_by_regulation(
    records: Sequence[CrifRecord], *, enforce_regulations: bool = True
) -> dict[tuple[str, str], dict[str, list[CrifRecord]]]:
    """(side, portfolio) -> regulation -> records, with ORE's SEC/CFTC and Unspecified rules.

    Without `enforce_regulations` every row goes to "Unspecified" on both sides (ORE's
    enforceIMRegulations = false, the default of its Python SimmCalculator).
    """
    split: dict[tuple[str, str], dict[str, list[CrifRecord]]] = {}
    for r in records:
        sides = (
            (("Call", r.collect_regulations), ("Post", r.post_regulations))
            if enforce_regulations
            else (("Call", ""), ("Post", ""))
        )
        for side, names in sides:
            for reg in _regulations(names) - {"Excluded"}:
                split.setdefault((side, r.portfolio), {}).setdefault(reg, []).append(r)
    for regs in split.values():
        if "CFTC" in regs and "SEC" in regs:
            sec_keys = _net(regs["SEC"]).keys()
            regs["SEC"] = regs["SEC"] + [r for r in regs["CFTC"] if next(iter(_net([r]))) not in sec_keys]
        if "Unspecified" in regs and len(regs) > 1:
            del regs["Unspecified"]
    portfolios = {p for _, p in split}
    for p in portfolios:
        call, post = split.get(("Call", p), {}), split.get(("Post", p), {})
        call_empty, post_empty = set(call) == {"Unspecified"}, set(post) == {"Unspecified"}
        if call_empty and not post_empty:
            call.pop("Unspecified")
        elif post_empty and not call_empty:
            post.pop("Unspecified")
    return split


def _winner(results: Sequence[SimmResult]) -> str:
    best = max(r.total for r in results)
    tied = [r.regulation for r in results if _close(r.total, best)]
    return min(tied, key=lambda reg: REGULATIONS.index(reg) if reg in REGULATIONS else len(REGULATIONS))


def _close(x: float, y: float) -> bool:
    """QuantLib's close_enough(x, y)."""
    if x == y:
        return True
    diff, tolerance = abs(x - y), 42 * 2.220446049250313e-16
    if x * y == 0.0:
        return diff < _TINY
    return diff <= tolerance * abs(x) and diff <= tolerance * abs(y)


def calculate(records: Sequence[CrifRecord], cal: Calibration, *, enforce_regulations: bool = True) -> SimmReport:
    """SIMM of every portfolio in `records` under `cal` (per regulation unless `enforce_regulations` is off)."""
    results: list[SimmResult] = []
    winners: dict[tuple[str, str], str] = {}
    for (side, portfolio), regs in sorted(
        split_by_regulation(records, enforce_regulations=enforce_regulations).items()
    ):
        mine: list[SimmResult] = []
        for regulation, rows in sorted(regs.items()):
            net = _net(rows)
            has_risk = any(not k[1].startswith("Param_") and k[1] not in ("Notional", "PV") for k in net)
            if has_risk or any(k[1] == "Param_AddOnFixedAmount" for k in net):
                margins = regulation_margins(cal, net, side)
                mine.append(SimmResult(portfolio=portfolio, side=side, regulation=regulation, margins=margins))
        if mine:
            results.extend(mine)
            winners[(side, portfolio)] = _winner(mine)
    return SimmReport(calibration_version=cal.version, mpor_days=cal.mpor_days, results=tuple(results), winners=winners)
