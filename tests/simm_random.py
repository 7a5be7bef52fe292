"""Seeded random CRIFs across every SIMM risk class (for the ORE differential test and property tests)."""

from __future__ import annotations

import csv
import io
import random

from solvent.simm.calibration import CREDIT_TENORS, TENORS

HEADER = ["TradeID", "PortfolioID", "ProductClass", "RiskType", "Qualifier", "Bucket", "Label1", "Label2",
          "AmountCurrency", "Amount", "AmountUSD", "collect_regulations", "post_regulations"]  # fmt: skip
CCYS = ["USD", "EUR", "GBP", "JPY", "BRL", "TRY", "AUD", "INR", "ZAR", "CNY"]
BUCKETED = ("Risk_CreditQ", "Risk_CreditVol", "Risk_CreditNonQ", "Risk_CreditVolNonQ", "Risk_Equity", "Risk_EquityVol",
            "Risk_Commodity", "Risk_CommodityVol")  # fmt: skip


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
