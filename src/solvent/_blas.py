"""One BLAS thread for the engine's small per-market-state products.

numpy's OpenBLAS runs a product of more than 262,144 multiply-adds on every core, and its worker threads then spin
for a while before they sleep. The Monte Carlo's correlated draws (256 x 200 x 200 on 200 assets) and the scenario
correlation's covariance are such products: each takes 0.5-0.8 ms of CPU on one thread and 8-45 ms on two (the
2-core bench machine, the spin included), and the spinning threads contend with the margin kernel that follows.
OpenBLAS splits a product's output between threads, not its sums, so the figures are the same to the bit on one
thread.

The BLAS libraries loaded in the process are found and set by threadpoolctl (the library made for this; with no
BLAS it finds, nothing changes). Blocks may overlap in several threads: the count is set to 1 when the first
enters and restored when the last leaves.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    """The process's thread pools, inspected once (a few ms: the loaded libraries are listed)."""
    return ThreadpoolController()


class _OneThread:
    """How many blocks are inside, and the limit that holds while any is (restored when the last leaves)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.limit: Any = None

    def enter(self) -> None:
        with self.lock:
            if not self.inside:
                self.limit = _controller().limit(limits=1, user_api="blas")
            self.inside += 1

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1
            if not self.inside:
                self.limit.restore_original_limits()
                self.limit = None


_ONE_THREAD = _OneThread()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block's BLAS products on one thread; the count is restored when no such block runs any more."""
    _ONE_THREAD.enter()
    try:
        yield
    finally:
        _ONE_THREAD.leave()
