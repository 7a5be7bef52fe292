"""Every output validates against its generated JSON Schema, and the output schema is stable (issue 12 item 18).

Real CLI outputs (in-process, click's CliRunner) are validated with the jsonschema package against the schemas in
docs/schemas (generated from formats/outputs.py and kept fresh by tests/test_schemas.py): margin (with and without
oracle sources), explain, baseline, the stream summary and the state's meta, the backtest and stress reports.
Every IM term of IM_TERMS is always present (on main the `oracle` term was absent when the market had one price
per asset), and each asset reports the price it was margined at, its uncertainty, its oracle status and the
sources rejected with the reason.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from solvent.cli import main
from solvent.engine.results import complete_terms
from solvent.formats.outputs import ASSET_TERMS, IM_TERMS, Mark
from solvent.formats.schemas import MarketSnapshot, Portfolio
from solvent.jsonschemas import json_schema
from solvent.market.oracle import aggregate
from solvent.market.state import build_market_state
from solvent.params import MarginParams

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "schemas"
EXAMPLES = ROOT / "examples"
PORTFOLIO, MARKET = str(EXAMPLES / "portfolio.json"), str(EXAMPLES / "market.json")
QUOTES = [98.0, 98.0, 100.0, 101.0, 101.5]  # issue 12 item 3's quotes, as multiples of 1,000 USD below


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(name: str, document: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(document)]
    assert errors == [], errors[:5]


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sourced_market(tmp_path: Path, outlier: float = 1_960.0) -> Path:
    """The example market with BTC priced from five sources, one of them (x20) an outlier."""
    market = json.loads(Path(MARKET).read_text())
    time = msgspec.json.decode(json.dumps(market).encode(), type=MarketSnapshot).time
    stamp = (time - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    quotes = [q * 1_000.0 for q in QUOTES[1:]] + [outlier * 1_000.0]
    market["assets"]["BTC"]["sources"] = [
        {"name": f"src-{k}", "price": p, "timestamp": stamp} for k, p in enumerate(quotes)
    ]
    path = tmp_path / "market.json"
    path.write_text(json.dumps(market))
    return path


# ------------------------------------------------------------------------------------------- schemas


def test_margin_json_validates_and_reports_every_term(tmp_path: Path) -> None:
    document = json.loads(cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", "json"))
    assert_valid("solvent.margin-1", document)
    for account in document["accounts"]:
        assert list(account["terms"]) == list(IM_TERMS)  # the oracle term included, 0: one price per asset
        assert account["terms"]["oracle"] == 0.0
        assert list(account["term_by_asset"]) == list(ASSET_TERMS)
    assert document["marks"]["BTC"] == {
        "price": 95_000.0,
        "uncertainty": 0.0,
        "oracle_status": "DIRECT",
        "rejected_sources": [],
    }


def test_margin_json_with_oracle_sources_names_the_rejected_source(tmp_path: Path) -> None:
    market = sourced_market(tmp_path)
    document = json.loads(cli("margin", "--portfolio", PORTFOLIO, "--market", str(market), "--format", "json"))
    assert_valid("solvent.margin-1", document)
    mark = document["marks"]["BTC"]
    assert mark["oracle_status"] == "OK"
    assert mark["rejected_sources"] == [{"source": "src-4", "reason": "OUTLIER"}]
    # The price and uncertainty reported are the aggregate's, computed here from the quotes directly.
    snapshot = msgspec.json.decode(market.read_bytes(), type=MarketSnapshot)
    quote = snapshot.assets["BTC"]
    params = MarginParams()
    portfolio = msgspec.json.decode(Path(PORTFOLIO).read_bytes(), type=Portfolio)
    state = build_market_state(portfolio.instruments, snapshot, params)
    result = aggregate(
        np.array([[s.price for s in quote.sources]]),
        np.zeros((1, len(quote.sources))),
        np.array([[s.timestamp.timestamp() for s in quote.sources]]),
        snapshot.time.timestamp(),
        np.array([quote.price]),
        params.oracle,
        vol=np.array([state.vol[state.asset_index["BTC"]]]),  # the effective vol the engine margins at
        days_per_year=params.days_per_year,
    )
    assert mark["price"] == float(result.price[0])
    assert mark["uncertainty"] == float(result.uncertainty[0])
    for account in document["accounts"]:
        assert list(account["terms"]) == list(IM_TERMS)


def test_parquet_carries_the_marks_and_every_term(tmp_path: Path) -> None:
    out = tmp_path / "margin.parquet"
    cli(
        "margin",
        "--portfolio",
        PORTFOLIO,
        "--market",
        str(sourced_market(tmp_path)),
        "--format",
        "parquet",
        "--out",
        str(out),
    )
    table = pq.read_table(out)
    marks = json.loads(table.schema.metadata[b"solvent.marks"])
    schema = json_schema(dict[str, Mark])
    jsonschema.Draft202012Validator(schema).validate(marks)
    assert marks["BTC"]["rejected_sources"] == [{"source": "src-4", "reason": "OUTLIER"}]
    assert [f"im_{t}" for t in IM_TERMS] == [c for c in table.column_names if c.startswith("im_")]


def test_explain_json_validates_and_carries_the_marks(tmp_path: Path) -> None:
    market = sourced_market(tmp_path)
    text = cli("margin", "--portfolio", PORTFOLIO, "--market", str(market), "--explain", "carol", "--format", "json")
    document = json.loads(text)
    assert_valid("solvent.explain-1", document)
    assert list(document["terms"]) == list(IM_TERMS)
    assert document["marks"]["BTC"]["rejected_sources"] == [{"source": "src-4", "reason": "OUTLIER"}]
    table = cli("margin", "--portfolio", PORTFOLIO, "--market", str(market), "--explain", "carol")
    assert "src-4 (OUTLIER)" in table


@pytest.mark.parametrize("rule", ["static", "dydx", "deribit"])
def test_baseline_json_validates(rule: str) -> None:
    document = json.loads(
        cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--baseline", rule, "--format", "json")
    )
    assert_valid("solvent.baseline-1", document)


def test_stream_summary_and_state_meta_validate(tmp_path: Path) -> None:
    feed = tmp_path / "feed.ndjson"
    feed.write_text(
        '{"type": "quote", "seq": 1, "time": "2026-11-25T00:00:01Z", "asset": "BTC", "price": 94850.5}\n'
        '{"type": "fill", "seq": 2, "time": "2026-11-25T00:00:02Z", "account": "bob", "instrument": "BTC-PERP",'
        ' "quantity": 0.25, "price": 94860}\n'
    )
    state, summary = tmp_path / "state.npz", tmp_path / "summary.json"
    cli(
        "stream",
        "--accounts",
        PORTFOLIO,
        "--market",
        MARKET,
        "--feed",
        str(feed),
        "--events",
        str(tmp_path / "events.ndjson"),
        "--summary",
        str(summary),
        "--state-out",
        str(state),
    )
    assert_valid("solvent.stream-summary-1", json.loads(summary.read_text()))
    with zipfile.ZipFile(state) as archive:
        meta = np.load(io.BytesIO(archive.read("meta.npy")), allow_pickle=False)
    assert_valid("solvent.state-1", json.loads(str(meta)))


@pytest.fixture(scope="module")
def crash_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash")
    cli("crash", "--out", str(folder), "--n-accounts", "50")
    return folder


def test_backtest_report_validates(crash_case: Path, tmp_path: Path) -> None:
    history = str(crash_case / "history.csv")
    cli("backtest", "--history", history, "--assets", "BTC", "--out", str(tmp_path))
    assert_valid("solvent.backtest-report-1", json.loads((tmp_path / "summary.json").read_text()))


def test_portfolio_backtest_validates(crash_case: Path, tmp_path: Path) -> None:
    history = str(crash_case / "history.csv")
    examples = Path(__file__).resolve().parents[1] / "examples"
    cli(
        "backtest",
        "--history",
        history,
        "--assets",
        "BTC",
        "--models",
        "static,multi",
        "--from",
        "2026-01-01",
        "--portfolio",
        str(examples / "portfolio.json"),
        "--market",
        str(examples / "market.json"),
        "--out",
        str(tmp_path),
    )
    assert_valid("solvent.backtest-report-1", json.loads((tmp_path / "summary.json").read_text()))
    assert_valid("solvent.portfolio-backtest-1", json.loads((tmp_path / "portfolio.json").read_text()))


def test_stress_report_validates(crash_case: Path, tmp_path: Path) -> None:
    history = str(crash_case / "history.csv")
    cli(
        "stress",
        "--episode",
        "2020-03-12",
        "--compare",
        "static,multi",
        "--step",
        "600",
        "--accounts",
        "50",
        "--history",
        history,
        "--out",
        str(tmp_path),
    )
    assert_valid("solvent.stress-report-1", json.loads((tmp_path / "summary.json").read_text()))


# ---------------------------------------------------------------------------------- the declared terms


def test_a_term_that_is_not_declared_is_refused() -> None:
    """The rule is over the declared tuple: a new factor must join IM_TERMS (and so the schema) to be reported."""
    with pytest.raises(ValueError, match="not declared in IM_TERMS"):
        complete_terms({"market_risk": np.zeros(1), "surprise": np.zeros(1)}, 1)
    filled = complete_terms({"market_risk": np.ones(2)}, 2)
    assert list(filled) == list(IM_TERMS) and not np.any(filled["oracle"])


def test_an_output_with_a_key_its_schema_lacks_fails() -> None:
    document = json.loads(cli("margin", "--portfolio", PORTFOLIO, "--market", MARKET, "--format", "json"))
    document["accounts"][0]["terms"]["surprise"] = 1.0
    assert not validator("solvent.margin-1").is_valid(document)
    del document["accounts"][0]["terms"]["surprise"]
    del document["accounts"][0]["terms"]["oracle"]
    assert not validator("solvent.margin-1").is_valid(document)
