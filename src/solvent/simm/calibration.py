"""SIMM calibration: risk weights, correlations and thresholds of one version and horizon, read from data.

The numbers live in XML files under ``solvent/simm/data`` laid out as the Open Source Risk Engine's
``simmcalibration.xml`` (see docs/simm.md); this module turns one file and one margin period (10 or 1
day) into a frozen `Calibration` holding plain lookup tables, the way ORE's
``SimmConfigurationCalibration`` and ``SimmConcentrationCalibration`` read the same file. The one-day
horizon swaps in the one-day weights, disables concentration (ISDA SIMM technical paper, section I.4)
and scales the curvature weights and the vega sigma by one day instead of fourteen.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from scipy.special import ndtri

from solvent.choices import SIMM_DEFAULT_VERSION, SIMM_VERSIONS
from solvent.errors import InputError

# Key of a lookup table: (bucket, label1, label2), as ORE's makeKey; unused parts are "".
Key = tuple[str, str, str]

# Risk class name in the calibration file -> (delta risk type, vega risk type), as CRIF names them.
RISK_CLASS_TYPES: dict[str, tuple[str, str]] = {
    "InterestRate": ("Risk_IRCurve", "Risk_IRVol"),
    "CreditQualifying": ("Risk_CreditQ", "Risk_CreditVol"),
    "CreditNonQualifying": ("Risk_CreditNonQ", "Risk_CreditVolNonQ"),
    "Equity": ("Risk_Equity", "Risk_EquityVol"),
    "Commodity": ("Risk_Commodity", "Risk_CommodityVol"),
    "FX": ("Risk_FX", "Risk_FXVol"),
}
# Risk weights that stand alone under a risk class (element name -> risk type).
_UNIQUE_WEIGHTS = {"Inflation": "Risk_Inflation", "XCcyBasis": "Risk_XCcyBasis", "BaseCorrelation": "Risk_BaseCorr"}

TENORS = ("2w", "1m", "3m", "6m", "1y", "2y", "3y", "5y", "10y", "15y", "20y", "30y")
_TENOR_DAYS = {
    "2w": 14.0,
    "1m": 365.0 / 12.0,
    "3m": 3.0 * 365.0 / 12.0,
    "6m": 6.0 * 365.0 / 12.0,
    "1y": 365.0,
    "2y": 2.0 * 365.0,
    "3y": 3.0 * 365.0,
    "5y": 5.0 * 365.0,
    "10y": 10.0 * 365.0,
    "15y": 15.0 * 365.0,
    "20y": 20.0 * 365.0,
    "30y": 30.0 * 365.0,
}
CREDIT_TENORS = ("1y", "2y", "3y", "5y", "10y")

# ORE expresses concentration thresholds in millions of USD.
_THRESHOLD_UNITS = 1_000_000.0

#: Each bundled version (solvent.choices, where the command line reads them) and its calibration file.
VERSIONS = {version: f"simm_{version}.xml" for version in SIMM_VERSIONS}
DEFAULT_VERSION = SIMM_DEFAULT_VERSION


@dataclass(frozen=True, kw_only=True)
class CurrencyGroups:
    """Currency -> group label, with the group that holds everyone not listed ("Other")."""

    members: dict[str, str]
    other: str

    def group(self, currency: str) -> str:
        return self.members.get(currency, self.other)


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The parameters of one SIMM version at one margin period of risk (10 or 1 day)."""

    version: str
    mpor_days: int
    flat_weights: dict[str, float]
    bucket_weights: dict[str, dict[Key, float]]
    tenor_weights: dict[Key, float]  # IR delta: (currency bucket, tenor, "")
    ir_buckets: CurrencyGroups
    fx_groups: CurrencyGroups  # high / regular volatility groups for FX weights and correlations
    hvr: dict[str, float]  # historical volatility ratio per vega risk type (EQ, CM, FX)
    hvr_ir: float
    intra: dict[str, dict[Key, float]]  # keyed by the delta risk type
    inter: dict[str, dict[Key, float]]
    ir_sub_curve: float
    ir_inflation: float
    ir_xccy: float
    ir_outer: float
    fx_vol: float
    base_corr: float
    crq_same: float
    crq_diff: float
    crq_residual: float
    crnq_same: float
    crnq_diff: float
    crnq_residual: float
    crnq_inter: float
    risk_class_corr: dict[tuple[str, str], float]
    flat_thresholds: dict[str, float]  # USD, already in units
    bucket_thresholds: dict[str, dict[str, float]]
    ir_threshold_groups: CurrencyGroups
    fx_threshold_groups: CurrencyGroups

    @property
    def sigma_multiplier(self) -> float:
        """sqrt(365 / (1.4 * MPOR)) / Phi^-1(0.99): turns a delta risk weight into a vega's sigma."""
        return math.sqrt(365.0 / (1.4 * self.mpor_days)) / float(ndtri(0.99))

    @property
    def curvature_scaling(self) -> float:
        """HVR_IR^-2, the factor on interest-rate curvature margin (SIMM 2.6 paragraph 11(d))."""
        return 1.0 / (self.hvr_ir * self.hvr_ir)

    def curvature_weight(self, tenor: str) -> float:
        """SF(t) = 0.5 * min(1, 14 / t) at 10 days, 0.5 * min(1, 1.4 / t) at 1 day (t in days), as ORE."""
        return 0.5 * (14.0 if self.mpor_days == 10 else 1.4) / _TENOR_DAYS[tenor]

    def threshold(self, risk_type: str, qualifier: str, bucket: str) -> float:
        """Concentration threshold T in USD (infinite at one day, or where the version sets none)."""
        if self.mpor_days == 1:
            return math.inf
        if risk_type in ("Risk_IRCurve", "Risk_IRVol"):
            return float(self.bucket_thresholds[risk_type][self.ir_threshold_groups.group(qualifier)])
        if risk_type == "Risk_FX":
            return self.bucket_thresholds[risk_type][self.fx_threshold_groups.group(qualifier)]
        if risk_type == "Risk_FXVol":
            pair = sorted(int(self.fx_threshold_groups.group(c)) for c in (qualifier[:3], qualifier[3:6]))
            category = {(1, 1): "1", (1, 2): "2", (1, 3): "3", (2, 2): "4", (2, 3): "5"}.get((pair[0], pair[1]), "6")
            return self.bucket_thresholds[risk_type][category]
        if risk_type in self.flat_thresholds:
            return self.flat_thresholds[risk_type]
        if risk_type in self.bucket_thresholds:
            return self.bucket_thresholds[risk_type][bucket]
        return math.inf


