"""Provenance in every output (issue 14 item 10): the engine, the parameters' digest and each input's digest.

The digests are checked against independent twins (hashlib over the file's bytes, read whole here; the standard
library's json for the parameters' canonical encoding); the same inputs give byte-identical outputs; one changed
byte of an input or one changed parameter changes its own digest and nothing else; the Parquet metadata
round-trips through pyarrow; and every output a user keeps carries a provenance that `solvent provenance` reads
and `--check` verifies. Commands run in-process through click's CliRunner on examples/ and a small crash case.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from solvent.cli import main
from solvent.errors import InputError
from solvent.formats import provenance as prov
from solvent.formats.provenance import (
    PROVENANCE_KEY,
    Provenance,
    canonical_sha256,
    engine_version,
    file_sha256,
    read_provenance,
)
from solvent.governance.digest import params_sha256
from solvent.params import MarginParams

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PORTFOLIO, MARKET = str(EXAMPLES / "portfolio.json"), str(EXAMPLES / "market.json")
CRIF = str(EXAMPLES / "simm_crif.csv")


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sha256_of(path: str | Path) -> str:
    """The independent twin: hashlib over the whole file, read at once."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def margin_json(portfolio: str, market: str, *extra: str) -> dict[str, object]:
    document = json.loads(cli("margin", "--portfolio", portfolio, "--market", market, "--format", "json", *extra))
    assert isinstance(document, dict)
    return document


# ------------------------------------------------------------------------------------------- the digests


