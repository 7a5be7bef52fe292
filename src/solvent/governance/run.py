"""`solvent params propose|diff|apply` from files: load, digest the inputs, call the library, write atomically."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from solvent.convert.inputs import load_params, load_portfolio
from solvent.formats.governance import AuditRecord, ParamsDiff, Proposal
from solvent.formats.io import atomic_output, load_market
from solvent.governance.audit import JsonlAuditLog
from solvent.governance.calibrate import SignalTarget, calibrate
from solvent.governance.digest import input_digest
from solvent.governance.proposal import apply_proposal, check_proposal, dry_run, load_proposal, propose
from solvent.governance.signals import read_signal, signal_scale
from solvent.market.history import read_history
from solvent.params import MarginParams


def write_json(path: str, document: msgspec.Struct | MarginParams) -> None:
    """Indented JSON, written atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")


def propose_from_files(
    portfolio: str,
    market: str,
    params_path: str | None,
    *,
    proposed_by: str,
    history: str | None = None,
    depth_markets: Sequence[str] = (),
    signal: str | None = None,
    signal_target: SignalTarget = "vol_floor",
    now: datetime | None = None,
) -> Proposal:
    """Calibrate on the files and propose one bounded step toward every target."""
    params = load_params(params_path)
    snapshot = load_market(market)
    inputs = [input_digest("portfolio", portfolio), input_digest("market", market)]
    inputs += [input_digest("depth_market", path) for path in depth_markets]
    if history is not None:
        inputs.append(input_digest("history", history))
    multiplier = 1.0
    if signal is not None:
        series = read_signal(signal)
        inputs.append(input_digest("signal", signal))
        k = series.at(snapshot.time)
        multiplier = float(signal_scale(series.values[: k + 1])[-1]) if k is not None else 1.0
    targets = calibrate(
        load_portfolio(portfolio),
        snapshot,
        params,
        history=read_history(history) if history is not None else None,
        depth_history=[load_market(path) for path in depth_markets],
        signal_multiplier=multiplier,
        signal_target=signal_target,
    )
    return propose(targets, params, proposed_by=proposed_by, created=now or datetime.now(UTC), inputs=inputs)


def diff_from_files(
    proposal_path: str, params_path: str | None, portfolio: str, market: str, history: str | None = None
) -> ParamsDiff:
    """The dry run of a proposal file on a book: nothing but the returned document is produced."""
    proposal = load_proposal(proposal_path)
    inputs = [input_digest("portfolio", portfolio), input_digest("market", market)]
    if history is not None:
        inputs.append(input_digest("history", history))
    return dry_run(
        proposal,
        load_params(params_path),
        load_portfolio(portfolio),
        load_market(market),
        read_history(history) if history is not None else None,
        inputs=inputs,
        source=proposal_path,
    )


def apply_from_files(
    proposal_path: str,
    params_path: str | None,
    out: str,
    log_path: str,
    *,
    approved_by: str,
    portfolio: str | None = None,
    market: str | None = None,
    history: str | None = None,
    now: datetime | None = None,
) -> tuple[AuditRecord, ParamsDiff | None]:
    """Check the proposal against the parameters and the log, dry-run it on the book when one is given, write the
    new parameters to `out`, then append the audit record to `log_path`."""
    proposal = load_proposal(proposal_path)
    params = load_params(params_path)
    log = JsonlAuditLog(log_path)
    when = now or datetime.now(UTC)
    with log.locked():  # one apply at a time: the delays checked are those of the last record appended
        check_proposal(proposal, params, log, when, proposal_path)  # refuse before margining anything
        diff = None
        if portfolio is not None and market is not None:
            diff = diff_from_files(proposal_path, params_path, portfolio, market, history)
        record = apply_proposal(
            proposal,
            params,
            log,
            approved_by=approved_by,
            now=when,
            save=lambda new: write_json(out, new),
            diff=diff,
            source=proposal_path,
        )
    return record, diff
