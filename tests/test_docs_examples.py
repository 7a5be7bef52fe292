"""The examples in README.md and docs/*.md run: Python blocks, JSON format examples and the README tour.

Each fenced block (or tour command) is one test case, named by file and line of its opening fence.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import solvent
from solvent.cli import main
from solvent.convert.results import result_document

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FORMATS = ROOT / "docs" / "formats.md"
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: file, 1-based line of the opening fence, language, text (indent removed)."""

    path: Path
    line: int
    lang: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = len(opening.group("indent"))
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = "\n".join(line[indent:] for line in lines[i + 1 : end])
        blocks.append(Block(path, i + 1, opening.group("lang"), body + "\n"))
        i = end + 1
    return blocks


def all_blocks(lang: str, paths: list[Path] = DOCUMENTS) -> list[Block]:
    return [block for path in paths for block in fenced_blocks(path) if block.lang == lang]


def cases(blocks: list[Block]) -> list[Any]:
    return [pytest.param(block, id=block.name) for block in blocks]


# ------------------------------------------------------------------------------------------ (a) Python


@pytest.mark.parametrize("block", cases(all_blocks("python")))
def test_python_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(block.text, block.name, "exec"), namespace)  # raises, and the block's own asserts fail, on error
    assert len(namespace) > 1  # the block ran and defined something


# -------------------------------------------------------------------------------- (b) JSON and CSV formats


def json_examples(schema: str | None = None) -> list[Block]:
    """formats.md's JSON blocks, those declaring `schema` if given."""
    blocks = all_blocks("json", [FORMATS])
    if schema is None:
        return blocks
    return [block for block in blocks if json.loads(block.text).get("schema") == schema]


PORTFOLIOS = json_examples("solvent.portfolio/1")
MARKETS = json_examples("solvent.market/1")
PARAMS = json_examples("solvent.params/1")
MARGINS = json_examples("solvent.margin/1")


