"""The optional extras: the modules each one brings, and the one guard around their imports.

The engine and the command line need only solvent's core dependencies; the reports, `to_pandas`, the service,
the PostgreSQL store, the NATS bus and the Ray sweep each need an extra (pyproject.toml,
`[project.optional-dependencies]`), so that a library installed into someone's notebook environment pulls in no
web server. Every import of an extra's module sits inside `with requires_extra(NAME):`, which turns the module's
absence into one line naming the extra to install (tests/test_dependencies.py checks that each one does). A
feature that would find a module missing only at its end (a report drawn after a long run, with part of its
output written) calls `check_extra` before it starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from solvent.errors import InputError

#: Each extra and the top-level modules solvent imports from it (its pyproject entry lists their distributions).
EXTRAS: Final[Mapping[str, frozenset[str]]] = {
    "report": frozenset({"matplotlib", "pandas", "jinja2", "markupsafe"}),
    "pandas": frozenset({"pandas"}),
    "service": frozenset({"litestar", "anyio", "granian", "prometheus_client"}),
    "postgres": frozenset({"psycopg"}),
    "nats": frozenset({"nats"}),
    "sweep": frozenset({"ray"}),
}


class MissingExtraError(InputError):
    """A feature was asked for whose extra is not installed: `str(error)` is the one line the CLI prints (exit 2),
    e.g. ``matplotlib is not installed: pip install 'solvent[report]'``."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__("", "", f"{module} is not installed: pip install 'solvent[{extra}]'")


@contextmanager
def requires_extra(extra: str) -> Iterator[None]:
    """Imports of `extra`'s modules inside this block raise `MissingExtraError` when the module is missing.

    Any other missing module (a submodule, or a package the extra's package needs itself: a broken install)
    propagates as it is.
    """
    modules = EXTRAS[extra]
    try:
        yield
    except ModuleNotFoundError as error:
        if error.name not in modules:
            raise
        raise MissingExtraError(error.name, extra) from None


def check_extra(extra: str) -> None:
    """Raise `MissingExtraError` now if any module of `extra` is missing (nothing is imported)."""
    for module in sorted(EXTRAS[extra]):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, extra)
