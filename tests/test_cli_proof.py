"""`solvent prove` and `solvent verify` end to end: outputs valid against their schemas, the same root from the
book or from either margin output, a proof verifying and a tampered one refused (exit 1), bad input exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from solvent.cli import main
from solvent.proof.files import read_margin_output
from solvent.proof.prove import prove_figures
from solvent.proof.tree import PARALLEL_ROWS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PORTFOLIO, MARKET = str(EXAMPLES / "portfolio.json"), str(EXAMPLES / "market.json")
SECRET_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def valid(name: str, document: object) -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)


@pytest.fixture()
def proved(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.hex"
    secret.write_text(SECRET_HEX + "\n")
    out = tmp_path / "proof"
    result = run(
        "prove",
        "--portfolio",
        PORTFOLIO,
        "--market",
        MARKET,
        "--secret",
        str(secret),
        "--insurance-fund",
        "1000",
        "--proofs",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "Cover 2:" in result.output
    return out


def test_outputs_match_their_schemas(proved: Path) -> None:
    valid("solvent.solvency-1", json.loads((proved / "statement.json").read_text()))
    lines = (proved / "proofs.ndjson").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        valid("solvent.proof-1", json.loads(line))


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_margin_output_gives_the_books_root(proved: Path, tmp_path: Path, fmt: str) -> None:
    margin = tmp_path / f"margin.{fmt}"
    assert (
        run("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", fmt, "--out", str(margin)).exit_code
        == 0
    )
    result = run(
        "prove", "--margin", str(margin), "--secret", str(tmp_path / "secret.hex"), "--out", str(tmp_path / "m")
    )
    assert result.exit_code == 0, result.output
    from_margin = json.loads((tmp_path / "m" / "statement.json").read_text())
    from_book = json.loads((proved / "statement.json").read_text())
    assert (from_margin["root"], from_margin["totals"]) == (from_book["root"], from_book["totals"])
    assert from_margin["cover2"] is None  # the stress needs the positions


def test_a_proof_verifies_against_the_statement_and_the_root(proved: Path) -> None:
    proofs, statement = str(proved / "proofs.ndjson"), str(proved / "statement.json")
    result = run("verify", "--proof", proofs, "--account", "dave", "--statement", statement)
    assert result.exit_code == 0, result.output
    assert "OK: account 'dave'" in result.output
    root = json.loads(Path(statement).read_text())["root"]
    assert run("verify", "--proof", proofs, "--account", "carol", "--root", root).exit_code == 0


def test_a_tampered_proof_is_refused_with_exit_1(proved: Path, tmp_path: Path) -> None:
    line = next(json.loads(x) for x in (proved / "proofs.ndjson").read_text().splitlines() if '"alice"' in x)
    line["amounts"]["im"] -= 1
    line["amounts"]["shortfall"] = max(line["amounts"]["mm"] - line["amounts"]["equity"], 0)
    tampered = tmp_path / "alice.json"
    tampered.write_text(json.dumps(line))
    result = run("verify", "--proof", str(tampered), "--statement", str(proved / "statement.json"))
    assert result.exit_code == 1
    assert result.output.startswith("error: the proof does not verify: the path leads to root")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--proof", "{proofs}", "--root", "abc"], "--root: must be 64 hex digits"),
        (["verify", "--proof", "{proofs}", "--statement", "{statement}"], "6 proofs: name the account"),
        (
            ["verify", "--proof", "{proofs}", "--account", "zed", "--statement", "{statement}"],
            "no proof for account 'zed'",
        ),
        (["prove", "--margin", "{statement}", "--out", "{tmp}/x"], "expected 'solvent.margin/1'"),
        (
            ["prove", "--portfolio", PORTFOLIO, "--market", MARKET, "--secret", "{statement}", "--out", "{tmp}/x"],
            "the secret must be 32 to 128 hex digits",
        ),
        (
            ["prove", "--portfolio", PORTFOLIO, "--market", MARKET, "--proofs", "--account", "zed", "--out", "{tmp}/x"],
            "--account: unknown account 'zed'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(proved: Path, tmp_path: Path, args: list[str], message: str) -> None:
    names = {"proofs": str(proved / "proofs.ndjson"), "statement": str(proved / "statement.json"), "tmp": str(tmp_path)}
    result = run(*[a.format(**names) for a in args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in result.output
    assert result.output.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_malformed_proof_names_its_field(proved: Path, tmp_path: Path) -> None:
    line = json.loads((proved / "proofs.ndjson").read_text().splitlines()[0])
    line["path"][0]["hash"] = "zz"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(line))
    result = run("verify", "--proof", str(bad), "--statement", str(proved / "statement.json"))
    assert result.exit_code == 2
    assert "path[0].hash" in result.output


def test_python_m_solvent_prove_with_worker_processes(tmp_path: Path) -> None:
    """A real `python -m solvent prove` large enough to hash in two processes (their workers import the main
    module, which must not run the command again) gives the root of one process."""
    n = PARALLEL_ROWS + 3
    rng = np.random.default_rng(2)
    margin = tmp_path / "margin.parquet"
    table = pa.table(
        {
            "account": [f"a{k}" for k in range(n)],
            "im": rng.uniform(0, 10, n),
            "mm": rng.uniform(0, 5, n),
            "equity": rng.normal(5, 10, n),
        }
    )
    pq.write_table(table.replace_schema_metadata({b"solvent.schema": b"solvent.margin/1"}), margin)
    secret = tmp_path / "secret.hex"
    secret.write_text(SECRET_HEX)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "solvent",
            "prove",
            "--margin",
            str(margin),
            "--secret",
            str(secret),
            "--processes",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    _, alone = prove_figures(read_margin_output(margin), bytes.fromhex(SECRET_HEX), 0.0, processes=1)
    assert json.loads((tmp_path / "out" / "statement.json").read_text())["root"] == alone.root


def formats_example(schema: str) -> dict[str, object]:
    """docs/formats.md's JSON example of `schema`."""
    text = (ROOT / "docs" / "formats.md").read_text()
    blocks = [b.split("\n```", 1)[0] for b in text.split("```json\n")[1:]]
    found = [json.loads(b) for b in blocks if f'"schema": "{schema}"' in b]
    assert len(found) == 1, schema
    document: dict[str, object] = found[0]
    return document


def test_the_formats_examples_are_the_actual_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement and the proof as docs/formats.md shows them: the provenance's inputs too (paths as given, from
    the repository's root), but not its engine version and parameter digest, which move with every release and
    every new parameter (tests/test_provenance.py checks those against their twins)."""
    out = tmp_path / "proof"
    monkeypatch.chdir(ROOT)
    result = run(
        "prove",
        "--portfolio",
        "examples/portfolio.json",
        "--market",
        "examples/market.json",
        "--insurance-fund",
        "5000",
        "--secret",
        "examples/secret.hex",
        "--proofs",
        "--account",
        "alice",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    statement, proof = formats_example("solvent.solvency/1"), formats_example("solvent.proof/1")
    actual = json.loads((out / "statement.json").read_text())
    shown, made = statement["provenance"], actual.pop("provenance")
    assert isinstance(shown, dict) and shown["inputs"] == made["inputs"]
    assert {k: v for k, v in statement.items() if k != "provenance"} == actual
    assert proof == json.loads((out / "proofs.ndjson").read_text())
    (tmp_path / "statement.json").write_text(json.dumps(statement))
    (tmp_path / "alice.json").write_text(json.dumps(proof))
    verified = run("verify", "--proof", str(tmp_path / "alice.json"), "--statement", str(tmp_path / "statement.json"))
    assert verified.exit_code == 0, verified.output
