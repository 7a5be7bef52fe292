"""The JSON Schemas in docs/schemas are what the code generates, and they accept and reject what they should."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import solvent
from solvent.jsonschemas import schema_documents

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "schemas"
EXAMPLES = ROOT / "examples"
PORTFOLIO = "solvent.portfolio-1.schema.json"
MARKET = "solvent.market-1.schema.json"
PARAMS = "solvent.params-1.schema.json"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def test_committed_files_are_exactly_the_generated_set() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(schema_documents())


@pytest.mark.parametrize("name", sorted(schema_documents()))
def test_committed_schema_matches_the_code(name: str) -> None:
    committed = (SCHEMAS / name).read_bytes()
    assert committed == schema_documents()[name], (
        f"docs/schemas/{name} is stale: run `.venv/bin/solvent schema --out docs/schemas`"
    )


@pytest.mark.parametrize(
    ("schema", "document"),
    [
        (PORTFOLIO, "portfolio.json"),
        (MARKET, "market.json"),
    ],
)
def test_examples_validate(schema: str, document: str) -> None:
    assert [e.message for e in validator(schema).iter_errors(example(document))] == []


def test_default_params_validate() -> None:
    assert [e.message for e in validator(PARAMS).iter_errors(json.loads(solvent.MarginParams().to_json()))] == []


def _portfolio(edit: Any) -> dict[str, Any]:
    document = copy.deepcopy(example("portfolio.json"))
    edit(document)
    return document


def _market(edit: Any) -> dict[str, Any]:
    document = copy.deepcopy(example("market.json"))
    edit(document)
    return document


def _params(edit: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(solvent.MarginParams().to_json())
    edit(document)
    return document


INVALID = [
    ("portfolio-no-schema", PORTFOLIO, _portfolio(lambda d: d.pop("schema"))),
    ("portfolio-other-version", PORTFOLIO, _portfolio(lambda d: d.update(schema="solvent.portfolio/2"))),
    ("portfolio-unknown-kind", PORTFOLIO, _portfolio(lambda d: d["instruments"][0].update(kind="swap"))),
    ("portfolio-unknown-field", PORTFOLIO, _portfolio(lambda d: d["accounts"][0].update(leverage=5))),
    ("portfolio-quantity-text", PORTFOLIO, _portfolio(lambda d: d["accounts"][0]["positions"][0].update(quantity="2"))),
    ("portfolio-zero-strike", PORTFOLIO, _portfolio(lambda d: d["instruments"][4].update(strike=0))),
    ("portfolio-bad-mode", PORTFOLIO, _portfolio(lambda d: d["accounts"][0].update(mode="portfolio"))),
    ("portfolio-empty-id", PORTFOLIO, _portfolio(lambda d: d["accounts"][0].update(id=""))),
    ("market-negative-price", MARKET, _market(lambda d: d["assets"]["BTC"].update(price=-1))),
    ("market-missing-price", MARKET, _market(lambda d: d["assets"]["BTC"].pop("price"))),
    ("market-negative-vol", MARKET, _market(lambda d: d["assets"]["ETH"].update(vol=-0.1))),
    ("market-no-time", MARKET, _market(lambda d: d.pop("time"))),
    ("market-zero-option-vol", MARKET, _market(lambda d: d["option_vols"].update({"ETH-26DEC26-3500-C": 0}))),
    ("params-confidence-1", PARAMS, _params(lambda d: d.update(confidence=1.0))),
    ("params-unknown-measure", PARAMS, _params(lambda d: d.update(measure="cvar"))),
    ("params-unknown-method", PARAMS, _params(lambda d: d["scenarios"].update(method="span"))),
    ("params-misspelt-field", PARAMS, _params(lambda d: d["volatility"].update(ewma_lamda=0.97))),
]
LOADERS = {PORTFOLIO: solvent.load_portfolio, MARKET: solvent.load_market, PARAMS: solvent.load_params}


@pytest.mark.parametrize(("schema", "document"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_document_fails_the_schema(schema: str, document: dict[str, Any]) -> None:
    assert not validator(schema).is_valid(document)


@pytest.mark.parametrize(("schema", "document"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_document_fails_the_reader_too(schema: str, document: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "document.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(solvent.InputError, match=r"^.*document\.json: "):
        LOADERS[schema](path)


# Rules that span fields or files: the schema cannot express them (docs/formats.md says so), the reader enforces them.
READER_ONLY = [
    ("option-without-strike", PORTFOLIO, _portfolio(lambda d: d["instruments"][4].pop("strike"))),
    ("expiry-without-zone", PORTFOLIO, _portfolio(lambda d: d["instruments"][3].update(expiry="2026-12-26T08:00:00"))),
    ("unknown-parent", PORTFOLIO, _portfolio(lambda d: d["accounts"][1].update(parent="nobody"))),
    (
        "option-with-entry-price",
        PORTFOLIO,
        _portfolio(lambda d: d["accounts"][3]["positions"][0].update(entry_price=1)),
    ),
    ("market-time-without-zone", MARKET, _market(lambda d: d.update(time="2026-11-25T00:00:00"))),
]


@pytest.mark.parametrize(
    ("schema", "document"), [case[1:] for case in READER_ONLY], ids=[case[0] for case in READER_ONLY]
)
def test_cross_field_rules_are_the_readers_job(schema: str, document: dict[str, Any], tmp_path: Path) -> None:
    assert validator(schema).is_valid(document)
    path = tmp_path / "document.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(solvent.InputError):
        LOADERS[schema](path)
