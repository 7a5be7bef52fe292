"""The shipped calibrations: every table present in each version, with the same keys as 2.6's.

SIMM 2.4 (ISDA 2.3.8) was transcribed by hand from ORE's simmconfigurationisdav2_3_8.cpp; the golden test
checks its interest-rate numbers, and this test that no table or bucket was left out elsewhere.
"""

from __future__ import annotations

import math

import pytest

from solvent.errors import InputError
from solvent.simm import load_calibration
from solvent.simm.calibration import VERSIONS, Calibration


def _shape(cal: Calibration) -> dict[str, object]:
    return {
        "flat": sorted(cal.flat_weights),
        "bucketed": {k: sorted(v) for k, v in cal.bucket_weights.items()},
        "tenor": sorted(cal.tenor_weights),
        "hvr": sorted(cal.hvr),
        "intra": {k: sorted(v) for k, v in cal.intra.items()},
        "inter": {k: sorted(v) for k, v in cal.inter.items()},
        "rc": sorted(cal.risk_class_corr),
        "flat_thresholds": sorted(cal.flat_thresholds),
        "bucket_thresholds": {k: sorted(v) for k, v in cal.bucket_thresholds.items()},
    }


@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("mpor", [10, 1])
def test_every_version_has_every_table(version: str, mpor: int) -> None:
    cal = load_calibration(version, mpor)
    reference = _shape(load_calibration("2.6", mpor))
    ours = _shape(cal)
    if version == "2.4":  # the source has no equity Residual intra-bucket entry (the code treats Residual itself)
        intra = reference["intra"]
        assert isinstance(intra, dict)
        intra["Risk_Equity"] = [k for k in intra["Risk_Equity"] if k[0] != "Residual"]
    assert ours == reference


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_correlations_are_correlations(version: str) -> None:
    cal = load_calibration(version, 10)
    values = [v for table in (*cal.intra.values(), *cal.inter.values()) for v in table.values()]
    values += [*cal.risk_class_corr.values(), cal.ir_sub_curve, cal.ir_outer, cal.crq_same, cal.crnq_diff]
    assert all(-1.0 <= v <= 1.0 for v in values)


def test_one_day_has_no_concentration() -> None:
    assert math.isinf(load_calibration("2.6", 1).threshold("Risk_IRCurve", "USD", ""))
    assert (
        load_calibration("2.6", 10).threshold("Risk_IRCurve", "USD", "") == 330e6
    )  # 2.6: USD in threshold group 2, 330 mm (simm_2.6.xml)


def test_unknown_version_and_horizon_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown SIMM version"):
        load_calibration("1.0", 10)
    with pytest.raises(InputError, match="10-day and 1-day"):
        load_calibration("2.6", 5)
