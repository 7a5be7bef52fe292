"""Parameter governance (solvent.governance): bounded steps and delays (Aave's risk stewards, REFERENCES.md:
bgd-labs/aave-proposals-v3 RiskStewardPhase2: LTV and liquidation threshold at most 0.25% absolute, caps 100%
relative, 3 days apart), the calibrator's targets, the dry run and the audit log, through the library and the
CLI."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from example_files import market as example_market
from example_files import portfolio as example_portfolio
from scipy.stats import norm

from solvent.api import compute_margin
from solvent.cli import main
from solvent.convert.inputs import load_params, portfolio_to_book
from solvent.errors import InputError
from solvent.formats.governance import AuditRecord, Change, ParamsDiff, Proposal
from solvent.formats.schemas import MarketSnapshot, Portfolio
from solvent.governance.audit import JsonlAuditLog, MemoryAuditLog, last_change
from solvent.governance.bounds import BOUNDS, MIN_DELAY_DAYS, Bound, check_step, get_value, with_values
from solvent.governance.calibrate import FLOOR_SHARE, OI_SHARE, calibrate
from solvent.governance.digest import document_sha256, params_sha256
from solvent.governance.proposal import apply_proposal, check_proposal, dry_run, propose
from solvent.governance.signals import read_signal
from solvent.params import MarginParams, params_from_json

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def _book(data: dict[str, Any]) -> Any:
    return portfolio_to_book(msgspec.convert(data, Portfolio))


def _market(data: dict[str, Any]) -> MarketSnapshot:
    return msgspec.json.decode(json.dumps(data), type=MarketSnapshot)


def _proposal(params: MarginParams, *changes: tuple[str, float]) -> Proposal:
    return Proposal(
        proposed_by="test",
        created=NOW,
        base_params_sha256=params_sha256(params),
        changes=[Change(path=p, current=get_value(params, p), proposed=v, target=v) for p, v in changes],
    )


# ------------------------------------------------------------------------------------------------ bounds


def test_aave_delay_is_three_days() -> None:
    assert MIN_DELAY_DAYS == 3.0
    assert all(b.min_delay_days == 3.0 for b in BOUNDS.values())


def test_caps_move_like_aave_caps_by_100_percent_relative() -> None:
    assert BOUNDS["concentration.threshold"].kind == "relative"
    assert BOUNDS["concentration.threshold"].step == 1.0


def test_vol_floor_step_is_the_ltv_bound_as_a_margin_rate() -> None:
    """One step of the vol floor moves a perpetual's ES99 two-day margin rate by at most Aave's 0.25% (absolute):
    ES99 of a unit normal is pdf(ppf(0.99)) / 0.01 (scipy), times sqrt(2 / 365) per unit of annualised vol."""
    es99 = norm.pdf(norm.ppf(0.99)) / 0.01
    rate_per_vol = es99 * math.sqrt(2.0 / 365.0)
    assert BOUNDS["volatility.vol_floor"].step * rate_per_vol <= 0.0025
    assert BOUNDS["volatility.vol_floor"].step * rate_per_vol > 0.0024  # and not needlessly tighter


def test_apc_buffer_floor_is_emir_minimum() -> None:
    """EMIR RTS 153/2013 art. 28(1)(a): a buffer of at least 25%."""
    assert BOUNDS["volatility.apc_buffer"].floor == 0.25


@pytest.mark.parametrize(
    ("bound", "current", "target", "expected"),
    [
        (Bound("absolute", 0.0125, 0.0, 2.0), 0.05, 0.2, 0.0625),
        (Bound("absolute", 0.0125, 0.0, 2.0), 0.05, 0.055, 0.055),
        (Bound("absolute", 0.0125, 0.0, 2.0), 0.05, 0.0, 0.0375),
        (Bound("relative", 1.0, 1e6, 1e12), 3e7, 1e9, 6e7),
        (Bound("relative", 1.0, 1e6, 1e12), 3e7, 0.0, 1e6),
        (Bound("relative", 0.25, 1.0, 10.0), 9.0, 20.0, 10.0),
        (Bound("absolute", 0.025, 0.25, 1.0), 0.1, 0.5, 0.125),  # below the floor: one step toward it
    ],
)
def test_clip_is_one_step_within_floor_and_cap(bound: Bound, current: float, target: float, expected: float) -> None:
    assert bound.clip(current, target) == pytest.approx(expected)


def test_step_beyond_bound_is_refused_with_a_clear_error() -> None:
    with pytest.raises(InputError) as error:
        check_step("volatility.vol_floor", 0.05, 0.2, None, NOW, "changes[0].proposed", "p.json")
    assert str(error.value) == (
        "p.json: changes[0].proposed: volatility.vol_floor: 0.05 -> 0.2 moves 0.15, beyond its bound of 0.0125 per step"
    )


def test_step_at_the_bound_is_allowed() -> None:
    check_step("volatility.vol_floor", 0.05, 0.0625, None, NOW, "x", "p.json")
    check_step("concentration.threshold", 37e6, 74e6, None, NOW, "x", "p.json")


def test_relative_step_beyond_100_percent_is_refused() -> None:
    with pytest.raises(InputError, match=r"beyond its bound of 3.7e\+07 \(100% of 37000000.0\) per step"):
        check_step("concentration.threshold", 37e6, 75e6, None, NOW, "x", "p.json")


def test_value_below_the_floor_is_refused() -> None:
    with pytest.raises(InputError, match=r"outside its floor 0\.25"):
        check_step("volatility.apc_buffer", 0.25, 0.24, None, NOW, "x", "p.json")


@pytest.mark.parametrize(("days", "refused"), [(2.99, True), (3.0, False), (10.0, False)])
def test_minimum_delay_between_changes(days: float, refused: bool) -> None:
    last = NOW - timedelta(days=days)
    if refused:
        with pytest.raises(InputError, match="less than 3 days"):
            check_step("liquidity.stress", 2.0, 2.5, last, NOW, "x", "p.json")
    else:
        check_step("liquidity.stress", 2.0, 2.5, last, NOW, "x", "p.json")


def test_ungoverned_parameter_is_refused() -> None:
    params = MarginParams()
    proposal = msgspec.structs.replace(
        _proposal(params, ("liquidity.stress", 2.5)),
        changes=[Change(path="confidence", current=0.99, proposed=0.995, target=0.995)],
    )
    with pytest.raises(InputError, match=r"changes\[0\]\.path: confidence is not a governed parameter"):
        check_proposal(proposal, params, None, NOW, "p.json")


def test_with_values_revalidates() -> None:
    with pytest.raises(InputError, match=r"liquidity\.stress"):
        with_values(MarginParams(), {"liquidity.stress": 0.5})


# ------------------------------------------------------------------------------------------------ calibrate


def _thinner(market: dict[str, Any], factor: float) -> MarketSnapshot:
    data = json.loads(json.dumps(market))
    depth = data["assets"]["ETH"]["depth"]
    depth["depth_1pct"] *= factor
    depth["depth_2pct"] *= factor
    return _market(data)


def test_calibrated_targets_by_hand() -> None:
    """examples/: BTC vol 0.48 (long-run 0.62), ETH 0.66 (0.80). Vol floor 0.25 x 0.62; buffer median(0.62 / 0.48,
    0.80 / 0.66) - 1 = 0.2519; stress: ETH's depth at 2% over three snapshots 7000, 3500, 7000 units: median / min
    = 2 (BTC's book unchanged: 1)."""
    book, market = _book(example_portfolio()), example_market()
    history = [_thinner(market, 0.5), _market(market)]
    targets = {t.path: t.value for t in calibrate(book, _market(market), MarginParams(), depth_history=history)}
    assert targets["volatility.vol_floor"] == pytest.approx(FLOOR_SHARE * 0.62)
    assert targets["volatility.apc_buffer"] == pytest.approx(np.median([0.62 / 0.48, 0.80 / 0.66]) - 1.0)
    assert targets["liquidity.stress"] == pytest.approx(2.0)


def test_concentration_target_from_open_interest_and_depth() -> None:
    """The median over traded assets of min(OI_SHARE x OI, stressed depth): recomputed from the margin's deltas."""
    book, market = _book(example_portfolio()), _market(example_market())
    params = MarginParams()
    result = compute_margin(book, market, params)
    assert result.market is not None
    notional = result.greeks[:, :, 0] * result.market.price
    oi = np.maximum(np.maximum(notional, 0).sum(axis=0), np.maximum(-notional, 0).sum(axis=0))
    targets = {t.path: t.value for t in calibrate(book, market, params)}
    index = result.market.asset_index
    # the examples' open interest is far below their stressed depth, so OI binds for both traded assets
    assert targets["concentration.threshold"] == pytest.approx(
        np.median([OI_SHARE * oi[index[a]] for a in ("BTC", "ETH")])
    )


def test_signal_scales_only_its_target() -> None:
    book, market = _book(example_portfolio()), _market(example_market())
    plain = {t.path: t.value for t in calibrate(book, market, MarginParams())}
    scaled = {t.path: t.value for t in calibrate(book, market, MarginParams(), signal_multiplier=1.5)}
    assert scaled["volatility.vol_floor"] == pytest.approx(1.5 * plain["volatility.vol_floor"])
    assert scaled["volatility.apc_buffer"] == plain["volatility.apc_buffer"]


def test_proposal_moves_one_bounded_step_toward_each_target() -> None:
    book, market = _book(example_portfolio()), _market(example_market())
    params = MarginParams()
    proposal = propose(calibrate(book, market, params), params, proposed_by="calibrator", created=NOW)
    changes = {c.path: c for c in proposal.changes}
    assert changes["volatility.vol_floor"].proposed == pytest.approx(0.05 + 0.0125)
    assert changes["volatility.vol_floor"].target == pytest.approx(0.155)
    check_proposal(proposal, params, MemoryAuditLog(), NOW, "p")  # a proposal of the calibrator is within bounds


# ------------------------------------------------------------------------------------------------ dry run and apply


def _edge_portfolio(before: MarginParams, after: MarginParams) -> dict[str, Any]:
    """examples/portfolio.json with carol's USDC set so that her equity lies halfway between her MM under
    `before` and under `after`: the change makes carol liquidatable."""
    data = example_portfolio()
    market = _market(example_market())
    mm = [compute_margin(_book(data), market, p) for p in (before, after)]
    row = [str(a) for a in mm[0].account_ids].index("carol")
    assert mm[1].mm[row] > mm[0].mm[row]
    target = 0.5 * (mm[0].mm[row] + mm[1].mm[row])
    account = next(a for a in data["accounts"] if a["id"] == "carol")
    account["collateral"]["USDC"] += float(target - mm[0].equity[row])
    return data


def test_dry_run_figures_and_who_becomes_liquidatable() -> None:
    params = MarginParams()
    proposal = _proposal(params, ("liquidity.stress", 2.5))
    after = with_values(params, {"liquidity.stress": 2.5})
    data = _edge_portfolio(params, after)
    book, market = _book(data), _market(example_market())
    diff = dry_run(proposal, params, book, market)
    assert diff.newly_liquidatable == ["carol"]
    assert diff.totals.newly_liquidatable == 1
    independent = compute_margin(book, market, after)
    np.testing.assert_array_equal([a.im_after for a in diff.accounts], independent.im)
    np.testing.assert_array_equal([a.mm_after for a in diff.accounts], independent.mm)
    assert diff.totals.im_change == pytest.approx(float(independent.im.sum() - compute_margin(book, market).im.sum()))
    assert diff.params_after_sha256 == params_sha256(after)


def test_dry_run_changes_nothing() -> None:
    params = MarginParams()
    before = params.to_json()
    proposal = _proposal(params, ("liquidity.stress", 2.5))
    book, market = _book(example_portfolio()), _market(example_market())
    dry_run(proposal, params, book, market)
    assert params.to_json() == before
    assert params_sha256(params) == proposal.base_params_sha256


def test_apply_records_both_digests_and_the_dry_run() -> None:
    params = MarginParams()
    proposal = _proposal(params, ("liquidity.stress", 2.5), ("volatility.vol_floor", 0.06))
    book, market = _book(example_portfolio()), _market(example_market())
    diff = dry_run(proposal, params, book, market)
    log = MemoryAuditLog()
    saved: list[MarginParams] = []
    record = apply_proposal(proposal, params, log, approved_by="risk", now=NOW, save=saved.append, diff=diff)
    assert log.records() == [record]
    assert record.params_before_sha256 == params_sha256(params)
    assert record.params_after_sha256 == params_sha256(saved[0])
    assert record.diff_totals == diff.totals
    assert record.diff_sha256 == document_sha256(diff)
    assert saved[0].liquidity.stress == 2.5 and saved[0].volatility.vol_floor == 0.06
    np.testing.assert_array_equal(compute_margin(book, market, saved[0]).im, [a.im_after for a in diff.accounts])
    assert last_change(log, "liquidity.stress") == NOW


def test_apply_refuses_a_replay_a_stale_base_and_a_second_change_too_soon() -> None:
    params = MarginParams()
    proposal = _proposal(params, ("liquidity.stress", 2.5))
    log = MemoryAuditLog()
    saved: list[MarginParams] = []
    apply_proposal(proposal, params, log, approved_by="risk", now=NOW, save=saved.append)
    with pytest.raises(InputError, match="already applied"):
        apply_proposal(proposal, params, log, approved_by="risk", now=NOW + timedelta(days=5), save=saved.append)
    with pytest.raises(InputError, match="base_params_sha256: made against other parameters"):
        check_proposal(proposal, saved[0], log, NOW + timedelta(days=5), "p")
    again = _proposal(saved[0], ("liquidity.stress", 3.0))
    with pytest.raises(InputError, match="less than 3 days"):
        apply_proposal(again, saved[0], log, approved_by="risk", now=NOW + timedelta(days=1), save=saved.append)
    assert len(log.records()) == 1 and len(saved) == 1  # a refusal saves nothing and logs nothing
    apply_proposal(again, saved[0], log, approved_by="risk", now=NOW + timedelta(days=3), save=saved.append)
    assert [r.seq for r in log.records()] == [1, 2]


def test_jsonl_log_round_trips_and_appends(tmp_path: Path) -> None:
    params = MarginParams()
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    assert log.records() == []
    record = apply_proposal(
        _proposal(params, ("liquidity.stress", 2.5)), params, log, approved_by="risk", now=NOW, save=lambda p: None
    )
    assert JsonlAuditLog(tmp_path / "audit.jsonl").records() == [record]
    assert (tmp_path / "audit.jsonl").read_bytes().count(b"\n") == 1


def test_jsonl_log_names_a_damaged_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"schema": "solvent.audit/1"}\n')
    with pytest.raises(InputError, match=r"audit\.jsonl: line 1\.seq: required field is missing"):
        JsonlAuditLog(path).records()


