"""`make bench`: ISDA SIMM over many portfolios (issue 17), beside ORE's SimmCalculator in the same run.

Target: 10,000 portfolios of ~50 sensitivities each (every risk class) at least 10x faster than ORE's
SimmCalculator, in the same run. Measured here: solvent's column reader and batched calculator
(`parse_crif_columns` + `calculate_batch`) on one CRIF holding `--portfolios` portfolios (both sides,
regulations not enforced, as ORE's Python calculator); with `--twin`, the per-portfolio reader and
calculator (`parse_crif` + `calculate`, the slow twin) too; and, when `open-source-risk-engine` is installed,
ORE's Crif load + SimmCalculator on the same text with an explicit bucket mapper. Each engine first runs
once on a one-portfolio CRIF (initialisation not timed). Wall and CPU seconds of this process are shown:
the machine may be shared. Totals are compared so that all did the same work.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_simm.py --portfolios 10000`).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import time

from rich.console import Console
from rich.table import Table

from solvent.simm import calculate, load_calibration, parse_crif
from solvent.simm.batch import calculate_batch
from solvent.simm.columns import parse_crif_columns

TENORS = ("2w", "1m", "3m", "6m", "1y", "2y", "3y", "5y", "10y", "15y", "20y", "30y")
CREDIT_TENORS = ("1y", "2y", "3y", "5y", "10y")
CCYS = ("USD", "EUR", "GBP", "JPY", "AUD", "BRL", "CHF", "CAD")
HEADER = ("TradeID", "PortfolioID", "ProductClass", "RiskType", "Qualifier", "Bucket", "Label1", "Label2",
          "AmountCurrency", "Amount", "AmountUSD", "collect_regulations", "post_regulations")  # fmt: skip
# (risk type, product class, share of rows)
MIX = (
    ("Risk_IRCurve", "RatesFX", 16), ("Risk_IRVol", "RatesFX", 6), ("Risk_FX", "RatesFX", 4),
    ("Risk_FXVol", "RatesFX", 3),
    ("Risk_CreditQ", "Credit", 6), ("Risk_CreditVol", "Credit", 2), ("Risk_CreditNonQ", "Credit", 1),
    ("Risk_Equity", "Equity", 5), ("Risk_EquityVol", "Equity", 3), ("Risk_Commodity", "Commodity", 3),
    ("Risk_CommodityVol", "Commodity", 1),
)  # fmt: skip
QUALIFIERS = {
    "Risk_CreditQ": [(f"ISSUER{i}", str(i % 12 + 1)) for i in range(30)],
    "Risk_CreditNonQ": [(f"NQ{i}", str(i % 2 + 1)) for i in range(6)],
    "Risk_Equity": [(f"EQ{i}", str(i % 12 + 1)) for i in range(40)],
    "Risk_Commodity": [(f"CM{i}", str(i % 17 + 1)) for i in range(20)],
}
QUALIFIERS["Risk_CreditVol"] = QUALIFIERS["Risk_CreditQ"]
QUALIFIERS["Risk_EquityVol"] = QUALIFIERS["Risk_Equity"]
QUALIFIERS["Risk_CommodityVol"] = QUALIFIERS["Risk_Commodity"]


def crif_text(portfolios: int, seed: int = 17) -> str:
    """A tab-separated CRIF: `portfolios` portfolios of 50 rows drawn from MIX."""
    rng = random.Random(seed)
    kinds = [(rt, pc) for rt, pc, share in MIX for _ in range(share)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(HEADER)
    for p in range(portfolios):
        for n in range(50):
            rt, pc = rng.choice(kinds)
            q, b, l1, l2 = rng.choice(CCYS), "", "", ""
            if rt == "Risk_IRCurve":
                l1, l2 = rng.choice(TENORS), rng.choice(("OIS", "Libor3m"))
            elif rt in ("Risk_IRVol", "Risk_EquityVol", "Risk_CommodityVol", "Risk_FXVol"):
                l1 = rng.choice(TENORS)
            if rt == "Risk_FXVol":
                q = "EUR" + rng.choice(("USD", "JPY", "GBP"))
            if rt in QUALIFIERS:
                q, b = rng.choice(QUALIFIERS[rt])
                l1 = rng.choice(CREDIT_TENORS) if "Credit" in rt else l1
            amount = round(rng.gauss(0.0, 1.0) * 10 ** rng.randint(3, 6), 2)
            writer.writerow((f"T{p}_{n}", f"P{p}", pc, rt, q, b, l1, l2, "USD", amount, amount, "SEC", "SEC"))
    return buffer.getvalue()


def ore_totals(text: str, portfolios: int) -> tuple[tuple[float, float], dict[tuple[str, str], float]]:
    """((wall, CPU) seconds, totals) of ORE's SimmCalculator (SIMM 2.6, 10-day) on `text`."""
    import ORE  # the `ore` extra

    mapper = ORE.SimmBucketMapperBase()
    for rt, names in QUALIFIERS.items():
        for q, b in names:
            mapper.addMapping(getattr(ORE.CrifRecord, rt.replace("Risk_", "RiskType_")), q, b)
    config = ORE.SimmConfiguration_ISDA_V2_6(mapper, 10)

    def load_and_calculate() -> ORE.SimmCalculator:
        crif = ORE.Crif()
        crif.setCsvLoaderConfig(config)
        crif.fromCSVString(text)
        return ORE.SimmCalculator(crif, config)

    seconds, calc = _timed(load_and_calculate)
    key = (
        ORE.CrifRecord.ProductClass_All,
        ORE.SimmConfiguration.RiskClass_All,
        ORE.SimmConfiguration.MarginType_All,
        "All",
    )
    totals = {}
    for side, name in ((ORE.SimmConfiguration.SimmSide_Call, "Call"), (ORE.SimmConfiguration.SimmSide_Post, "Post")):
        for p in range(portfolios):
            totals[(name, f"P{p}")] = calc.finalSimmResults(side, ORE.NettingSetDetails(f"P{p}"))[1].get(*key)
    return seconds, totals


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """((wall seconds, CPU seconds of this process), fn's value)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    return (time.perf_counter() - start, time.process_time() - cpu), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portfolios", type=int, default=10_000)
    parser.add_argument("--twin", action="store_true", help="also time the per-portfolio calculator (slow)")
    args = parser.parse_args()
    text = crif_text(args.portfolios)
    cal = load_calibration("2.6", 10)
    warm = crif_text(1, seed=1)  # one-off initialisation (imports, pyarrow's reader, ORE's library) is not timed
    calculate_batch(parse_crif_columns(warm), cal, enforce_regulations=False)
    parse_seconds, columns = _timed(parse_crif_columns, text)
    simm_seconds, report = _timed(calculate_batch, columns, cal, enforce_regulations=False)
    ours = {
        (r.side, r.portfolio): r.total for r in report.results if report.winners[(r.side, r.portfolio)] == r.regulation
    }
    fast = (parse_seconds[0] + simm_seconds[0], parse_seconds[1] + simm_seconds[1])

    table = Table(title=f"SIMM 2.6 10-day: {args.portfolios:,} portfolios x 50 sensitivities, both sides")
    for name in ("engine", "wall s", "CPU s", "wall ms/portfolio", "vs ORE (wall)", "vs ORE (CPU)"):
        table.add_column(name, justify="left" if name == "engine" else "right")
    try:
        ore_totals(warm, 1)
        ore_seconds, theirs = ore_totals(text, args.portfolios)
    except ImportError:
        ore_seconds, theirs = None, {}
    per = 1000.0 / args.portfolios

    def row(name: str, seconds: tuple[float, float]) -> None:
        ratios = [f"{o / x:.1f}x" if ore_seconds else "" for o, x in zip(ore_seconds or (0, 0), seconds, strict=True)]
        table.add_row(name, f"{seconds[0]:.2f}", f"{seconds[1]:.2f}", f"{seconds[0] * per:.3f}", *ratios)

    row("solvent: read CRIF (parse_crif_columns)", parse_seconds)
    row("solvent: calculate_batch", simm_seconds)
    row("solvent: read + calculate", fast)
    captions = []
    if args.twin:
        twin_parse, records = _timed(parse_crif, text)
        twin_seconds, slow = _timed(calculate, records, cal, enforce_regulations=False)
        row("twin: parse_crif + calculate", (twin_parse[0] + twin_seconds[0], twin_parse[1] + twin_seconds[1]))
        totals = {(r.side, r.portfolio): r.total for r in slow.results}  # one regulation each here
        worst = max(abs(ours[k] / totals[k] - 1.0) for k in ours if ours[k])
        captions.append(f"largest relative difference from the twin: {worst:.1e}")
    if ore_seconds is not None:
        row("ORE 1.8.17: load + SimmCalculator", ore_seconds)
        worst = max(abs(ours[k] / v - 1.0) for k, v in theirs.items() if v)
        captions.append(f"largest relative difference of the {len(theirs):,} totals from ORE's: {worst:.1e}")
    else:
        captions.append("ORE not installed (pip install open-source-risk-engine): no baseline")
    table.caption = "; ".join(captions)
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
