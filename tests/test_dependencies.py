"""Dependencies for a library (issue 14 item 11): ranges in pyproject.toml, the exact pins `make` installs in
constraints.txt, and every third-party import of src/ either a core dependency or guarded by its extra.

The files are read as data (tomllib, `packaging`'s requirement grammar, `ast` over src/); the missing-extra checks
run the CLI in a subprocess whose import system cannot find the extra's modules, as where it was never installed.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from solvent._extras import EXTRAS, MissingExtraError, check_extra, requires_extra
from solvent.service.auth import Role, add_key

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "solvent"
EXAMPLES = ROOT / "examples"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRA_GROUPS: dict[str, list[str]] = PROJECT["optional-dependencies"]


def _groups() -> Iterator[tuple[str, Requirement]]:
    """(group, requirement) for the core ("core"), every extra and the build, less the test extra's solvent[...]."""
    for line in PROJECT["dependencies"]:
        yield "core", Requirement(line)
    for extra, lines in EXTRA_GROUPS.items():
        for line in lines:
            requirement = Requirement(line)
            if requirement.name != PROJECT["name"]:
                yield extra, requirement
    for line in PYPROJECT["build-system"]["requires"]:
        yield "build", Requirement(line)


REQUIREMENTS = list(_groups())


def _names(group: str) -> set[NormalizedName]:
    return {canonicalize_name(r.name) for g, r in REQUIREMENTS if g == group}


def _pins() -> dict[NormalizedName, Version]:
    """constraints.txt as {package: version}; anything but one `name==version` per package is an error."""
    pins: dict[NormalizedName, Version] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==" and not requirement.extras and not requirement.marker, f"line {number}: {line}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"line {number}: {name} pinned twice"
        pins[name] = Version(spec.version)
    return pins


PINS = _pins()


@pytest.mark.parametrize(("group", "requirement"), REQUIREMENTS, ids=[f"{g}:{r.name}" for g, r in REQUIREMENTS])
def test_each_requirement_is_a_range_from_its_tested_pin(group: str, requirement: Requirement) -> None:
    operators = [spec.operator for spec in requirement.specifier]
    assert "==" not in operators and "===" not in operators, f"{group}: {requirement} is a pin, not a range"
    lower = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(lower) == 1, f"{group}: {requirement} needs one lower bound (>=)"
    if group == "build":
        return  # built in pip's isolated environment: not a package of the venv, so not in constraints.txt
    pin = PINS.get(canonicalize_name(requirement.name))
    assert pin is not None, f"{requirement.name} is not pinned in constraints.txt"
    assert requirement.specifier.contains(pin, prereleases=True), f"constraints.txt's {pin} is outside {requirement}"
    assert lower[0] == pin, f"{requirement}: the lower bound should be the tested version {pin} (constraints.txt)"


def test_llvmlite_is_left_to_numba() -> None:
    assert "llvmlite" not in {canonicalize_name(r.name) for _, r in REQUIREMENTS}
    brought = [Requirement(line) for line in importlib.metadata.requires("numba") or []]
    assert "llvmlite" in {canonicalize_name(r.name) for r in brought}  # numba's own metadata brings it
    assert "llvmlite" in PINS  # and make installs the version the tests ran on


def test_the_test_extra_installs_every_extra_the_tests_exercise() -> None:
    selves = [Requirement(line) for line in EXTRA_GROUPS["test"] if Requirement(line).name == PROJECT["name"]]
    assert [sorted(r.extras) for r in selves] == [sorted(set(EXTRA_GROUPS) - {"test", "sweep"})]


def test_the_guard_knows_every_extra() -> None:
    assert set(EXTRAS) == set(EXTRA_GROUPS) - {"test"}


GUARDED = sorted((extra, module) for extra, modules in EXTRAS.items() for module in modules)


@pytest.mark.parametrize(("extra", "module"), GUARDED, ids=[f"{e}-{m}" for e, m in GUARDED])
def test_each_module_the_guard_names_is_brought_by_its_extra(extra: str, module: str) -> None:
    assert _distribution(module) in _names(extra), f"{module} is not brought by solvent[{extra}]"


@functools.cache
def _installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution(module: str) -> NormalizedName:
    """The distribution that installs top-level `module` (by the installed metadata; else its own name)."""
    found = _installed().get(module, [module])
    assert len(found) == 1, f"{module} comes from several distributions: {found}"
    return canonicalize_name(found[0])


def _guard(parents: list[ast.AST]) -> str | None:
    """The extra of the innermost `with requires_extra("NAME"):` around a node, else None."""
    for node in reversed(parents):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "requires_extra":
                    argument = call.args[0]
                    assert isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                    return argument.value
    return None


def _third_party_imports() -> dict[tuple[str, str | None], list[str]]:
    """{(top-level module, guarding extra or None): ['file:line', ...]} over every import of src/solvent."""
    found: dict[tuple[str, str | None], list[str]] = {}

    def visit(node: ast.AST, parents: list[ast.AST], path: Path) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        for name in names:
            top = name.partition(".")[0]
            if top not in sys.stdlib_module_names and top not in ("solvent", "__future__"):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                found.setdefault((top, _guard(parents)), []).append(where)
        for child in ast.iter_child_nodes(node):
            visit(child, [*parents, node], path)

    for path in sorted(SRC.rglob("*.py")):
        visit(ast.parse(path.read_text(), str(path)), [], path)
    return found


IMPORTS = _third_party_imports()
#: Imported directly but left to follow numba (the issue: no llvmlite entry): numba's own LLVM binding.
NUMBA_BRINGS = {canonicalize_name("llvmlite")}


IMPORTED = sorted(IMPORTS, key=str)


