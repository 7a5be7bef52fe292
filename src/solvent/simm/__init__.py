"""ISDA SIMM from CRIF, matching the Open Source Risk Engine (docs/simm.md).

SIMM is ISDA's methodology; using it to compute regulatory initial margin needs a licence from ISDA.
"""

from solvent.simm.batch import calculate_batch
from solvent.simm.calculator import SimmReport, SimmResult, calculate
from solvent.simm.calibration import Calibration, load_calibration, load_calibration_file
from solvent.simm.columns import CrifColumns, parse_crif_columns, read_crif_columns
from solvent.simm.crif import CrifRecord, parse_crif, read_crif

__all__ = [
    "Calibration",
    "CrifColumns",
    "CrifRecord",
    "SimmReport",
    "SimmResult",
    "calculate",
    "calculate_batch",
    "load_calibration",
    "load_calibration_file",
    "parse_crif",
    "parse_crif_columns",
    "read_crif",
    "read_crif_columns",
]
