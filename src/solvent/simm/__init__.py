"""ISDA SIMM from CRIF, matching the Open Source Risk Engine (docs/simm.md).

SIMM is ISDA's methodology; using it to compute regulatory initial margin needs a licence from ISDA.
"""

from solvent.simm.calculator import SimmReport, SimmResult, calculate
from solvent.simm.calibration import Calibration, load_calibration, load_calibration_file
from solvent.simm.crif import CrifRecord, parse_crif, read_crif

__all__ = [
    "Calibration",
    "CrifRecord",
    "SimmReport",
    "SimmResult",
    "calculate",
    "load_calibration",
    "load_calibration_file",
    "parse_crif",
    "read_crif",
]
