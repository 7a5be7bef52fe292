"""The closed sets of names a user picks from on the command line: the venue rules and the SIMM calibrations.

Declared here, with nothing heavier than `typing`, so that `solvent --help` and each command's click options can
offer them without loading numpy, scipy or the modules that implement them; `solvent.baselines` and
`solvent.simm.calibration` import them from here.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

#: A venue rule margined beside the engine (`solvent.baselines`, one module each).
BaselineName = Literal["static", "dydx", "synthetix", "drift", "deribit"]
BASELINE_NAMES: tuple[BaselineName, ...] = get_args(BaselineName)

#: The bundled ISDA SIMM calibrations (`solvent.simm.calibration`), each in the file `simm_<version>.xml`.
#: "2.4" is ORE's name for ISDA SIMM 2.3.8 (its golden results are labelled SIMM2.4).
SIMM_VERSIONS: Final[tuple[str, ...]] = ("2.4", "2.6", "2.8+2506")
SIMM_DEFAULT_VERSION: Final = "2.6"
