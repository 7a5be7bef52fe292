"""A one-shot command's cyclic garbage collection: paused while it runs, what it leaves frozen when it returns.

CPython runs a collection whenever enough container objects have been allocated since the last (a full one now and
then, and again at exit), each walking the objects of its generations. The warm `solvent margin` on the examples
keeps some 150,000 tracked objects alive (numpy, scipy, pyarrow, numba's typing registries and compiled kernels),
nearly all of them until the process ends, and its 300-odd collections took 0.2 s of its 0.9 s of CPU
(docs/benchmarks.md, issue 14 item 7). So a one-shot command runs with the collector paused, as Mercurial's
`util.nogc` pauses it for bulk allocations, and freezes what is alive when it returns (`gc.freeze`), so that the
collections at exit skip it. Reference counting frees objects as before: only reference cycles made while the
command runs wait for the process's end (or, when a longer-lived process calls the command, stay frozen in it).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def one_shot(command: F) -> F:
    """Run `command` with the cyclic collector paused; freeze what is alive when it returns or raises."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            gc.freeze()
            if enabled:
                gc.enable()

    return run  # type: ignore[return-value]
