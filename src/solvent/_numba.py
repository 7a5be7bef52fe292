"""The one place numba is imported: compiled kernels use `jit` (cached, nogil) and `prange`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

prange = numba.prange


def jit(*, parallel: bool = False) -> Callable[[F], F]:
    """Compile a kernel with numba: nopython, cached on disk, GIL released."""

    def wrap(function: F) -> F:
        return cast(F, numba.njit(cache=True, nogil=True, parallel=parallel)(function))

    return wrap


def set_threads(n: int) -> None:
    """Use `n` threads in parallel kernels (at most numba's configured maximum)."""
    numba.set_num_threads(max(1, min(n, int(getattr(numba.config, "NUMBA_NUM_THREADS", n)))))
