"""Array arguments of the rule kernels: converted once to float64 and checked (`as_float`), results as arrays.

At the bottom of the import floors, so that the factors (factors/venue_curves.py) and the venue rules
(baselines/) check their inputs the same way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def as_float(name: str, values: ArrayLike, *, nonnegative: bool = False) -> FloatArray:
    """`values` as a float64 array (a copy only where a conversion needs one); ValueError on bad entries."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array)
    if nonnegative:
        bad |= array < 0.0
    if np.any(bad):
        rule = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(f"{name}: must be {rule}, got {float(array[bad].flat[0])!r}")
    return array


def out(values: ArrayLike) -> FloatArray:
    """A kernel's result as a float64 array (0-d for scalar inputs, never a bare numpy scalar)."""
    return np.asarray(values, dtype=np.float64)
