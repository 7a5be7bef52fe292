"""SIMM against the Open Source Risk Engine's Python bindings on seeded random CRIFs (all risk classes).

`open-source-risk-engine` (extra `ore`) is an oracle, skipped when absent. Its SimmCalculator gets the same
CRIF (with AmountUSD) and an explicit bucket mapper for the bucketed qualifiers. Its Python SimmCalculator
does not enforce regulations (every row is "Unspecified"), so ours runs with enforce_regulations=False;
the call and post totals of every portfolio must agree to 1e-9 relative.
"""

from __future__ import annotations

import csv
import io
import random

import pytest

from solvent.simm import calculate, load_calibration, parse_crif
from solvent.simm.calibration import CREDIT_TENORS, TENORS

ORE = pytest.importorskip("ORE")

HEADER = ["TradeID", "PortfolioID", "ProductClass", "RiskType", "Qualifier", "Bucket", "Label1", "Label2",
          "AmountCurrency", "Amount", "AmountUSD", "collect_regulations", "post_regulations"]  # fmt: skip
CCYS = ["USD", "EUR", "GBP", "JPY", "BRL", "TRY", "AUD", "INR", "ZAR", "CNY"]
BUCKETED = ("Risk_CreditQ", "Risk_CreditVol", "Risk_CreditNonQ", "Risk_CreditVolNonQ", "Risk_Equity", "Risk_EquityVol",
            "Risk_Commodity", "Risk_CommodityVol")  # fmt: skip
VERSIONS = {"2.6": "SimmConfiguration_ISDA_V2_6", "2.8+2506": "SimmConfiguration_ISDA_V2_8_2506"}


def _amount(rng: random.Random) -> float:
    scale = rng.choice([1e2, 1e4, 1e6, 1e8])
    return round(rng.gauss(0.0, 1.0) * scale, 2)


REGS = ("ESA", "SEC,CFTC", "USPR", "CFTC")  # no empty lists: ORE's TSV reader drops such rows
KINDS = ("IRCurve", "IRCurve", "Inflation", "XCcyBasis", "IRVol", "InflationVol", "FX", "FXVol", "CreditQ", "CreditVol",
         "CreditNonQ", "CreditVolNonQ", "BaseCorr", "Equity", "EquityVol", "Commodity", "CommodityVol")  # fmt: skip


def random_crif(
    seed: int, kinds: tuple[str, ...] = KINDS, regs: tuple[str, ...] = REGS
) -> tuple[str, dict[tuple[str, str], str]]:
    """A CRIF text and its (risk type, qualifier) -> bucket map, all risk classes, a few portfolios."""
    rng = random.Random(seed)
    buckets: dict[tuple[str, str], str] = {}
    names = {
        "CreditQ": {f"ISSUER{i}": rng.choice([*map(str, range(1, 13)), "Residual"]) for i in range(6)},
        "CreditNonQ": {f"NQ{i}": rng.choice(["1", "2", "Residual"]) for i in range(4)},
        "Equity": {f"EQ{i}": rng.choice([*map(str, range(1, 13)), "Residual"]) for i in range(6)},
        "Commodity": {f"CM{i}": str(rng.randint(1, 17)) for i in range(5)},
    }
    rows = []
    for n in range(rng.randint(5, 60)):
        kind = rng.choice(kinds)
        ccy = rng.choice(CCYS)
        pc, q, b, l1, l2 = "RatesFX", ccy, "", "", ""
        if kind == "IRCurve":
            l1, l2 = rng.choice(TENORS), rng.choice(["OIS", "Libor3m", "Libor6m"])
        elif kind in ("IRVol", "InflationVol", "FXVol"):
            l1 = rng.choice(TENORS)
            if kind == "FXVol":
                q = ccy + rng.choice([c for c in CCYS if c != ccy])
        elif kind in ("CreditQ", "CreditVol", "CreditNonQ", "CreditVolNonQ"):
            family = "CreditQ" if kind in ("CreditQ", "CreditVol") else "CreditNonQ"
            pc, q = "Credit", rng.choice(list(names[family]))
            b, l1 = names[family][q], rng.choice(CREDIT_TENORS)
            l2 = rng.choice(["", "CMBX"]) if family == "CreditNonQ" else ""
        elif kind == "BaseCorr":
            pc, q = "Credit", rng.choice(["CDX.IG", "ITRAXX.MAIN"])
        elif kind in ("Equity", "EquityVol", "Commodity", "CommodityVol"):
            family = kind.removesuffix("Vol")
            pc, q = family, rng.choice(list(names[family]))
            b = names[family][q]
            l1 = rng.choice(TENORS) if kind.endswith("Vol") else ""
        if b:
            buckets[(f"Risk_{kind}", q)] = b
        amount = _amount(rng)
        rows.append([f"T{n}", f"P{rng.randint(1, 2)}", pc, f"Risk_{kind}", q, b, l1, l2, "USD", amount, amount,
                     rng.choice(regs), rng.choice(regs)])  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue(), buckets


def _ore_totals(
    text: str, buckets: dict[tuple[str, str], str], version: str, mpor: int
) -> dict[tuple[str, str], float]:
    mapper = ORE.SimmBucketMapperBase()
    for (rt, q), b in buckets.items():
        mapper.addMapping(getattr(ORE.CrifRecord, rt.replace("Risk_", "RiskType_")), q, b)
    config = getattr(ORE, VERSIONS[version])(mapper, mpor)
    crif = ORE.Crif()
    crif.setCsvLoaderConfig(config)
    crif.fromCSVString(text)
    calc = ORE.SimmCalculator(crif, config)
    out = {}
    pcs = {row.split("\t")[1] for row in text.splitlines()[1:]}
    for side, name in ((ORE.SimmConfiguration.SimmSide_Call, "Call"), (ORE.SimmConfiguration.SimmSide_Post, "Post")):
        for p in pcs:
            try:
                results = calc.finalSimmResults(side, ORE.NettingSetDetails(p))[1]
            except RuntimeError:
                continue
            key = (ORE.CrifRecord.ProductClass_All, ORE.SimmConfiguration.RiskClass_All,
                   ORE.SimmConfiguration.MarginType_All, "All")  # fmt: skip
            if results.has(*key):
                out[(name, p)] = results.get(*key)
    return out


@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("mpor", [10, 1])
@pytest.mark.parametrize("seed", range(50))
def test_totals_match_ore(seed: int, mpor: int, version: str) -> None:
    text, buckets = random_crif(seed)
    ours = calculate(parse_crif(text), load_calibration(version, mpor), enforce_regulations=False)
    theirs = _ore_totals(text, buckets, version, mpor)
    got = {key: ours.result(*key).total for key in ours.winners}
    assert sorted(k for k, v in got.items() if v) == sorted(k for k, v in theirs.items() if v)
    for key, value in theirs.items():
        assert got.get(key, 0.0) == pytest.approx(value, rel=1e-9, abs=1e-6), key
