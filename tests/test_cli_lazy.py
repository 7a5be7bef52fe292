"""Issue 14 item 7: a lazy command line. `solvent --help` lists every command without importing any, and
`solvent CMD --help` imports CMD's module alone, none of the library.

What is imported is read from `sys.modules` in a fresh interpreter (a subprocess), so that this test session's own
imports cannot hide a heavy one. The lazy group's list is held to click's own rendering of the loaded commands, so
the one-line summaries kept in `solvent.cli.COMMANDS` cannot drift from the commands' docstrings.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import solvent.cli
from solvent.cli import COMMANDS, main
from solvent.cli.lazy import shortened

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: Neither `--help` may load these: the numeric stack, the service's web stack, the engine and the stream core.
HEAVY = ("numpy", "numba", "scipy", "pyarrow", "pandas", "matplotlib", "litestar", "solvent.engine", "solvent.stream")

#: What the command modules may import at their top: the light modules a command's options need.
LIGHT = {
    "solvent",
    "solvent.choices",
    "solvent.demo",
    "solvent.demo.defaults",
    "solvent.errors",
    "solvent.store",
    "solvent.store.url",
}

#: The modules a command's --help may go through (the group, its exits and collection, its shared options and output).
SHARED = {
    "solvent.cli",
    "solvent.cli.lazy",
    "solvent.cli.guards",
    "solvent.cli.collector",
    "solvent.cli.options",
    "solvent.cli.output",
}


def modules_after(arguments: list[str]) -> set[str]:
    """The modules loaded, in a fresh interpreter, by importing solvent.cli and running `solvent ARGUMENTS`."""
    code = (
        "import json, sys\n"
        "from solvent.cli import main\n"
        "try:\n"
        f"    main({arguments!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    return set(json.loads(run.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_lists_every_command_and_imports_none() -> None:
    modules = modules_after(["--help"])
    assert heavy_in(modules) == []
    assert {m for m in modules if m.startswith("solvent")} == {"solvent", "solvent.cli", "solvent.cli.lazy"}


@pytest.mark.parametrize("options", [["--format", "table"], ["--format", "json"], ["--explain", "carol"]])
def test_margin_on_the_examples_loads_no_pandas(options: list[str]) -> None:
    """pyarrow imports pandas on its first conversion of Python values (0.2 s of the warm command's 1 s): the JSON
    portfolio's path converts through formats/arrow_numpy.py instead, and nothing else on it needs pandas."""
    inputs = ["--portfolio", str(EXAMPLES / "portfolio.json"), "--market", str(EXAMPLES / "market.json")]
    modules = modules_after(["margin", *inputs, *options])
    assert "solvent.engine.margin" in modules  # the command ran
    assert [m for m in modules if m == "pandas" or m.startswith("pandas.")] == []


def _module_of(name: str) -> str:
    return COMMANDS[name].target.partition(":")[0]


@pytest.mark.parametrize(
    "arguments", [[name, "--help"] for name in COMMANDS] + [["params", "propose", "--help"], ["keys", "add", "--help"]]
)
def test_a_commands_help_imports_its_module_alone(arguments: list[str]) -> None:
    modules = modules_after(arguments)
    assert heavy_in(modules) == []
    assert {m for m in modules if m.startswith("solvent")} <= LIGHT | SHARED | {_module_of(arguments[0])}
    assert _module_of(arguments[0]) in modules


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_registry_names_the_command_and_its_first_sentence(name: str) -> None:
    command = COMMANDS[name].load()
    assert command.name == name
    assert COMMANDS[name].summary == command.get_short_help_str(limit=10_000)


@pytest.mark.parametrize("name", sorted(COMMANDS))
@given(limit=st.integers(min_value=0, max_value=300))
def test_a_summary_is_shortened_as_click_shortens_the_docstring(name: str, limit: int) -> None:
    assert shortened(COMMANDS[name].summary, limit) == COMMANDS[name].load().get_short_help_str(limit)


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_the_lazy_list_is_clicks_list_of_the_loaded_commands(width: int) -> None:
    """The lazy group's "Commands" section equals what a plain click group holding the imported commands prints."""
    eager = click.Group("solvent", commands={name: entry.load() for name, entry in COMMANDS.items()})
    drawn = []
    for group in (main, eager):
        formatter = click.HelpFormatter(width=width)
        group.format_commands(click.Context(group), formatter)
        drawn.append(formatter.getvalue())
    assert drawn[0] == drawn[1]
    assert all(f"  {name} " in drawn[0] for name in COMMANDS)


def test_every_command_of_the_package_is_registered() -> None:
    """A command defined in solvent/cli/ but missing from COMMANDS would be unreachable: none is."""
    registered = {entry.target for entry in COMMANDS.values()}
    defined = set()
    for info in pkgutil.iter_modules(solvent.cli.__path__):
        module = importlib.import_module(f"solvent.cli.{info.name}")
        commands = {k: v for k, v in vars(module).items() if isinstance(v, click.Command)}
        nested = {id(c) for v in commands.values() if isinstance(v, click.Group) for c in v.commands.values()}
        defined |= {f"{module.__name__}:{k}" for k, v in commands.items() if id(v) not in nested}
    assert defined == registered


def test_an_unknown_command_is_refused_as_before() -> None:
    result = CliRunner().invoke(main, ["nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output


def test_the_entry_point_and_python_dash_m_reach_the_group() -> None:
    script = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]["solvent"]
    module, _, attribute = script.partition(":")
    assert getattr(importlib.import_module(module), attribute) is main
    run = subprocess.run(
        [sys.executable, "-m", "solvent", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    assert all(f"  {name} " in run.stdout for name in COMMANDS)
