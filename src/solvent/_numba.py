"""The one place numba is imported: compiled kernels use `jit` (cached, nogil) and `prange`.

A parallel kernel comes with a serial twin compiled from the same source: an input whose first argument
has fewer than `SERIAL_BELOW` rows runs serially, because waking the thread pool costs more than such a
small input does (measured on these 2-core machines: 1-8 ms per parallel call against 0.3 ms for a whole
300-account margin run in serial). Both give the same numbers: every kernel writes each row independently.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

prange = numba.prange

#: Rows (the first argument's length) below which a parallel kernel runs its serial twin.
SERIAL_BELOW = 4096


class _SizeDispatch:
    """A parallel kernel and its serial twin, chosen per call by the first argument's length."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.parallel = numba.njit(cache=True, nogil=True, parallel=True)(function)
        twin = types.FunctionType(
            function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__
        )
        twin.__qualname__ = function.__qualname__ + "_serial"  # its own on-disk cache entry
        twin.__module__ = function.__module__
        self.serial = numba.njit(cache=True, nogil=True, parallel=False)(twin)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any) -> Any:
        first = args[0]
        rows = first.shape[0] if getattr(first, "ndim", 0) else SERIAL_BELOW
        return (self.serial if rows < SERIAL_BELOW else self.parallel)(*args)


def jit(*, parallel: bool = False, inline: bool = False) -> Callable[[F], F]:
    """Compile a kernel with numba: nopython, cached on disk, GIL released; `parallel` kernels get a serial
    twin for small inputs (see the module docstring). `inline`: a helper inlined into the compiled kernels that
    call it (numba's IR inlining), so that a kernel can call it in its inner loop at no call cost."""

    def wrap(function: F) -> F:
        if parallel:
            return cast(F, _SizeDispatch(function))
        return cast(F, numba.njit(cache=True, nogil=True, inline="always" if inline else "never")(function))

    return wrap


def set_threads(n: int) -> None:
    """Use `n` threads in parallel kernels (at most numba's configured maximum)."""
    numba.set_num_threads(max(1, min(n, int(getattr(numba.config, "NUMBA_NUM_THREADS", n)))))


def load_library(path: str) -> None:
    """Load a shared library into this process, so that compiled kernels can call its functions by name."""
    import llvmlite.binding  # type: ignore[import-untyped]  # numba's own LLVM binding, untyped as numba is

    llvmlite.binding.load_library_permanently(path)


def c_function(name: str, returns: str, n_args: int) -> Any:
    """A C function, callable from compiled kernels: `returns` is "int32", "intp" or "void", and its `n_args`
    arguments are pointers or sizes passed as machine words. The kernel links it by its symbol name, not by
    address, so a kernel cached on disk stays valid in a new process; its library must be loaded
    (`load_library`) before a kernel that calls it first runs."""
    result: Any = {"int32": numba.types.int32, "intp": numba.types.intp, "void": numba.types.void}[returns]
    return numba.types.ExternalFunction(name, result(*([numba.types.intp] * n_args)))
