"""click's lazy group: the commands are named with their one-line help, and a command's module is imported only
when that command runs (or its own --help is asked for), so `solvent --help` loads none of the library."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (`module:attribute`) and its one-line help, shown without importing the module.

    `summary` is what click makes of the command's docstring (its first sentence, newlines collapsed);
    tests/test_cli_lazy.py holds the two equal, so they cannot drift apart.
    """

    target: str
    summary: str

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


def shortened(summary: str, limit: int) -> str:
    """`summary` cut to `limit` characters on a word boundary with "...", as click shortens a command's help."""
    if len(summary) <= limit:
        return summary
    if limit < len("..."):
        return "..."
    return textwrap.shorten(summary, limit, placeholder="...", break_on_hyphens=False)


class LazyGroup(click.Group):
    """A click group whose commands are `LazyCommand`s, imported on demand (click's documented LazyGroup pattern:
    `list_commands` and `get_command` overridden; `format_commands` lists the summaries instead of loading)."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        return None if entry is None else entry.load()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)  # click's own budget for the help column
        with formatter.section("Commands"):
            formatter.write_dl([(name, shortened(self.lazy[name].summary, limit)) for name in names])