def write(block: Block, directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text(block.text, encoding="utf-8")
    return path


def quoted_assets(market: Block) -> set[str]:
    return set(json.loads(market.text)["assets"]) | {"USD"}


def needed_assets(portfolio: Block) -> set[str]:
    document = json.loads(portfolio.text)
    underlyings = {instrument["underlying"] for instrument in document["instruments"]}
    collateral = {asset for account in document["accounts"] for asset in account.get("collateral", {})}
    return underlyings | collateral


def market_for(portfolio: Block) -> Block:
    """The first market example of the same file that quotes every asset the portfolio example needs."""
    for market in MARKETS:
        if market.path == portfolio.path and needed_assets(portfolio) <= quoted_assets(market):
            return market
    raise AssertionError(f"{portfolio.name}: no market example in {portfolio.path.name} quotes its assets")


def preceding(examples: list[Block], block: Block) -> Block:
    """The last of `examples` that comes before `block` in its file."""
    before = [e for e in examples if e.path == block.path and e.line < block.line]
    assert before, f"{block.name}: no example of the needed kind precedes it"
    return before[-1]


def test_formats_has_examples_of_every_input() -> None:
    assert PORTFOLIOS and MARKETS and PARAMS and MARGINS


@pytest.mark.parametrize("block", cases(all_blocks("json")))
def test_json_block_is_json(block: Block) -> None:
    assert isinstance(json.loads(block.text), (dict, list))


@pytest.mark.parametrize("block", cases(PORTFOLIOS))
def test_portfolio_example_margins_with_its_market(block: Block, tmp_path: Path) -> None:
    book = solvent.load_portfolio(write(block, tmp_path, "portfolio.json"))
    market = solvent.load_market(write(market_for(block), tmp_path, "market.json"))
    result = solvent.compute_margin(book, market)
    assert list(result.account_ids) == [a["id"] for a in json.loads(block.text)["accounts"]]
    assert all(math.isfinite(v) and v >= 0 for v in result.im)


@pytest.mark.parametrize("block", cases(MARKETS))
def test_market_example_loads(block: Block, tmp_path: Path) -> None:
    market = solvent.load_market(write(block, tmp_path, "market.json"))
    assert set(market.assets) == set(json.loads(block.text)["assets"])


@pytest.mark.parametrize("block", cases(PARAMS))
def test_params_example_loads_and_margins_the_examples(block: Block, tmp_path: Path) -> None:
    params = solvent.load_params(write(block, tmp_path, "params.json"))
    portfolio = preceding(PORTFOLIOS, block)
    book = solvent.load_portfolio(write(portfolio, tmp_path, "portfolio.json"))
    market = solvent.load_market(write(market_for(portfolio), tmp_path, "market.json"))
    result = solvent.compute_margin(book, market, params)
    assert result.scenario_method == params.scenarios.method


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON as {"accounts[0].im": 1.5, ...}."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, list):
        return {k: v for n, item in enumerate(value) for k, v in flatten(item, f"{prefix}[{n}]").items()}
    return {prefix: value}


@pytest.mark.parametrize("block", cases(MARGINS))
def test_margin_example_is_the_actual_result(block: Block, tmp_path: Path) -> None:
    portfolio = preceding(PORTFOLIOS, block)
    market_block = market_for(portfolio)
    book = solvent.load_portfolio(write(portfolio, tmp_path, "portfolio.json"))
    market = solvent.load_market(write(market_block, tmp_path, "market.json"))
    actual = flatten(result_document(solvent.compute_margin(book, market), market.time.isoformat()))
    documented = flatten(json.loads(block.text))
    assert documented.keys() == actual.keys()
    numbers = {k for k, v in actual.items() if isinstance(v, float)}
    assert {k: documented[k] for k in numbers} == pytest.approx({k: actual[k] for k in numbers}, rel=1e-9, abs=1e-12)
    assert {k: v for k, v in documented.items() if k not in numbers} == {
        k: v for k, v in actual.items() if k not in numbers
    }


@pytest.mark.parametrize("block", cases(all_blocks("csv", [FORMATS])))
def test_history_example_reads(block: Block, tmp_path: Path) -> None:
    history = solvent.read_history(write(block, tmp_path, "history.csv"))
    assert history.timestamps.size >= 2 and history.assets


# ------------------------------------------------------------------------------------ (c) the README tour

INPUT_OPTIONS = ("--portfolio", "--market", "--params", "--history", "--accounts", "--feed", "--state-in")
OUTPUT_OPTIONS = ("--out", "--events", "--summary", "--state-out")


@dataclass(frozen=True)
class Command:
    """One `solvent ...` line of a README shell block."""

    block: Block
    line: int
    args: tuple[str, ...]  # after `solvent`, redirection removed
    stdout_to: str | None

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"

    def option_values(self, options: tuple[str, ...]) -> list[str]:
        return [self.args[i + 1] for i, arg in enumerate(self.args[:-1]) if arg in options]

    def outputs(self) -> list[str]:
        return self.option_values(OUTPUT_OPTIONS) + ([self.stdout_to] if self.stdout_to else [])


def tour_commands() -> list[Command]:
    commands = []
    for block in all_blocks("sh", [ROOT / "README.md"]):
        for offset, raw in enumerate(block.text.splitlines(), start=1):
            words = shlex.split(raw.removeprefix("$ "), comments=True)
            if not words or words[0] != "solvent":
                continue  # `make`, `source`, example output
            stdout_to = None
            if ">" in words:
                at = words.index(">")
                stdout_to, words = words[at + 1], words[:at]
            commands.append(Command(block, block.line + offset, tuple(words[1:]), stdout_to))
    return commands


def why_not_runnable(command: Command, earlier: list[Command]) -> str | None:
    """None if the command uses only examples/ files and outputs of earlier commands of its block."""
    if command.args[:1] == ("demo",):
        return "the demo builds a 100,000-account venue; tests/test_demo.py covers it"
    if BAD_PORTFOLIO in command.args:
        return "the README's bad-input example: test_the_readme_bad_input_example runs it and compares its error line"
    made = {path for c in earlier for path in c.outputs()}
    for path in command.option_values(INPUT_OPTIONS):
        inside_made = any(path.startswith(folder.rstrip("/") + "/") for folder in made)  # a file in an --out folder
        if path not in made and not inside_made and not (path.startswith("examples/") and (ROOT / path).is_file()):
            return f"needs {path}, which neither examples/ nor an earlier tour command provides"
    return None


BAD_PORTFOLIO = "bad.json"


def test_the_readme_bad_input_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's bad-input example, on the examples' portfolio with the instrument it names spoilt: exit 2 and
    exactly the error line the README shows under the command."""
    command = next(c for c in tour_commands() if BAD_PORTFOLIO in c.args)
    lines = command.block.text.splitlines()
    shown = lines[command.line - command.block.line]  # the line after the command
    where, instrument = re.fullmatch(r"error: bad\.json: (\S+): unknown instrument '(.+)'", shown).groups()  # type: ignore[union-attr]
    account, position = map(int, re.fullmatch(r"accounts\[(\d+)\]\.positions\[(\d+)\]\.instrument", where).groups())  # type: ignore[union-attr]
    document = json.loads((ROOT / "examples" / "portfolio.json").read_text(encoding="utf-8"))
    document["accounts"][account]["positions"][position]["instrument"] = instrument
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / BAD_PORTFOLIO).write_text(json.dumps(document), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, list(command.args))
    assert (result.exit_code, result.output.strip()) == (2, shown)


def tour_cases() -> list[Any]:
    out = []
    commands = tour_commands()
    for n, command in enumerate(commands):
        earlier = [c for c in commands[:n] if c.block == command.block]
        reason = why_not_runnable(command, earlier)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(command, earlier, id=command.name, marks=marks))
    return out


def run(command: Command) -> int:
    """Run one tour command; it must exit 0 and write what it says it writes. Returns the exit code."""
    result = CliRunner().invoke(main, list(command.args), catch_exceptions=False)
    assert result.exit_code == 0, f"solvent {' '.join(command.args)}: {result.output}"
    if command.stdout_to:
        Path(command.stdout_to).write_text(result.stdout, encoding="utf-8")
    for path in command.outputs():
        assert Path(path).exists(), f"solvent {' '.join(command.args)} did not write {path}"
    return result.exit_code


def test_tour_has_commands() -> None:
    assert sum(why_not_runnable(c, []) is None for c in tour_commands()) >= 3


@pytest.mark.parametrize(("command", "earlier"), tour_cases())
def test_tour_command_runs(
    command: Command, earlier: list[Command], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for setup in earlier:
        if why_not_runnable(setup, [c for c in earlier if c.line < setup.line]) is None:
            run(setup)
    assert run(command) == 0
