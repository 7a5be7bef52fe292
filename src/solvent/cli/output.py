"""Where a command's result goes: a table or a document, to standard output or atomically to a file."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console


def emit(fmt: str, out_path: str | None, table: Callable[[Console], None], document: Callable[[], str]) -> None:
    """Table or JSON, to standard output or atomically to `out_path`.

    A table is drawn at the terminal's width, else 240 columns on a pipe and 200 in a file, so that
    account ids are never truncated.
    """
    from rich.console import Console

    from solvent.formats.io import write_text_atomic

    if fmt == "table":
        if out_path is None:
            table(Console() if sys.stdout.isatty() else Console(width=240))
        else:
            write_text_atomic(out_path, lambda handle: table(Console(file=handle, width=200)))
    elif out_path is None:
        click.echo(document())
    else:
        text = document()
        write_text_atomic(out_path, lambda handle: print(text, file=handle))


def emit_text(text: str, out_path: str | None) -> None:
    """Text as it is (a CSV), to standard output or atomically to `out_path`."""
    from solvent.formats.io import write_text_atomic

    if out_path is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out_path, lambda handle: print(text, file=handle, end=""))