def with_high_volatility(cal: Calibration, currencies: Sequence[str]) -> Calibration:
    """`cal` with `currencies` in SIMM's high-volatility FX group (weights and correlations of that group)."""
    if not currencies:
        return cal
    regular = cal.fx_groups.group("USD")
    high = next(g for g in sorted({key[1] for key in cal.bucket_weights["Risk_FX"]}) if g != regular)
    members = {**cal.fx_groups.members, **dict.fromkeys(currencies, high)}
    return dataclasses.replace(cal, fx_groups=CurrencyGroups(members=members, other=cal.fx_groups.other))


def _num(element: ET.Element, source: str) -> float:
    text = (element.text or "").strip()
    try:
        return float(text)
    except ValueError:
        raise InputError(source, element.tag, f"not a number: {text!r}") from None


def _key(element: ET.Element) -> Key:
    a = element.attrib
    return (a.get("bucket", ""), a.get("label1", ""), a.get("label2", ""))


def _groups(element: ET.Element | None) -> CurrencyGroups:
    members: dict[str, str] = {}
    other = ""
    for currency in element if element is not None else []:
        name, group = (currency.text or "").strip(), currency.attrib["bucket"]
        if name == "Other":
            other = group
        else:
            members[name] = group
    return CurrencyGroups(members=members, other=other)


def _for_mpor(parent: ET.Element, tag: str, mpor: int) -> ET.Element | None:
    for element in parent.findall(tag):
        if element.attrib.get("mporDays", str(mpor)) == str(mpor):
            return element
    return None


