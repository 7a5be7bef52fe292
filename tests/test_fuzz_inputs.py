"""Seeded mutation fuzzing of every input the CLI reads (issue 12 item 14): never a traceback.

Mutants of the example portfolio and market, of the default parameters, of a small feed and of a saved stream
state: numbers replaced by extremes (1e308, 5e-324, -1, +-10,000, ...), JSON nested 1,000 deep, invalid UTF-8
inside a string, random byte flips, truncation, an array of the state dropped or reshaped. Each run goes through
the CLI in-process (click's CliRunner) and must end with exit 0 (the mutant was still valid input) or 2 (one line
naming the file, the record and the field), never an exception. On main 34-43 in 600 such mutants ended in a
traceback.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from solvent.cli import main
from solvent.params import MarginParams

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXTREMES = [1e308, -1e308, 5e-324, -5e-324, 0, -1, 1e300, 10_000, -10_000, 1e16, 2**63, -(2**63) - 1, 1e-300]
FEED = [
    {"type": "quote", "seq": 1, "time": "2026-11-25T00:00:01Z", "asset": "BTC", "price": 94850.5},
    {
        "type": "quote",
        "seq": 2,
        "time": "2026-11-25T00:00:01.250Z",
        "asset": "ETH",
        "price": 3391.2,
        "source": "pyth",
        "confidence": 1.1,
        "timestamp": "2026-11-25T00:00:01.100Z",
    },
    {"type": "deposit", "seq": 3, "time": "2026-11-25T00:00:02Z", "account": "bob", "asset": "USDC", "amount": 5000},
    {
        "type": "fill",
        "seq": 4,
        "time": "2026-11-25T00:00:02.500Z",
        "account": "bob",
        "instrument": "BTC-PERP",
        "quantity": 0.25,
        "price": 94860,
        "fee": 11.86,
    },
    {"type": "withdrawal", "seq": 5, "time": "2026-11-25T00:00:03Z", "account": "dave", "asset": "USDC", "amount": 10},
    {"type": "depth", "seq": 7, "time": "2026-11-25T00:00:04Z", "asset": "BTC", "scale": 0.5},
    {"type": "quote", "seq": 8, "time": "2026-11-25T00:00:05Z", "asset": "BTC", "price": 76000},
    {"type": "vol", "seq": 9, "time": "2026-11-25T00:01:00Z", "asset": "BTC", "vol": 0.75},
    {
        "type": "params",
        "seq": 10,
        "time": "2026-11-25T00:01:00Z",
        "params": {"schema": "solvent.params/1", "confidence": 0.99, "mpor_days": 2.0},
    },
]


def run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=True)


def problem(result: Result, what: str) -> str | None:
    """None if the run ended cleanly, else what went wrong (see assert_clean)."""
    try:
        assert_clean(result, what)
    except AssertionError as error:
        return str(error).splitlines()[0]
    return None


def assert_none(problems: list[str | None]) -> None:
    found = [p for p in problems if p is not None]
    assert not found, f"{len(found)} of {len(problems)} mutants crashed:\n" + "\n".join(found)


def assert_clean(result: Result, what: str) -> None:
    """Exit 0 or 2, and never an exception (click reports one as exit 1 with result.exception set)."""
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    detail = f"{what}: exit {result.exit_code}, {type(result.exception).__name__}: {result.exception}"
    assert not crashed, detail + f"\n{result.output[-2000:]}"
    assert result.exit_code in (0, 2), detail + f"\n{result.output[-2000:]}"
    if result.exit_code == 2:
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert errors or "Usage:" in result.output, detail + f"\n{result.output[-2000:]}"
    assert "Traceback" not in result.output, detail


# --- mutations -----------------------------------------------------------------------------------------------


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    out: list[tuple[tuple[Any, ...], Any]] = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            out += _leaves(value, (*path, k))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def mutate_json(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One mutant of a JSON document (or of an NDJSON line) and what was done to it."""
    doc = json.loads(text)
    kind = rng.choice(["number", "number", "number", "nest", "utf8", "flip", "truncate", "type"])
    leaves = _leaves(doc)
    if kind == "number":
        numbers = [(p, v) for p, v in leaves if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers:
            path, _ = rng.choice(numbers)
            value = rng.choice(EXTREMES)
            return json.dumps(_set(doc, path, value)).encode(), f"{path} = {value!r}"
        kind = "flip"
    if kind == "type":
        path, _ = rng.choice(leaves[1:] or leaves)
        value = rng.choice([None, "x", [], {}, True, [1, 2], {"a": 1}])
        return json.dumps(_set(doc, path, value)).encode(), f"{path} = {value!r}"
    if kind == "nest":  # written as text: json.dumps itself recurses too deep
        path, _ = rng.choice(leaves)
        opening, closing = ("[" * 1_000, "]" * 1_000) if rng.random() < 0.5 else ('{"a":' * 1_000, "}" * 1_000)
        raw = json.dumps(_set(doc, path, "\u2603NEST\u2603"))
        return raw.replace('"\\u2603NEST\\u2603"', opening + "1" + closing).encode(), f"{path} nested 1000 deep"
    if kind == "utf8":
        strings = [(p, v) for p, v in leaves if isinstance(v, str)]
        if strings:
            path, value = rng.choice(strings)
            marker = "\u2603MARK\u2603"
            raw = json.dumps(_set(doc, path, value + marker), ensure_ascii=False).encode()
            bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
            return raw.replace(marker.encode(), bad), f"{path}: invalid UTF-8"
        kind = "flip"
    if kind == "truncate":
        return text[: rng.randrange(len(text))], "truncated"
    return flip(text, rng), "bytes flipped"


def flip(data: bytes, rng: random.Random, n: int | None = None) -> bytes:
    out = bytearray(data)
    for _ in range(n or rng.randint(1, 4)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example inputs, the default parameters, a small feed, and a state saved after replaying it."""
    folder = tmp_path_factory.mktemp("fuzz")
    paths = {
        "portfolio": EXAMPLES / "portfolio.json",
        "market": EXAMPLES / "market.json",
        "params": folder / "params.json",
        "feed": folder / "feed.ndjson",
        "state": folder / "state.npz",
    }
    paths["params"].write_bytes(MarginParams().to_json())
    paths["feed"].write_text("".join(json.dumps(r) + "\n" for r in FEED))
    result = run([*stream_args(paths, folder, feed=paths["feed"]), "--state-out", str(paths["state"])])
    assert result.exit_code == 0, result.output
    return paths


def margin_args(paths: dict[str, Path], **override: Path) -> list[str]:
    files = {**paths, **override}
    margin = ["margin", "--portfolio", str(files["portfolio"]), "--market", str(files["market"]), "--format", "json"]
    return [*margin, "--params", str(files["params"])]


def stream_args(paths: dict[str, Path], out: Path, **override: Path) -> list[str]:
    files = {**paths, **override}
    return [
        "stream",
        "--accounts",
        str(files["portfolio"]),
        "--market",
        str(files["market"]),
        "--feed",
        str(files["feed"]),
        "--events",
        str(out / "events.ndjson"),
        "--summary",
        str(out / "summary.json"),
    ]


def state_args(state: Path, paths: dict[str, Path], out: Path) -> list[str]:
    return [
        "stream",
        "--state-in",
        str(state),
        "--feed",
        str(out / "empty.ndjson"),
        "--events",
        str(out / "events.ndjson"),
        "--summary",
        str(out / "summary.json"),
    ]


# --- the fuzz ------------------------------------------------------------------------------------------------

MUTANTS = {"portfolio": 150, "market": 150, "params": 100}


@pytest.mark.parametrize("role", list(MUTANTS))
def test_mutants_of_the_margin_inputs_never_crash(inputs: dict[str, Path], tmp_path: Path, role: str) -> None:
    rng = random.Random(f"issue12-item14-{role}")
    original = inputs[role].read_bytes()
    problems = []
    for k in range(MUTANTS[role]):
        mutant, what = mutate_json(original, rng)
        path = tmp_path / f"{role}.json"
        path.write_bytes(mutant)
        problems.append(problem(run(margin_args(inputs, **{role: path})), f"{role} mutant {k}: {what}"))
    assert_none(problems)


def test_mutants_of_a_feed_never_crash(inputs: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random("issue12-item14-feed")
    lines = inputs["feed"].read_bytes().splitlines()
    problems = []
    for k in range(150):
        line = rng.randrange(len(lines))
        mutant, what = mutate_json(lines[line], rng)
        path = tmp_path / "feed.ndjson"
        path.write_bytes(b"\n".join([*lines[:line], mutant.replace(b"\n", b" "), *lines[line + 1:]]) + b"\n")
        result = run(stream_args(inputs, tmp_path, feed=path))
        problems.append(problem(result, f"feed mutant {k}, line {line + 1}: {what}"))
    assert_none(problems)


def _state_mutants(data: bytes, rng: random.Random) -> list[tuple[bytes, str]]:
    """Damaged copies of a state file: empty, truncated, bytes flipped, an array dropped or reshaped."""
    out: list[tuple[bytes, str]] = [(b"", "empty"), (b"PK\x03\x04", "a zip header only")]
    out += [(data[: rng.randrange(len(data))], "truncated") for _ in range(8)]
    out += [(flip(data, rng, 1), "one byte flipped") for _ in range(12)]
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    names = sorted(arrays)
    for _ in range(10):
        dropped = rng.choice(names)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v for k, v in arrays.items() if k != dropped})  # type: ignore[arg-type]
        out.append((buffer.getvalue(), f"array {dropped} missing"))
    for _ in range(10):
        name = rng.choice([n for n in names if n != "meta" and arrays[n].size])
        changed = dict(arrays)
        changed[name] = arrays[name][:-1] if arrays[name].ndim else np.array([arrays[name]])
        buffer = io.BytesIO()
        np.savez(buffer, **changed)  # type: ignore[arg-type]
        out.append((buffer.getvalue(), f"array {name} reshaped"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("meta.npy", b"not an array")
    out.append((buffer.getvalue(), "meta not an array"))
    return out


def test_damaged_state_files_never_crash(inputs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_text("")
    rng = random.Random("issue12-item14-state")
    problems = []
    for k, (mutant, what) in enumerate(_state_mutants(inputs["state"].read_bytes(), rng)):
        path = tmp_path / "state.npz"
        path.write_bytes(mutant)
        problems.append(problem(run(state_args(path, inputs, tmp_path)), f"state mutant {k}: {what}"))
    assert_none(problems)


# --- each crash the issue names, on its own ------------------------------------------------------------------


def _edit(path: Path, out: Path, edit: Callable[[Any], Any]) -> Path:
    doc = json.loads(path.read_text())
    edited = edit(doc)
    out.write_text(json.dumps(doc if edited is None else edited))
    return out


def _position(field: str, value: float) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc["accounts"][0]["positions"][0][field] = value

    return edit


def _instrument(field: str, value: float) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc["instruments"][1][field] = value

    return edit


def _asset(field: str, value: float) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc["assets"]["BTC"][field] = value

    return edit


def _rate(value: float) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc["rate"] = value

    return edit


def _seed(value: int) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc["scenarios"]["method"] = "mc"
        doc["scenarios"]["mc"]["seed"] = value

    return edit


NAMED = [
    ("portfolio", _position("quantity", 1e308), "accounts[0].positions[0].quantity"),
    ("portfolio", _position("quantity", -1e308), "accounts[0].positions[0].quantity"),
    ("portfolio", _position("entry_price", 1e308), "accounts[0].positions[0].entry_price"),
    ("portfolio", _position("entry_price", 5e-324), "accounts[0].positions[0].entry_price"),
    ("portfolio", _instrument("contract_size", 1e308), "instruments[1].contract_size"),
    ("portfolio", _instrument("contract_size", 5e-324), "instruments[1].contract_size"),
    ("market", _asset("price", 1e308), "assets.BTC.price"),
    ("market", _asset("price", 5e-324), "assets.BTC.price"),
    ("market", _asset("vol", 1e300), "assets.BTC.vol"),
    ("market", _rate(10_000.0), "rate"),
    ("market", _rate(-10_000.0), "rate"),
    ("params", _seed(-1), "scenarios.mc.seed"),
]


@pytest.mark.parametrize(("role", "edit", "where"), NAMED, ids=[f"{r}:{w}" for r, _, w in NAMED])
def test_each_named_extreme_is_one_line_naming_the_field(
    inputs: dict[str, Path], tmp_path: Path, role: str, edit: Callable[[Any], None], where: str
) -> None:
    """Issue 12 item 14: numbers of 1e308, 5e-324, a rate of +-10,000, an MC seed of -1 crashed on main
    (ValueError in liquidation/predictive.py, ZeroDivisionError and a math domain error in market/state.py)."""
    path = _edit(inputs[role], tmp_path / f"{role}.json", edit)
    result = run(margin_args(inputs, **{role: path}))
    assert_clean(result, where)
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.startswith("error: ")]
    assert line.startswith(f"error: {path}: {where}: "), line


def _deep(doc: Any) -> str:
    return json.dumps(doc).replace('"2026-11-25', "[" * 1_000 + "1" + "]" * 1_000 + ', "x": "2026-11-25', 1)


@pytest.mark.parametrize("role", ["portfolio", "market", "params"])
def test_json_nested_1000_deep_and_invalid_utf8_are_input_errors(
    inputs: dict[str, Path], tmp_path: Path, role: str
) -> None:
    """RecursionError and UnicodeDecodeError on main: now 'not valid JSON (...)' naming the file, exit 2."""
    text = inputs[role].read_text()
    deep = tmp_path / f"deep-{role}.json"
    deep.write_text(text.replace('"schema"', '"deep": ' + "[" * 1_000 + "1" + "]" * 1_000 + ', "schema"', 1))
    bad = tmp_path / f"utf8-{role}.json"
    bad.write_bytes(text.replace('"solvent.', '"\u2603solvent.', 1).encode().replace("\u2603".encode(), b"\xff"))
    for path, message in ((deep, "nested too deeply"), (bad, "a string is not UTF-8")):
        result = run(margin_args(inputs, **{role: path}))
        assert_clean(result, str(path))
        assert result.exit_code == 2 and f"error: {path}: not valid JSON ({message}" in result.output, result.output


FEED_CASES = [
    (6, "price", 1e308, "records[6] (line 7).price"),
    (7, "vol", 1e300, "records[7] (line 8).vol"),
    (3, "quantity", -1e308, "records[3] (line 4).quantity"),
    (5, "scale", 5e-324, "records[5] (line 6).scale"),
]


@pytest.mark.parametrize(("line", "field", "value", "where"), FEED_CASES, ids=[c[3] for c in FEED_CASES])
def test_feed_records_out_of_range_are_input_errors(
    inputs: dict[str, Path], tmp_path: Path, line: int, field: str, value: float, where: str
) -> None:
    records = [dict(r) for r in FEED]
    records[line][field] = value
    feed = tmp_path / "feed.ndjson"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run(stream_args(inputs, tmp_path, feed=feed))
    assert_clean(result, where)
    assert result.exit_code == 2 and f"error: {feed}: {where}: " in result.output, result.output


def _resave(data: bytes, change: Callable[[dict[str, np.ndarray[Any, Any]]], None]) -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


STATE_CASES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty", lambda data: b"", ": file is empty"),
    ("truncated", lambda data: data[: len(data) // 2], ": not a readable solvent.state/1 file (BadZipFile"),
    ("array missing", lambda data: _resave(data, lambda a: a.pop("store.mode")), ": store.mode: array missing"),
    (
        "array reshaped",
        lambda data: _resave(data, lambda a: a.update({"market.price": a["market.price"][:-1]})),
        ": market.price: array of ['<f8', 3], the meta records ['<f8', 4]",
    ),
]


@pytest.mark.parametrize(("what", "damage", "message"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_damaged_state_files_are_input_errors(
    inputs: dict[str, Path], tmp_path: Path, what: str, damage: Callable[[bytes], bytes], message: str
) -> None:
    """Empty ("Aborted!"), truncated (BadZipFile), an array missing (KeyError) on main."""
    (tmp_path / "empty.ndjson").write_text("")
    state = tmp_path / "state.npz"
    state.write_bytes(damage(inputs["state"].read_bytes()))
    result = run(state_args(state, inputs, tmp_path))
    assert_clean(result, what)
    assert result.exit_code == 2 and f"error: {state}{message}" in result.output, result.output


def test_a_byte_flipped_inside_an_array_fails_the_checksum(inputs: dict[str, Path], tmp_path: Path) -> None:
    """An array changed and the zip rewritten (its CRCs right again): only the SHA-256 can tell."""
    (tmp_path / "empty.ndjson").write_text("")
    state = tmp_path / "state.npz"

    def change(arrays: dict[str, np.ndarray[Any, Any]]) -> None:
        arrays["market.price"] = arrays["market.price"] * (1 + 1e-15)

    state.write_bytes(_resave(inputs["state"].read_bytes(), change))
    result = run(state_args(state, inputs, tmp_path))
    assert result.exit_code == 2 and f"error: {state}: checksum: " in result.output, result.output


def test_a_saved_state_still_resumes(inputs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_text("")
    result = run(state_args(inputs["state"], inputs, tmp_path))
    assert result.exit_code == 0, result.output
