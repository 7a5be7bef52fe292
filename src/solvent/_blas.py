"""One BLAS thread for the engine's small per-market-state products.

numpy's bundled OpenBLAS runs a product of more than 262,144 multiply-adds on every core, and its worker threads
then spin for a while before they sleep. The Monte Carlo's correlated draws (256 x 200 x 200 on 200 assets) and
the scenario correlation's covariance are such products: each takes 0.5-0.8 ms of CPU on one thread and 8-45 ms
on two (the 2-core bench machine, the spin included), and the spinning threads contend with the margin kernel
that follows. OpenBLAS splits a product's output between threads, not its sums, so the figures are the same to
the bit on one thread.

The thread count is set through numpy's own OpenBLAS (`scipy-openblas`, in the wheel's library folder) and put
back when the last block inside `one_blas_thread` leaves (the count is the library's, shared by every thread); with
any other BLAS (not found there) `one_blas_thread` changes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

#: (prefix, suffix) of OpenBLAS' thread-count functions in numpy's builds: 64-bit and 32-bit integer interfaces.
_NAMES = (("scipy_openblas_", "64_"), ("scipy_openblas_", ""))


@functools.cache
def _thread_count() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """(get, set) of the thread count of the OpenBLAS numpy links, or None where there is none to find."""
    package = Path(np.__file__).resolve().parent
    for library in sorted([*package.parent.glob("numpy.libs/*openblas*"), *package.glob(".dylibs/*openblas*")]):
        try:
            loaded = ctypes.CDLL(str(library))  # numpy has loaded it already: the same handle
        except OSError:
            continue
        for prefix, suffix in _NAMES:
            get = getattr(loaded, f"{prefix}get_num_threads{suffix}", None)
            put = getattr(loaded, f"{prefix}set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return None


class _OneThread:
    """The thread count held at 1 while any block is inside `one_blas_thread` (in any thread; the count is the
    library's, not a thread's), and put back when the last one leaves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.before = 0

    def enter(self, get: Callable[[], int], put: Callable[[int], None]) -> None:
        with self.lock:
            if not self.inside:
                self.before = get()
                put(1)
            self.inside += 1

    def leave(self, put: Callable[[int], None]) -> None:
        with self.lock:
            self.inside -= 1
            if not self.inside:
                put(self.before)


_ONE_THREAD = _OneThread()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block's BLAS products on one thread; the count is restored when no such block runs any more."""
    count = _thread_count()
    if count is None:
        yield
        return
    get, put = count
    _ONE_THREAD.enter(get, put)
    try:
        yield
    finally:
        _ONE_THREAD.leave(put)
