"""`solvent prove` and `solvent verify` end to end: outputs valid against their schemas, the same root from the
book or from either margin output, a proof verifying and a tampered one refused (exit 1), bad input exit 2."""

from __future__ import annotations

import base64
import dataclasses
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

from solvent._numba import SERIAL_BELOW
from solvent.cli import main
from solvent.proof.encoding import decode_proof, encode_proof
from solvent.proof.files import read_margin_output
from solvent.proof.inclusion import InclusionProof
from solvent.proof.prove import prove_figures

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
    valid("solvent.solvency-2", json.loads((proved / "statement.json").read_text()))
    lines = (proved / "proofs.ndjson").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        valid("solvent.proof-3", json.loads(line))


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


def test_a_proof_verifies_against_the_statement(proved: Path) -> None:
    proofs, statement = str(proved / "proofs.ndjson"), str(proved / "statement.json")
    result = run("verify", "--proof", proofs, "--account", "dave", "--statement", statement)
    assert result.exit_code == 0, result.output
    assert "OK: account 'dave'" in result.output


def prove_capped(tmp_path: Path, levels: int) -> Path:
    """The example book proved with a cap of `levels`, every proof written; returns the folder."""
    secret = tmp_path / "secret.hex"
    secret.write_text(SECRET_HEX)
    out = tmp_path / f"cap{levels}"
    args = ["--portfolio", PORTFOLIO, "--market", MARKET, "--secret", str(secret), "--proofs", "--out", str(out)]
    result = run("prove", *args, "--cap-levels", str(levels))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("levels", [0, 1, 2, 3, 9])
def test_every_cap_height_gives_the_same_root_and_proofs_that_verify(tmp_path: Path, levels: int) -> None:
    out = prove_capped(tmp_path, levels)
    statement = json.loads((out / "statement.json").read_text())
    assert statement["depth"] == 3  # six accounts
    assert statement["root"] == json.loads((prove_capped(tmp_path, 0) / "statement.json").read_text())["root"]
    assert statement["cap"]["levels"] == min(levels, 3)
    assert len(statement["cap"]["nodes"]) == min(2**levels, 6)
    for line in (out / "proofs.ndjson").read_text().splitlines():
        proof = decode_proof("x", base64.b64decode(json.loads(line)["proof"]))
        assert len(proof.siblings) == 3 - min(levels, 3)
        account = json.loads(line)["account"]
        args = ["--proof", str(out / "proofs.ndjson"), "--account", account, "--statement", str(out / "statement.json")]
        assert run("verify", *args).exit_code == 0


def test_the_root_alone_verifies_a_full_path_but_not_a_capped_one(tmp_path: Path) -> None:
    full, capped = prove_capped(tmp_path, 0), prove_capped(tmp_path, 2)
    root = json.loads((full / "statement.json").read_text())["root"]
    assert run("verify", "--proof", str(full / "proofs.ndjson"), "--account", "carol", "--root", root).exit_code == 0
    result = run("verify", "--proof", str(capped / "proofs.ndjson"), "--account", "carol", "--root", root)
    assert result.exit_code == 1 and "the proof does not verify" in result.output


def test_an_old_full_path_proof_verifies_against_a_capped_statement(tmp_path: Path) -> None:
    """A solvent.proof/2 document (the body of a path to the root) against a statement with a cap: checked
    against the root alone, as before the cap."""
    full, capped = prove_capped(tmp_path, 0), prove_capped(tmp_path, 2)
    line = json.loads((full / "proofs.ndjson").read_text().splitlines()[0])
    valid("solvent.proof-2", line | {"schema": "solvent.proof/2"})
    old = tmp_path / "old.json"
    old.write_text(json.dumps(line | {"schema": "solvent.proof/2"}))
    assert run("verify", "--proof", str(old), "--statement", str(capped / "statement.json")).exit_code == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda cap: cap["nodes"][1]["sums"].__setitem__(2, cap["nodes"][1]["sums"][2] + 1), "not the published root"),
        (lambda cap: cap["nodes"].reverse(), "not the published root"),
        (lambda cap: cap["nodes"].__setitem__(0, cap["nodes"][1]), "not the published root"),
        (lambda cap: cap.__setitem__("nodes", cap["nodes"][:2]), "a cap of 2 levels has 2 nodes"),
        (lambda cap: cap.__setitem__("levels", 1), "a cap of 1 levels has 4 nodes"),
    ],
)
def test_an_altered_cap_in_the_statement_fails(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    out = prove_capped(tmp_path, 2)
    statement = json.loads((out / "statement.json").read_text())
    edit(statement["cap"])
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(statement))
    result = run("verify", "--proof", str(out / "proofs.ndjson"), "--account", "alice", "--statement", str(forged))
    assert result.exit_code == 1, result.output
    assert message in result.output


def alice(proved: Path) -> InclusionProof:
    """alice's proof, decoded from her line of proofs.ndjson."""
    line = next(json.loads(x) for x in (proved / "proofs.ndjson").read_text().splitlines() if '"alice"' in x)
    return decode_proof(line["account"], base64.b64decode(line["proof"]))


