"""SIMM against the Open Source Risk Engine's Python bindings on seeded random CRIFs (all risk classes).

`open-source-risk-engine` (extra `ore`) is an oracle, skipped when absent. Its SimmCalculator gets the same
CRIF (with AmountUSD) and an explicit bucket mapper for the bucketed qualifiers. Its Python SimmCalculator
does not enforce regulations (every row is "Unspecified"), so ours runs with enforce_regulations=False;
the call and post totals of every portfolio must agree to 1e-9 relative. Ours is the batched calculator
(simm/batch.py) on the column reader, the path `solvent simm` and the benchmark take; test_simm_batch.py ties
it to the per-portfolio calculator.
"""

from __future__ import annotations

import pytest
from simm_random import random_crif

from solvent.simm import load_calibration
from solvent.simm.batch import calculate_batch
from solvent.simm.columns import parse_crif_columns

ORE = pytest.importorskip("ORE")

VERSIONS = {"2.6": "SimmConfiguration_ISDA_V2_6", "2.8+2506": "SimmConfiguration_ISDA_V2_8_2506"}


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
    ours = calculate_batch(parse_crif_columns(text), load_calibration(version, mpor), enforce_regulations=False)
    theirs = _ore_totals(text, buckets, version, mpor)
    got = {key: ours.result(*key).total for key in ours.winners}
    assert sorted(k for k, v in got.items() if v) == sorted(k for k, v in theirs.items() if v)
    for key, value in theirs.items():
        assert got.get(key, 0.0) == pytest.approx(value, rel=1e-9, abs=1e-6), key