def parse_calibration(text: str, version: str, mpor_days: int, source: str) -> Calibration:
    """Read one ORE-layout calibration document for the given margin period (10 or 1 day)."""
    if mpor_days not in (10, 1):
        raise InputError(source, "mpor", f"SIMM has 10-day and 1-day calibrations, not {mpor_days}")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(source, "", f"not valid XML: {exc}") from None
    calibration = root.find("SIMMCalibration")
    if calibration is None:
        raise InputError(source, "SIMMCalibrationData", "no SIMMCalibration element")
    flat: dict[str, float] = {}
    bucketed: dict[str, dict[Key, float]] = {}
    tenor: dict[Key, float] = {}
    hvr: dict[str, float] = {}
    intra: dict[str, dict[Key, float]] = {}
    inter: dict[str, dict[Key, float]] = {}
    scalars: dict[str, float] = {}
    flat_thresholds: dict[str, float] = {}
    bucket_thresholds: dict[str, dict[str, float]] = {}
    groups: dict[str, CurrencyGroups] = {}
    for rc_name, (delta_rt, vega_rt) in RISK_CLASS_TYPES.items():
        rc = calibration.find(rc_name)
        if rc is None:
            raise InputError(source, rc_name, "risk class missing from the calibration")
        weights = rc.find("RiskWeights")
        assert weights is not None
        for tag, rt in _UNIQUE_WEIGHTS.items():
            element = _for_mpor(weights, tag, mpor_days)
            if element is not None:
                flat[rt] = _num(element, source)
        delta = _for_mpor(weights, "Delta", mpor_days)
        vega = _for_mpor(weights, "Vega", mpor_days)
        if delta is None or vega is None:
            raise InputError(source, f"{rc_name}.RiskWeights", f"no {mpor_days}-day delta or vega weights")
        for element, rt in ((delta, delta_rt), (vega, vega_rt)):
            entries = list(element)
            if len(entries) == 1:
                flat[rt] = _num(entries[0], source)
            elif rc_name == "InterestRate" and rt == delta_rt:
                tenor.update({_key(w): _num(w, source) for w in entries})
            else:
                bucketed[rt] = {_key(w): _num(w, source) for w in entries}
        if rc_name == "InterestRate":
            flat["Risk_InflationVol"] = flat["Risk_IRVol"]
            groups["ir"] = _groups(weights.find("CurrencyLists"))
        if rc_name == "FX":
            groups["fx"] = _groups(weights.find("CurrencyLists"))
        ratio = _for_mpor(weights, "HistoricalVolatilityRatio", mpor_days)
        if ratio is not None:
            if rc_name == "InterestRate":
                scalars["hvr_ir"] = _num(ratio, source)
            elif rc_name in ("Equity", "Commodity", "FX"):
                hvr[vega_rt] = _num(ratio, source)
        correlations = rc.find("Correlations")
        assert correlations is not None
        prefix = {"CreditQualifying": "crq", "CreditNonQualifying": "crnq"}.get(rc_name)
        for corr in correlations.iterfind("IntraBucket/Correlation"):
            key, value = _key(corr), _num(corr, source)
            if prefix is None:
                intra.setdefault(delta_rt, {})[key] = value
            elif key[1] == "aggregate":
                scalars[f"{prefix}_same" if key[2] == "same" else f"{prefix}_diff"] = value
            else:
                scalars[f"{prefix}_residual"] = value
        inter[delta_rt] = {_key(c): _num(c, source) for c in correlations.iterfind("InterBucket/Correlation")}
        for tag, name in (
            ("SubCurves", "ir_sub_curve"),
            ("Inflation", "ir_inflation"),
            ("XCcyBasis", "ir_xccy"),
            ("Outer", "ir_outer"),
            ("Volatility", "fx_vol"),
            ("BaseCorrelation", "base_corr"),
        ):
            element = correlations.find(tag)
            if element is not None:
                scalars[name] = _num(element, source)
        if rc_name == "CreditNonQualifying":
            scalars["crnq_inter"] = inter[delta_rt][min(inter[delta_rt])]
        thresholds = rc.find("ConcentrationThresholds")
        assert thresholds is not None
        for tag, rt in (("Delta", delta_rt), ("Vega", vega_rt)):
            entries = thresholds.findall(f"{tag}/Threshold")
            if len(entries) == 1:
                flat_thresholds[rt] = _num(entries[0], source) * _THRESHOLD_UNITS
            elif entries:
                bucket_thresholds[rt] = {t.attrib["bucket"]: _num(t, source) * _THRESHOLD_UNITS for t in entries}
        if rc_name in ("InterestRate", "FX"):
            groups[f"{rc_name}_threshold"] = _groups(thresholds.find("CurrencyLists"))
    risk_class_corr = {
        (c.attrib["label1"], c.attrib["label2"]): _num(c, source)
        for c in calibration.iterfind("RiskClassCorrelations/Correlation")
    }
    return Calibration(
        version=version,
        mpor_days=mpor_days,
        flat_weights=flat,
        bucket_weights=bucketed,
        tenor_weights=tenor,
        ir_buckets=groups["ir"],
        fx_groups=groups["fx"],
        hvr=hvr,
        hvr_ir=scalars["hvr_ir"],
        intra=intra,
        inter=inter,
        ir_sub_curve=scalars["ir_sub_curve"],
        ir_inflation=scalars["ir_inflation"],
        ir_xccy=scalars["ir_xccy"],
        ir_outer=scalars["ir_outer"],
        fx_vol=scalars["fx_vol"],
        base_corr=scalars["base_corr"],
        crq_same=scalars["crq_same"],
        crq_diff=scalars["crq_diff"],
        crq_residual=scalars["crq_residual"],
        crnq_same=scalars["crnq_same"],
        crnq_diff=scalars["crnq_diff"],
        crnq_residual=scalars["crnq_residual"],
        crnq_inter=scalars["crnq_inter"],
        risk_class_corr=risk_class_corr,
        flat_thresholds=flat_thresholds,
        bucket_thresholds=bucket_thresholds,
        ir_threshold_groups=groups["InterestRate_threshold"],
        fx_threshold_groups=groups["FX_threshold"],
    )


def load_calibration_file(path: str | Path, mpor_days: int = 10) -> Calibration:
    """A calibration from a user's file in the same layout (another SIMM version, say)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read: {exc.strerror}") from None
    return parse_calibration(text, path.stem, mpor_days, str(path))


@cache
def load_calibration(version: str = DEFAULT_VERSION, mpor_days: int = 10) -> Calibration:
    """The calibration shipped for `version` ("2.4", "2.6" or "2.8+2506") at 10 or 1 day."""
    if version not in VERSIONS:
        raise InputError("", "version", f"unknown SIMM version {version!r}; known: {', '.join(sorted(VERSIONS))}")
    name = VERSIONS[version]
    text = resources.files("solvent.simm").joinpath("data", name).read_text(encoding="utf-8")
    return parse_calibration(text, version, mpor_days, name)