# ------------------------------------------------------------------------------------------------ CLI


def _write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document) if isinstance(document, dict) else msgspec.json.encode(document).decode())
    return str(path)


@pytest.mark.parametrize("args", [["params"], ["params", "show"]])
def test_plain_params_still_prints_the_defaults(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert params_from_json(result.stdout) == MarginParams()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"schema": "solvent.proposal/1"}, "proposed_by: required field is missing"),
        (
            {
                "schema": "solvent.proposal/1",
                "proposed_by": "x",
                "created": "2026-11-25T00:00:00Z",
                "base_params_sha256": "ab",
                "changes": [],
            },
            "base_params_sha256: ",
        ),
    ],
)
def test_cli_names_the_field_of_a_bad_proposal(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    proposal = _write(tmp_path, "p.json", document)
    market = str(Path(__file__).resolve().parents[1] / "examples" / "market.json")
    portfolio = str(Path(__file__).resolve().parents[1] / "examples" / "portfolio.json")
    result = CliRunner().invoke(
        main, ["params", "diff", "--proposal", proposal, "--portfolio", portfolio, "--market", market]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {proposal}: {message}")
    assert result.stderr.count("\n") == 1


def test_cli_propose_diff_apply(tmp_path: Path) -> None:
    params = MarginParams()
    after = with_values(params, {"liquidity.stress": 2.5})
    portfolio = _write(tmp_path, "portfolio.json", _edge_portfolio(params, after))
    market = _write(tmp_path, "market.json", example_market())
    runner = CliRunner()
    proposed = runner.invoke(
        main,
        [
            "params",
            "propose",
            "--portfolio",
            portfolio,
            "--market",
            market,
            "--now",
            "2026-11-25T00:00:00",
            "--out",
            str(tmp_path / "calibrated.json"),
        ],
    )
    assert proposed.exit_code == 0, proposed.output
    calibrated = msgspec.json.decode((tmp_path / "calibrated.json").read_bytes(), type=Proposal)
    assert {i.role for i in calibrated.inputs} == {"portfolio", "market"}
    proposal = _write(tmp_path, "proposal.json", _proposal(params, ("liquidity.stress", 2.5)))
    listing = sorted(p.name for p in tmp_path.iterdir())
    diffed = runner.invoke(
        main, ["params", "diff", "--proposal", proposal, "--portfolio", portfolio, "--market", market]
    )
    assert diffed.exit_code == 0, diffed.output
    assert "newly liquidatable 1" in diffed.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # a dry run writes nothing
    diffed = runner.invoke(
        main,
        [
            "params",
            "diff",
            "--proposal",
            proposal,
            "--portfolio",
            portfolio,
            "--market",
            market,
            "--out",
            str(tmp_path / "diff.json"),
        ],
    )
    diff = msgspec.json.decode((tmp_path / "diff.json").read_bytes(), type=ParamsDiff)
    applied = runner.invoke(
        main,
        [
            "params",
            "apply",
            "--proposal",
            proposal,
            "--approved-by",
            "risk committee",
            "--log",
            str(tmp_path / "audit.jsonl"),
            "--out",
            str(tmp_path / "new.json"),
            "--portfolio",
            portfolio,
            "--market",
            market,
            "--now",
            "2026-11-26T00:00:00",
        ],
    )
    assert applied.exit_code == 0, applied.output
    (record,) = JsonlAuditLog(tmp_path / "audit.jsonl").records()
    new = load_params(tmp_path / "new.json")
    assert record.params_before_sha256 == params_sha256(params) == diff.params_before_sha256
    assert record.params_after_sha256 == params_sha256(new) == diff.params_after_sha256
    assert record.diff_totals == diff.totals
    assert record.diff_sha256 == document_sha256(diff)
    assert record.approved_by == "risk committee" and record.applied_at == datetime(2026, 11, 26, tzinfo=UTC)
    schemas = Path(__file__).resolve().parents[1] / "docs" / "schemas"
    for name, document in [
        ("solvent.proposal-1", json.loads((tmp_path / "calibrated.json").read_text())),
        ("solvent.params-diff-1", json.loads((tmp_path / "diff.json").read_text())),
        ("solvent.audit-1", json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])),
    ]:
        jsonschema.validate(document, json.loads((schemas / f"{name}.schema.json").read_text()))