@pytest.mark.parametrize("size", [0, 1, 7, 8, 1_000])
def test_a_file_digest_is_hashlib_over_its_bytes_block_by_block(
    size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of 7 bytes: a file of 0, 1, exactly one, one and a bit, and many blocks."""
    monkeypatch.setattr(prov, "CHUNK_BYTES", 7)
    path = tmp_path / "input.bin"
    path.write_bytes(bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
    assert file_sha256(path) == (sha256_of(path), size)


def test_a_large_file_is_digested_in_1_mib_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two and a half default blocks: every read asks for CHUNK_BYTES at most, and the digest is hashlib's."""
    path = tmp_path / "large.bin"
    path.write_bytes(b"solvent" * (5 * prov.CHUNK_BYTES // 14) + b"!")
    asked: list[int] = []
    real_open = open

    class Recording:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> Recording:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def read(self, n: int = -1) -> bytes:
            asked.append(n)
            return self.handle.read(n)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(prov, "open", lambda p, mode: Recording(real_open(p, mode)), raising=False)
    assert file_sha256(path) == (sha256_of(path), path.stat().st_size)
    assert asked and all(0 < n <= prov.CHUNK_BYTES for n in asked) and len(asked) == 4  # 3 blocks, then the end


def test_the_params_digest_is_the_canonical_json_digest_governance_uses() -> None:
    params = MarginParams()
    compact = json.dumps(msgspec.to_builtins(params), separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_sha256(params) == hashlib.sha256(compact).hexdigest() == params_sha256(params)


def test_an_unreadable_input_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.json"):
        file_sha256(tmp_path / "missing.json")


# --------------------------------------------------------------------------------- determinism and change


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_the_same_inputs_give_byte_identical_outputs(fmt: str, tmp_path: Path) -> None:
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    for out in (first, second):
        cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", fmt, "--out", str(out))
    assert first.read_bytes() == second.read_bytes()
    assert read_provenance(first).inputs["market"].sha256 == sha256_of(MARKET)


def test_one_changed_byte_of_an_input_changes_that_digest_only(tmp_path: Path) -> None:
    market = tmp_path / "market.json"
    shutil.copyfile(MARKET, market)
    before = margin_json(PORTFOLIO, str(market))["provenance"]
    text = market.read_bytes()
    at = text.index(b"95000")
    market.write_bytes(text[:at] + b"95001" + text[at + 5 :])  # one byte: the BTC price's last digit
    after = margin_json(PORTFOLIO, str(market))["provenance"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert after["inputs"]["market"]["sha256"] == sha256_of(market) != before["inputs"]["market"]["sha256"]
    assert after["inputs"]["market"]["bytes"] == before["inputs"]["market"]["bytes"]
    assert after["inputs"]["portfolio"] == before["inputs"]["portfolio"]
    assert (after["engine"], after["params"]) == (before["engine"], before["params"])


def test_one_changed_parameter_changes_the_params_digest_only(tmp_path: Path) -> None:
    """The digest is of the parameters used: a file holding the defaults digests as the built-in defaults do."""
    defaults, changed = tmp_path / "defaults.json", tmp_path / "changed.json"
    defaults.write_bytes(MarginParams().to_json())
    document = json.loads(MarginParams().to_json())
    document["confidence"] = 0.991
    changed.write_text(json.dumps(document))
    builtin = margin_json(PORTFOLIO, MARKET)["provenance"]
    same = margin_json(PORTFOLIO, MARKET, "--params", str(defaults))["provenance"]
    other = margin_json(PORTFOLIO, MARKET, "--params", str(changed))["provenance"]
    assert isinstance(builtin, dict) and isinstance(same, dict) and isinstance(other, dict)
    assert same["params"] == builtin["params"] == {"margin": canonical_sha256(MarginParams())}
    assert other["params"]["margin"] != same["params"]["margin"]
    assert other["inputs"]["params"]["sha256"] == sha256_of(changed)
    assert {k: v for k, v in other["inputs"].items() if k != "params"} == builtin["inputs"]


def test_the_parquet_metadata_round_trips_through_pyarrow(tmp_path: Path) -> None:
    out = tmp_path / "margin.parquet"
    cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", "parquet", "--out", str(out))
    stored = msgspec.json.decode(pq.read_schema(out).metadata[PROVENANCE_KEY], type=Provenance)
    assert msgspec.to_builtins(stored) == margin_json(PORTFOLIO, MARKET)["provenance"]
    assert pq.read_table(out).num_rows == 6  # the figures are still there


# ----------------------------------------------------------------------------------- every kept output


@pytest.fixture(scope="module")
def crash_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash")
    cli("crash", "--out", str(folder), "--n-accounts", "40")
    return folder


def _margin(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    out = tmp / "m.json"
    cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", "json", "--out", str(out))
    return [out], {"portfolio": PORTFOLIO, "market": MARKET}


def _parquet(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    out = tmp / "m.parquet"
    cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", "parquet", "--out", str(out))
    return [out], {"portfolio": PORTFOLIO, "market": MARKET}


def _explain(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    out = tmp / "e.json"
    cli(
        "margin",
        "--portfolio",
        PORTFOLIO,
        "--market",
        MARKET,
        "--explain",
        "bob",
        "--format",
        "json",
        "--out",
        str(out),
    )
    return [out], {"portfolio": PORTFOLIO, "market": MARKET}


def _baseline(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    out = tmp / "b.json"
    cli(
        "margin",
        "--portfolio",
        PORTFOLIO,
        "--market",
        MARKET,
        "--baseline",
        "dydx",
        "--format",
        "json",
        "--out",
        str(out),
    )
    return [out], {"portfolio": PORTFOLIO, "market": MARKET}


def _simm(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    out = tmp / "simm.json"
    cli("simm", CRIF, "--format", "json", "--out", str(out))
    return [out], {"crif[0]": CRIF}


def _prove(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    secret = str(EXAMPLES / "secret.hex")
    cli("prove", "--portfolio", PORTFOLIO, "--market", MARKET, "--secret", secret, "--out", str(tmp / "proof"))
    return [tmp / "proof" / "statement.json"], {"portfolio": PORTFOLIO, "market": MARKET}


def _stream(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    feed = tmp / "feed.ndjson"
    feed.write_text('{"type": "quote", "seq": 1, "time": "2026-11-25T00:00:01Z", "asset": "BTC", "price": 94850.5}\n')
    summary = tmp / "summary.json"
    cli("stream", "--accounts", PORTFOLIO, "--market", MARKET, "--feed", str(feed), "--events", str(tmp / "e.ndjson"))
    shutil.move("summary.json", summary)  # the default --summary, in the test's working directory
    return [summary], {"accounts": PORTFOLIO, "market": MARKET, "feed": str(feed)}


def _ingest(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    feed = tmp / "feed.ndjson"
    feed.write_text('{"type": "quote", "seq": 1, "time": "2026-11-25T00:00:01Z", "asset": "BTC", "price": 94850.5}\n')
    summary = tmp / "summary.json"
    args = ["--accounts", PORTFOLIO, "--market", MARKET, "--feed", str(feed), "--summary", str(summary)]
    cli("ingest", "--store", "memory://", *args)
    return [summary], {"accounts": PORTFOLIO, "market": MARKET, "feed": str(feed)}


def _backtest(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    history = str(case / "history.csv")
    cli("backtest", "--history", history, "--assets", "BTC", "--models", "static,multi", "--out", str(tmp))
    return [tmp / "report.html", tmp / "summary.json", tmp / "dates.parquet"], {"history": history}


def _portfolio_backtest(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    history = str(case / "history.csv")
    args = ["--history", history, "--assets", "BTC", "--models", "static,multi", "--from", "2026-01-01"]
    cli("backtest", *args, "--portfolio", PORTFOLIO, "--market", MARKET, "--out", str(tmp))
    outputs = [tmp / "summary.json", tmp / "portfolio.json", tmp / "portfolio_dates.parquet"]
    return outputs, {"history": history, "portfolio": PORTFOLIO, "market": MARKET}


def _stress(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    params = str(tmp / "params.json")
    Path(params).write_bytes(MarginParams().to_json())
    args = ["--episode", "2020-03-12", "--compare", "static,multi", "--step", "600", "--accounts", "30"]
    cli("stress", *args, "--params", params, "--out", str(tmp))
    return [tmp / "report.html", tmp / "summary.json"], {"params": params}


def _sweep(tmp: Path, case: Path) -> tuple[list[Path], dict[str, str]]:
    args = ["--sweep", "--serial", "--episode", "2024-08-05", "--compare", "static", "--accounts", "20"]
    cli("stress", *args, "--steps", "900", "--leverage", "5", "--apc", "off", "--out", str(tmp))
    return [tmp / "sweep.md", tmp / "sweep.json"], {}


Run = Callable[[Path, Path], tuple[list[Path], dict[str, str]]]
OUTPUTS: dict[str, Run] = {
    "margin json": _margin,
    "margin parquet": _parquet,
    "explain": _explain,
    "baseline": _baseline,
    "simm json": _simm,
    "prove statement": _prove,
    "stream summary": _stream,
    "ingest summary": _ingest,
    "backtest report": _backtest,
    "portfolio backtest": _portfolio_backtest,
    "stress report": _stress,
    "stress sweep": _sweep,
}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_every_kept_output_carries_its_provenance(
    name: str, crash_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outputs, inputs = OUTPUTS[name](tmp_path, crash_case)
    for output in outputs:
        found = read_provenance(output)
        assert found.engine == engine_version()
        assert {role: (item.path, item.sha256) for role, item in found.inputs.items()} == {
            role: (path, sha256_of(path)) for role, path in inputs.items()
        }
        assert found.params  # every command digests the parameters it used
        result = CliRunner().invoke(main, ["provenance", str(output), "--check"])
        assert result.exit_code == 0, result.output


def test_a_report_shows_its_provenance_in_its_header(crash_case: Path, tmp_path: Path) -> None:
    outputs, inputs = _backtest(tmp_path, crash_case)
    page = outputs[0].read_text()
    visible = page[page.index("<body>") :]
    assert "Engine: solvent" in visible and f"SHA-256 {sha256_of(inputs['history'])}" in visible


# ------------------------------------------------------------------------------------------- the reader


def test_check_fails_when_an_input_changed(tmp_path: Path) -> None:
    market, out = tmp_path / "market.json", tmp_path / "margin.json"
    shutil.copyfile(MARKET, market)
    cli("margin", "--portfolio", PORTFOLIO, "--market", str(market), "--format", "json", "--out", str(out))
    printed = cli("provenance", str(out))
    assert f"Input market: {market} (" in printed and sha256_of(market) in printed
    assert json.loads(cli("provenance", str(out), "--json")) == json.loads(out.read_text())["provenance"]
    market.write_text(market.read_text() + " ")
    result = CliRunner().invoke(main, ["provenance", str(out), "--check"])
    assert result.exit_code == 1
    assert f"changed: market: {market}: SHA-256 {sha256_of(market)}" in result.output
    market.unlink()
    result = CliRunner().invoke(main, ["provenance", str(out), "--check"])
    assert result.exit_code == 1 and "changed: market:" in result.output


def test_a_file_without_provenance_is_bad_input() -> None:
    result = CliRunner().invoke(main, ["provenance", MARKET])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {MARKET}: provenance: this document carries no provenance"