def write_proof(path: Path, proof: InclusionProof) -> str:
    """`proof` as a solvent.proof/3 file; returns its path."""
    body = base64.b64encode(encode_proof(proof)).decode()
    path.write_text(json.dumps({"schema": "solvent.proof/3", "account": proof.account, "proof": body}))
    return str(path)


def test_a_tampered_proof_is_refused_with_exit_1(proved: Path, tmp_path: Path) -> None:
    proof = alice(proved)
    equity, deficit, im, mm, shortfall = proof.amounts
    tampered = dataclasses.replace(proof, amounts=(equity, deficit, im - 1, mm, shortfall))
    result = run(
        "verify",
        "--proof",
        write_proof(tmp_path / "alice.json", tampered),
        "--statement",
        str(proved / "statement.json"),
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: the proof does not verify: the path leads to ")


def test_an_old_solvent_proof_1_file_still_verifies(tmp_path: Path) -> None:
    """solvent.proof/1 (every field in JSON, as `solvent prove` wrote it before /2) is read: the hashes are
    unchanged, so the same proof verifies; a forged amount in it is still refused."""
    proved = prove_capped(tmp_path, 0)
    proof = alice(proved)
    names = ("equity", "deficit", "im", "mm", "shortfall")
    old = {
        "schema": "solvent.proof/1",
        "account": proof.account,
        "salt": proof.salt.hex(),
        "index": proof.index,
        "amounts": dict(zip(names, proof.amounts, strict=True)),
        "status": ("HEALTHY", "BELOW_IM", "LIQUIDATABLE", "BANKRUPT")[proof.status],
        "path": [{"hash": h.hex(), "amounts": list(a)} for h, a in proof.siblings],
    }
    valid("solvent.proof-1", old)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    result = run("verify", "--proof", str(path), "--statement", str(proved / "statement.json"))
    assert result.exit_code == 0, result.output
    old["path"][1]["amounts"][2] += 1  # type: ignore[index]
    path.write_text(json.dumps(old))
    assert run("verify", "--proof", str(path), "--statement", str(proved / "statement.json")).exit_code == 1


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


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda body: body[:-3], "the proof ends after"),
        (lambda body: body + b"\x00", "1 bytes after the last sibling"),
        (lambda body: body[:32] + b"\xff" * 10 + b"\x01" + body[33:], "a varint longer than 10 bytes"),
    ],
)
def test_a_malformed_proof_body_is_exit_2_naming_the_byte(proved: Path, tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    line = json.loads((proved / "proofs.ndjson").read_text().splitlines()[0])
    line["proof"] = base64.b64encode(edit(base64.b64decode(line["proof"]))).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(line))
    result = run("verify", "--proof", str(bad), "--statement", str(proved / "statement.json"))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {bad}: proof: byte ") and message in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        ({"proof": "not base64!"}, "proof"),
        (
            {"schema": "solvent.proof/4"},
            "expected 'solvent.proof/3' (or the older 'solvent.proof/2', 'solvent.proof/1'), got 'solvent.proof/4'",
        ),
        ({"account": 7}, "account"),
    ],
)
def test_a_malformed_proof_names_its_field(proved: Path, tmp_path: Path, edit: dict[str, object], where: str) -> None:
    line = json.loads((proved / "proofs.ndjson").read_text().splitlines()[0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(line | edit))
    result = run("verify", "--proof", str(bad), "--statement", str(proved / "statement.json"))
    assert result.exit_code == 2, result.output
    assert where in result.output and result.output.count("\n") == 1


def test_python_m_solvent_prove_with_two_threads(tmp_path: Path) -> None:
    """A real `python -m solvent prove` large enough to hash in two threads (the compiled kernels, loaded from
    numba's cache in a fresh process, linking OpenSSL by name) gives the root of one thread."""
    n = SERIAL_BELOW + 3
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
        "--cap-levels",
        "1",
        "--proofs",
        "--account",
        "alice",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    statement, proof = formats_example("solvent.solvency/2"), formats_example("solvent.proof/3")
    actual = json.loads((out / "statement.json").read_text())
    shown, made = statement["provenance"], actual.pop("provenance")
    assert isinstance(shown, dict) and shown["inputs"] == made["inputs"]
    assert {k: v for k, v in statement.items() if k != "provenance"} == actual
    assert proof == json.loads((out / "proofs.ndjson").read_text())
    (tmp_path / "statement.json").write_text(json.dumps(statement))
    (tmp_path / "alice.json").write_text(json.dumps(proof))
    verified = run("verify", "--proof", str(tmp_path / "alice.json"), "--statement", str(tmp_path / "statement.json"))
    assert verified.exit_code == 0, verified.output


def test_the_commands_default_cap_is_the_librarys() -> None:
    """`--cap-levels` states its default without importing the library (`solvent prove --help` stays light)."""
    from solvent.cli.proof import prove
    from solvent.proof.cap import DEFAULT_CAP_LEVELS

    option = next(p for p in prove.params if p.name == "cap_levels")
    assert option.default == DEFAULT_CAP_LEVELS
