"""A venue's own rule parameters: `solvent.baseline-params/1` files, `--baseline-params`, `baselines=`."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

import solvent
from solvent.api import baseline_margin_for
from solvent.baselines import BASELINE_PARAMS_SCHEMA, BaselineParams, StaticFractions, StaticParams
from solvent.cli import main
from solvent.convert.inputs import load_baseline_params
from solvent.demo.run import DEMO_SEED
from solvent.lab.cascade import CascadeConfig
from solvent.lab.episodes import load_crashes
from solvent.lab.margin_backtest import run_backtest
from solvent.lab.stress import run_episode, venue_population
from solvent.market.history import write_history
from solvent.market.synthetic import synthetic_history
from solvent.params import MarginParams
from solvent.stream.engine import StreamEngine

ROOT = Path(__file__).resolve().parents[1]
HISTORY = synthetic_history(420, seed=11)
HALF = BaselineParams(
    static=StaticParams(default=StaticFractions(initial_margin_fraction=0.5, maintenance_margin_fraction=0.25))
)
HALF_DOCUMENT = {
    "schema": BASELINE_PARAMS_SCHEMA,
    "static": {"default": {"initial_margin_fraction": 0.5, "maintenance_margin_fraction": 0.25}},
}
STRESS = ["stress", "--episode", "2020-03-12", "--compare", "static", "--accounts", "200", "--step", "600"]


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def half_file(tmp_path: Path) -> Path:
    return write_json(tmp_path / "venue.json", HALF_DOCUMENT)


def test_the_file_decodes_to_the_params_and_omitted_fields_keep_their_defaults(half_file: Path) -> None:
    assert load_baseline_params(half_file) == HALF
    assert load_baseline_params(None) == BaselineParams()
    assert HALF.dydx == BaselineParams().dydx and HALF.synthetix_markets == {}


def test_the_formats_example_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    examples = [b for b in blocks if json.loads(b).get("schema") == BASELINE_PARAMS_SCHEMA]
    assert examples
    for block in examples:
        params = load_baseline_params(write_json(tmp_path / "example.json", json.loads(block)))
        assert params.static.assets["SOL"].initial_margin_fraction == 0.2
        assert params.dydx_asset_tiers["SOL"] == "Mid-Cap"


def test_a_saved_default_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "defaults.json"
    path.write_bytes(msgspec.json.encode(BaselineParams()))
    assert load_baseline_params(path) == BaselineParams()


BAD = [
    ("not-json", "{", "not valid JSON"),
    ("no-schema", {"static": {}}, "schema: required field is missing"),
    ("other-version", {"schema": "solvent.baseline-params/2"}, "schema: unknown schema version"),
    ("unknown-field", {"schema": BASELINE_PARAMS_SCHEMA, "statik": {}}, "statik: unknown field"),
    (
        "unknown-nested-field",
        {"schema": BASELINE_PARAMS_SCHEMA, "static": {"default": {"imf": 0.5}}},
        "static.default.imf: unknown field",
    ),
    (
        "bad-tier",
        {"schema": BASELINE_PARAMS_SCHEMA, "dydx_asset_tiers": {"SOL": "Huge-Cap"}},
        "dydx_asset_tiers.SOL: unknown liquidity tier 'Huge-Cap'",
    ),
    (
        "mmf-above-imf",
        {"schema": BASELINE_PARAMS_SCHEMA, "static": {"default": {"initial_margin_fraction": 0.01}}},
        "static.default.maintenance_margin_fraction: must not exceed",
    ),
]


def _bad_file(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "venue.json"
    if isinstance(document, str):
        path.write_text(document, encoding="utf-8")
        return path
    return write_json(path, document)


@pytest.mark.parametrize(("document", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_file_is_an_input_error_naming_file_and_field(tmp_path: Path, document: object, message: str) -> None:
    path = _bad_file(tmp_path, document)
    with pytest.raises(solvent.InputError) as error:
        load_baseline_params(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


@pytest.mark.parametrize(("document", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("command", ["backtest", "stress", "margin"])
def test_the_commands_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, examples_dir: Path, command: str, document: object, message: str
) -> None:
    path = _bad_file(tmp_path, document)
    out = tmp_path / "out"
    if command == "backtest":
        write_history(HISTORY, tmp_path / "history.csv")
        args = ["backtest", "--history", str(tmp_path / "history.csv"), "--models", "static", "--out", str(out)]
    elif command == "stress":
        args = [*STRESS, "--out", str(out)]
    else:
        portfolio, market = str(examples_dir / "portfolio.json"), str(examples_dir / "market.json")
        args = ["margin", "--portfolio", portfolio, "--market", market, "--baseline", "static"]
    result = CliRunner().invoke(main, [*args, "--baseline-params", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], result.output
    assert not out.exists()


def test_a_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    write_history(HISTORY, tmp_path / "history.csv")
    missing = tmp_path / "nowhere.json"
    args = ["backtest", "--history", str(tmp_path / "history.csv"), "--baseline-params", str(missing)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and str(missing) in result.output


def test_backtest_uses_the_file(tmp_path: Path, half_file: Path) -> None:
    write_history(HISTORY, tmp_path / "history.csv")
    out = tmp_path / "out"
    args = ["backtest", "--history", str(tmp_path / "history.csv"), "--models", "static", "--assets", "BTC"]
    result = CliRunner().invoke(main, [*args, "--baseline-params", str(half_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline_params"] == str(half_file)
    direct = run_backtest(HISTORY, ["static"], MarginParams(), assets=("BTC",), baselines=HALF).summary()
    for portfolio in ("long BTC", "short BTC"):
        locked = summary["runs"][0]["models"]["static"][portfolio]["capital_locked"]
        assert locked == pytest.approx(0.5, rel=1e-12)
        assert locked == direct["models"]["static"][portfolio]["capital_locked"]
    default = run_backtest(HISTORY, ["static"], MarginParams(), assets=("BTC",)).summary()
    assert default["models"]["static"]["long BTC"]["capital_locked"] == pytest.approx(0.1, rel=1e-12)


def test_stress_uses_the_file(tmp_path: Path, half_file: Path) -> None:
    runner = CliRunner()
    default = runner.invoke(main, [*STRESS, "--out", str(tmp_path / "default")])
    venue = runner.invoke(main, [*STRESS, "--baseline-params", str(half_file), "--out", str(tmp_path / "venue")])
    assert default.exit_code == 0, default.output
    assert venue.exit_code == 0, venue.output
    by_default = json.loads((tmp_path / "default" / "summary.json").read_text())
    by_file = json.loads((tmp_path / "venue" / "summary.json").read_text())
    assert by_file["settings"]["baseline_params"] == str(half_file)
    assert "baseline_params" not in by_default["settings"]
    locked_default = by_default["episodes"][0]["models"]["static"]["capital_locked"]
    locked_file = by_file["episodes"][0]["models"]["static"]["capital_locked"]
    assert locked_file > 2.0 * locked_default
    library = load_crashes()
    episode = next(e for e in library.episodes if e.id == "2020-03-12")
    direct = run_episode(
        episode,
        ["static"],
        MarginParams(),
        spec=venue_population(200),
        config=CascadeConfig(block_seconds=600.0, insurance_fund=1_000_000.0),
        step_seconds=600.0,
        seed=DEMO_SEED,
        library=library,
        baselines=HALF,
    )
    assert locked_file == pytest.approx(direct.summary()["models"]["static"]["capital_locked"], rel=1e-12)


def test_the_stream_margins_at_the_given_fractions_and_saves_them(examples_dir: Path, tmp_path: Path) -> None:
    book = solvent.load_portfolio(examples_dir / "portfolio.json")
    market = solvent.load_market(examples_dir / "market.json")
    engine = StreamEngine.start(book, market, model="static", baselines=HALF)
    default = StreamEngine.start(book, market, model="static")
    direct = baseline_margin_for(book, market, "static", HALF)
    # The opening book's IM (the opening figures follow the start's liquidations, many more at 50%).
    assert np.array_equal(engine.pricing.requirement(book), direct.im)
    assert engine.pricing.requirement(book) == pytest.approx(5.0 * default.pricing.requirement(book), rel=1e-12)
    assert engine.totals.liquidations > default.totals.liquidations
    engine.save(tmp_path / "state.npz")
    resumed = StreamEngine.load(tmp_path / "state.npz")
    assert resumed.baselines == HALF and resumed.model == "static"
    assert np.array_equal(resumed.pricing.requirement(book), engine.pricing.requirement(book))


def test_margin_baseline_uses_the_file(examples_dir: Path, half_file: Path) -> None:
    portfolio, market = str(examples_dir / "portfolio.json"), str(examples_dir / "market.json")
    args = ["margin", "--portfolio", portfolio, "--market", market, "--baseline", "static", "--format", "json"]
    runner = CliRunner()
    by_file = runner.invoke(main, [*args, "--baseline-params", str(half_file)])
    assert by_file.exit_code == 0, by_file.output
    document = json.loads(by_file.output)
    direct = baseline_margin_for(solvent.load_portfolio(portfolio), solvent.load_market(market), "static", HALF)
    assert [a["im"] for a in document["accounts"]] == pytest.approx(direct.im.tolist(), rel=1e-12)
    default = json.loads(runner.invoke(main, args).output)
    assert document["totals"]["im"] == pytest.approx(5.0 * default["totals"]["im"], rel=1e-9)


def test_baseline_params_without_baseline_is_a_usage_error(examples_dir: Path, half_file: Path) -> None:
    portfolio, market = str(examples_dir / "portfolio.json"), str(examples_dir / "market.json")
    args = ["margin", "--portfolio", portfolio, "--market", market, "--baseline-params", str(half_file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--baseline-params needs --baseline" in result.output


def test_the_json_schema_accepts_the_defaults_and_rejects_a_misspelt_field() -> None:
    import jsonschema

    schema = json.loads((ROOT / "docs" / "schemas" / "solvent.baseline-params-1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    document = json.loads(msgspec.json.encode(BaselineParams()))
    assert document["schema"] == BASELINE_PARAMS_SCHEMA and validator.is_valid(document)
    assert validator.is_valid(HALF_DOCUMENT)
    document["static"]["default"]["imf"] = 0.5
    assert not validator.is_valid(document)