@pytest.mark.parametrize(("module", "extra"), IMPORTED, ids=[f"{m}-{e}" for m, e in IMPORTED])
def test_every_third_party_import_is_core_or_guarded_by_its_extra(module: str, extra: str | None) -> None:
    where = ", ".join(IMPORTS[module, extra][:3])
    if extra is None:
        assert _distribution(module) in _names("core") | NUMBA_BRINGS, f"{module} ({where}): not core; guard it"
    else:
        assert module in EXTRAS[extra], f"{module} ({where}): guarded by solvent[{extra}], which does not bring it"


def test_every_core_dependency_is_imported() -> None:
    imported = {_distribution(module) for module, extra in IMPORTS if extra is None}
    assert _names("core") <= imported, f"declared but never imported: {sorted(_names('core') - imported)}"


def test_a_missing_module_of_the_extra_is_named_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # None in sys.modules: `import ray` fails as if not installed
    with pytest.raises(MissingExtraError) as raised, requires_extra("sweep"):
        import ray  # noqa: F401
    assert str(raised.value) == "ray is not installed: pip install 'solvent[sweep]'"
    with pytest.raises(MissingExtraError, match=r"^ray is not installed: pip install 'solvent\[sweep\]'$"):
        check_extra("sweep")


@pytest.mark.parametrize("module", ["solvent_no_such_module", "matplotlib.no_such_module"])
def test_a_module_missing_beside_or_inside_the_extras_package_is_not_renamed(module: str) -> None:
    """A broken install (a module the extra's package needs, or a part of it) is not reported as the extra's
    absence: the guard names only a missing top-level module of the extra."""
    with pytest.raises(ModuleNotFoundError) as raised, requires_extra("report"):
        importlib.import_module(module)
    assert not isinstance(raised.value, MissingExtraError)
    assert raised.value.name == module


#: Run the command line with `sys.argv[1]`'s comma-separated modules hidden from the path finder, so that they
#: are missing as they would be in an environment without them (the rest of argv is the command's).
HIDDEN_RUN = """
import sys
from importlib.machinery import PathFinder
hidden = frozenset(sys.argv[1].split(","))
class Hide:
    @staticmethod
    def find_spec(name, path=None, target=None):
        return None if name.partition(".")[0] in hidden else PathFinder.find_spec(name, path, target)
    find_distributions = PathFinder.find_distributions  # importlib.metadata asks the same finders
sys.meta_path = [Hide if finder is PathFinder else finder for finder in sys.meta_path]
sys.argv = ["solvent", *sys.argv[2:]]
from solvent.cli import main
main()
"""


def _run_hidden(modules: set[str] | frozenset[str], *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", HIDDEN_RUN, ",".join(sorted(modules)), *argv]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, timeout=300)


def test_the_engine_and_cli_run_without_any_extra(tmp_path: Path) -> None:
    """`solvent margin` on the examples gives the same document with every extra's modules missing."""
    argv = ("margin", "--portfolio", str(EXAMPLES / "portfolio.json"), "--market", str(EXAMPLES / "market.json"))
    core = _run_hidden(frozenset().union(*EXTRAS.values()), *argv, "--format", "json", cwd=tmp_path)
    full = _run_hidden(frozenset({"solvent_no_such_module"}), *argv, "--format", "json", cwd=tmp_path)
    assert core.returncode == 0, core.stderr
    assert json.loads(core.stdout)["accounts"]
    assert core.stdout == full.stdout


@pytest.mark.parametrize(
    ("hidden", "argv", "extra"),
    [
        ("granian", ["serve", "--keys", "keys.json"], "service"),
        ("matplotlib", ["demo", "--out", "out"], "report"),
        ("pandas", ["backtest", "--history", "history.csv", "--out", "out"], "report"),
        ("matplotlib", ["backtest", "--history", "history.csv", "--out", "out"], "report"),
        ("nats", ["nats-run", "--accounts", "{portfolio}", "--market", "{market}"], "nats"),
        ("psycopg", ["serve", "--keys", "{keys}", "--store", "postgresql://solvent@127.0.0.1/none"], "postgres"),
    ],
    ids=["serve", "demo", "backtest-pandas", "backtest-matplotlib", "nats-run", "postgres-store"],
)
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, hidden: str, argv: list[str], extra: str
) -> None:
    keys = tmp_path / "existing-keys.json"
    add_key(str(keys), "operator", Role.OPERATOR)
    paths = {"portfolio": EXAMPLES / "portfolio.json", "market": EXAMPLES / "market.json", "keys": keys}
    before = sorted(tmp_path.iterdir())
    run = _run_hidden({hidden}, *(a.format(**paths) for a in argv), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr == f"error: {hidden} is not installed: pip install 'solvent[{extra}]'\n"
    assert sorted(tmp_path.iterdir()) == before  # nothing written: no keys file, no report folder


def test_to_pandas_names_the_pandas_extra() -> None:
    code = HIDDEN_RUN.replace(
        "from solvent.cli import main\nmain()",
        "import solvent\n"
        f"book = solvent.load_portfolio({str(EXAMPLES / 'portfolio.json')!r})\n"
        f"result = solvent.compute_margin(book, solvent.load_market({str(EXAMPLES / 'market.json')!r}))\n"
        "try:\n    result.to_pandas()\nexcept solvent.InputError as error:\n    print(error)\n",
    )
    run = subprocess.run([sys.executable, "-c", code, "pandas"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "pandas is not installed: pip install 'solvent[pandas]'\n"


def test_what_numba_brings_is_numbas_own_requirement() -> None:
    """The modules imported on numba's say are in numba's installed requirements, not only in this test."""
    import importlib.metadata

    brought = {canonicalize_name(Requirement(r).name) for r in importlib.metadata.requires("numba") or []}
    assert NUMBA_BRINGS <= brought