def test_cli_refuses_a_proposal_beyond_its_bound(tmp_path: Path) -> None:
    params = MarginParams()
    proposal = _write(tmp_path, "p.json", _proposal(params, ("liquidity.stress", 2.0), ("volatility.vol_floor", 0.2)))
    result = CliRunner().invoke(
        main,
        [
            "params",
            "apply",
            "--proposal",
            proposal,
            "--approved-by",
            "risk",
            "--log",
            str(tmp_path / "audit.jsonl"),
            "--out",
            str(tmp_path / "new.json"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {proposal}: changes[1].proposed: volatility.vol_floor: 0.05 -> 0.2 moves 0.15, beyond its bound "
        "of 0.0125 per step\n"
    )
    assert not (tmp_path / "new.json").exists() and not (tmp_path / "audit.jsonl").exists()


def test_audit_record_schema_is_strict() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"seq": 0}', type=AuditRecord)


# ------------------------------------------------------------------------------------------------ docs


def _formats_blocks(lang: str) -> list[str]:
    from test_docs_examples import FORMATS, fenced_blocks

    return [b.text for b in fenced_blocks(FORMATS) if b.lang == lang]


@pytest.mark.parametrize(
    ("schema", "kind"),
    [("solvent.proposal/1", Proposal), ("solvent.params-diff/1", ParamsDiff), ("solvent.audit/1", AuditRecord)],
)
def test_formats_examples_decode_and_validate(schema: str, kind: type) -> None:
    examples = [t for t in _formats_blocks("json") if json.loads(t).get("schema") == schema]
    assert len(examples) == 1
    msgspec.json.decode(examples[0], type=kind)
    name = schema.replace("/", "-")
    schemas = Path(__file__).resolve().parents[1] / "docs" / "schemas"
    jsonschema.validate(json.loads(examples[0]), json.loads((schemas / f"{name}.schema.json").read_text()))


def test_formats_signal_example_reads(tmp_path: Path) -> None:
    (example,) = [t for t in _formats_blocks("text") if t.startswith("timestamp,value")]
    path = tmp_path / "s.csv"
    path.write_text(example)
    assert read_signal(path).values.tolist() == [0.31, 0.29, 0.44]


def test_cli_propose_with_a_signal_and_earlier_depth(tmp_path: Path) -> None:
    """A signal at the top of its history (40 rising daily values up to the market's time: F = 1, m = 2) doubles
    the vol floor target; the proposal still moves one step. ETH's depth at half of today's in an earlier
    snapshot: the stress target is median(3500, 7000) / 3500 = 1.5 (two snapshots)."""
    rows = [f"{(NOW - timedelta(days=39 - d)).strftime('%Y-%m-%dT%H:%M:%SZ')},{d}" for d in range(40)]
    signal = tmp_path / "signal.csv"
    signal.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    market = example_market()
    earlier = json.loads(json.dumps(market))
    earlier["assets"]["ETH"]["depth"]["depth_1pct"] /= 2
    earlier["assets"]["ETH"]["depth"]["depth_2pct"] /= 2
    args = [
        "params", "propose", "--portfolio", str(Path(__file__).resolve().parents[1] / "examples" / "portfolio.json"),
        "--market", _write(tmp_path, "market.json", market), "--depth-market", _write(tmp_path, "m0.json", earlier),
        "--signal", str(signal), "--now", "2026-11-25T00:00:00Z", "--out", str(tmp_path / "p.json"),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    proposal = msgspec.json.decode((tmp_path / "p.json").read_bytes(), type=Proposal)
    changes = {c.path: c for c in proposal.changes}
    assert changes["volatility.vol_floor"].target == pytest.approx(2.0 * FLOOR_SHARE * 0.62)
    assert changes["volatility.vol_floor"].proposed == pytest.approx(0.0625)
    assert changes["liquidity.stress"].target == pytest.approx(1.5)
    assert changes["liquidity.stress"].proposed == pytest.approx(1.5)  # 2.0 -> 1.5: a 25% step down
    assert [i.role for i in proposal.inputs] == ["portfolio", "market", "depth_market", "signal"]
    assert proposal.created == NOW
