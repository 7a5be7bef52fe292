"""The command line: parses arguments, calls the library, prints. Bad input exits 2, one line, no traceback.

Over 600 lines because every command's click options are declared here, one decorator stack each; the lazily
loaded subcommands of issue 14 (item 7) split it by command."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar

import click
import msgspec
from rich.console import Console

from solvent.api import baseline_margin_for, compute_margin, explain_margin
from solvent.baselines import BASELINE_NAMES
from solvent.console import (
    RunProgress,
    print_backtest,
    print_baseline,
    print_comparison,
    print_explain,
    print_margin,
    print_portfolio_backtest,
    print_stream_summary,
    print_stress,
)
from solvent.convert.inputs import load_baseline_params, load_params, load_portfolio
from solvent.convert.results import result_json, write_result
from solvent.demo.run import DEMO_ACCOUNTS, DEMO_SEED, run_demo
from solvent.engine.book import Book
from solvent.errors import InputError, SolventError
from solvent.formats.governance import ParamsDiff
from solvent.formats.io import load_market, write_text_atomic
from solvent.formats.provenance import Provenance, check_inputs, header_lines, provenance_of, read_provenance
from solvent.formats.schemas import MarketSnapshot
from solvent.governance.run import apply_from_files, diff_from_files, propose_from_files, write_json
from solvent.jsonschemas import write_schemas
from solvent.market.history import PriceHistory, read_history
from solvent.params import MarginParams
from solvent.proof.files import load_proof, read_margin_output, write_outputs
from solvent.proof.inclusion import verify_proof
from solvent.proof.leaves import STATUSES
from solvent.proof.prove import proof_positions, prove_book, prove_figures, published_root, read_secret
from solvent.proof.tree import default_processes
from solvent.simm.calibration import DEFAULT_VERSION as SIMM_DEFAULT
from solvent.simm.calibration import VERSIONS as SIMM_VERSIONS
from solvent.simm.crypto import CryptoMapping, crif_csv, crif_from_portfolio
from solvent.simm.report import print_table as simm_table
from solvent.simm.report import simm_report
from solvent.simm.report import to_csv as simm_csv
from solvent.simm.report import to_json as simm_json
from solvent.store.url import DEFAULT_STORE

if TYPE_CHECKING:
    import numpy as np

    from solvent.lab.backtest import Windows
    from solvent.stream.follow import Followed
    from solvent.stream.replay import ReplayFiles

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_INPUT = 2
#: Exit status after SIGTERM: 128 + the signal's number, the shells' convention.
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


def _fail_cleanly(command: F) -> F:
    """Turn InputError into `error: <file>: <record>.<field>: <message>` and exit status 2."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except SolventError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
            sys.exit(1)

    return run  # type: ignore[return-value]


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread: unwinding runs every `atomic_output`'s cleanup (temporary files are
    removed, no output is half-written). A BaseException, so that no `except Exception` swallows it."""


#: Set by the SIGTERM handler of `_terminate_cleanly`, cleared when the command returns.
_TERMINATING = threading.Event()


def _stop_if_terminated() -> None:
    """Raise `_Terminated` if SIGTERM arrived but its exception never reached the command: a library may clear a
    Python error raised inside a call it makes back into Python (numba's dispatcher does while it types its
    arguments). Long loops call this between batches, so the command still stops at the next one."""
    if _TERMINATING.is_set():
        raise _Terminated


def _terminate_cleanly(command: F) -> F:
    """Turn SIGTERM into a clean exit: temporary outputs removed, one line on stderr, exit status 143.

    Further SIGTERMs are ignored while the first unwinds (a second kill must not interrupt the cleanup); the
    previous handler is restored when the command returns. Outside the main thread (no signals there) the
    command runs as it is. SIGKILL cannot be caught: docs/formats.md, "Interrupted runs", says what it leaves.
    """

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return command(*args, **kwargs)

        def terminate(signum: int, frame: FrameType | None) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _TERMINATING.set()
            raise _Terminated

        previous = signal.signal(signal.SIGTERM, terminate)
        _TERMINATING.clear()
        try:
            return command(*args, **kwargs)
        except _Terminated:
            click.echo("error: terminated by SIGTERM: temporary files removed", err=True)
            sys.exit(EXIT_TERMINATED)
        finally:
            signal.signal(signal.SIGTERM, previous)
            _TERMINATING.clear()

    return run  # type: ignore[return-value]


#: --baseline-params, shared by every command that margins under a venue rule.
_baseline_params_option = click.option(
    "--baseline-params",
    "baseline_params_path",
    default=None,
    help="solvent.baseline-params/1 JSON file: the venue rules' parameters (default: built-in).",
)


@click.group()
@click.version_option(package_name="solvent")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="The library's log lines (stderr); the commands' own output is unchanged.",
)
def main(log_level: str) -> None:
    """solvent: multi-factor margin for derivatives venues."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--portfolio", "portfolio_path", required=True, help="solvent.portfolio/1 file (.json or .parquet).")
@click.option("--market", "market_path", required=True, help="solvent.market/1 JSON file.")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@click.option("--history", "history_path", default=None, help="Price history (CSV/Parquet) for fhs/mc scenarios.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "parquet"]), default="table", show_default=True)
@click.option("--out", "out_path", default=None, help="Write results here instead of standard output.")
@click.option("--explain", "explain_account", default=None, metavar="ACCOUNT", help="Attribute ACCOUNT's market risk.")
@click.option(
    "--baseline",
    "baseline_name",
    type=click.Choice(BASELINE_NAMES),
    default=None,
    help="Also margin every account under this venue rule and compare with the multi-factor IM.",
)
@_baseline_params_option
@_fail_cleanly
@_terminate_cleanly
def margin(
    portfolio_path: str,
    market_path: str,
    params_path: str | None,
    history_path: str | None,
    fmt: str,
    out_path: str | None,
    explain_account: str | None,
    baseline_name: str | None,
    baseline_params_path: str | None,
) -> None:
    """Margin every account: IM, MM, equity, health, liquidatable, IM terms and Greeks.

    With --explain ACCOUNT: each of ACCOUNT's positions' contribution to its market-risk term instead.
    With --baseline NAME: each account's IM and MM under that venue rule next to its multi-factor IM
    (the rule's parameters from --baseline-params FILE, else the built-in defaults).
    """
    if baseline_name is not None and (explain_account is not None or fmt == "parquet"):
        raise click.UsageError("--baseline prints table or json, without --explain")
    if baseline_params_path is not None and baseline_name is None:
        raise click.UsageError("--baseline-params needs --baseline NAME")
    if fmt == "parquet" and (out_path is None or explain_account is not None):
        raise click.UsageError(
            "--format parquet needs --out FILE" if explain_account is None else "--explain prints table or json"
        )
    params = load_params(params_path)
    baselines = load_baseline_params(baseline_params_path)
    book = load_portfolio(portfolio_path)
    market = load_market(market_path)
    history = read_history(history_path) if history_path else None
    files = {"portfolio": portfolio_path, "market": market_path, "params": params_path, "history": history_path}
    used = {"margin": params, "baseline": baselines if baseline_name else None}
    provenance = provenance_of(files | {"baseline_params": baseline_params_path}, used)
    if explain_account is not None:
        _explain(
            book, market, params, history, explain_account, fmt, out_path, (portfolio_path, market_path), provenance
        )
        return
    result = compute_margin(book, market, params, history, portfolio_source=portfolio_path, market_source=market_path)
    market_time = market.time.isoformat()
    if baseline_name is not None:
        baseline = baseline_margin_for(
            book, market, baseline_name, baselines, params, portfolio_source=portfolio_path, market_source=market_path
        )
        _emit(
            fmt,
            out_path,
            lambda console: print_baseline(baseline, result.im, console),
            lambda: baseline.to_json(market_time, result.im, provenance).decode(),
        )
    elif fmt == "parquet" and out_path is not None:  # --format parquet without --out was refused above
        write_result(result, out_path, fmt, market_time, provenance)
        click.echo(f"wrote {result.n_accounts:,} accounts to {out_path}", err=True)
    else:
        _emit(
            fmt,
            out_path,
            lambda console: print_margin(result, console),
            lambda: result_json(result, market_time, provenance).decode(),
        )


def _emit(fmt: str, out_path: str | None, table: Callable[[Console], None], document: Callable[[], str]) -> None:
    """Table or JSON, to standard output or atomically to `out_path`.

    A table is drawn at the terminal's width, else 240 columns on a pipe and 200 in a file, so that
    account ids are never truncated.
    """
    if fmt == "table":
        if out_path is None:
            table(Console() if sys.stdout.isatty() else Console(width=240))
        else:
            write_text_atomic(out_path, lambda handle: table(Console(file=handle, width=200)))
    elif out_path is None:
        click.echo(document())
    else:
        text = document()
        write_text_atomic(out_path, lambda handle: print(text, file=handle))


def _explain(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    history: PriceHistory | None,
    account: str,
    fmt: str,
    out_path: str | None,
    sources: tuple[str, str],
    provenance: Provenance,
) -> None:
    """`margin --explain ACCOUNT`: the attribution as a table or a solvent.explain/1 JSON document."""
    if account not in set(book.account_ids.tolist()):
        raise InputError("", "--explain", f"unknown account {account!r}")
    attribution = explain_margin(
        book, market, account, params, history, portfolio_source=sources[0], market_source=sources[1]
    )
    _emit(
        fmt,
        out_path,
        lambda console: print_explain(attribution, console),
        lambda: attribution.to_json(market.time.isoformat(), provenance).decode(),
    )


@main.command()
@click.argument("crif_paths", nargs=-1, required=True, metavar="CRIF...")
@click.option(
    "--version", "simm_version", type=click.Choice(sorted(SIMM_VERSIONS)), default=SIMM_DEFAULT, show_default=True
)
@click.option("--calibration", "calibration_path", default=None, help="A calibration XML in ORE's layout instead.")
@click.option("--mpor", type=click.Choice(["10", "1"]), default="10", show_default=True, help="Margin period (days).")
@click.option(
    "--high-vol-fx", default="", metavar="CCY,...", help="Currencies (e.g. crypto) to weigh as high-volatility FX."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--out", "out_path", default=None, help="Write results here instead of standard output.")
@_fail_cleanly
def simm(
    crif_paths: tuple[str, ...],
    simm_version: str,
    calibration_path: str | None,
    mpor: str,
    high_vol_fx: str,
    fmt: str,
    out_path: str | None,
) -> None:
    """ISDA SIMM of every portfolio in one or more CRIF files (docs/simm.md)."""
    high = [c.strip() for c in high_vol_fx.split(",") if c.strip()]
    report = simm_report(crif_paths, simm_version, int(mpor), calibration_path, high)
    settings = {"version": simm_version, "mpor_days": int(mpor), "high_vol_fx": high}
    files = {f"crif[{i}]": path for i, path in enumerate(crif_paths)} | {"calibration": calibration_path}
    provenance = provenance_of(files, {"simm": settings})
    if fmt == "csv":
        text = simm_csv(report)
        if out_path is None:
            click.echo(text, nl=False)
        else:
            write_text_atomic(out_path, lambda handle: print(text, file=handle, end=""))
        return
    _emit(
        fmt, out_path, lambda console: simm_table(report, console), lambda: simm_json(report, provenance).rstrip("\n")
    )


@main.command()
@click.option("--portfolio", "portfolio_path", required=True, help="solvent.portfolio/1 file (.json or .parquet).")
@click.option("--market", "market_path", required=True, help="solvent.market/1 JSON file.")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@click.option("--mapping", type=click.Choice(["equity", "fx"]), default="equity", show_default=True)
@click.option("--equity-bucket", default="Residual", show_default=True, help="SIMM equity bucket for crypto.")
@click.option("--vega-tenor", default="6m", show_default=True, help="SIMM tenor label for the net vega.")
@click.option("--out", "out_path", default=None, help="Write the CRIF here instead of standard output.")
@_fail_cleanly
def crif(
    portfolio_path: str,
    market_path: str,
    params_path: str | None,
    mapping: str,
    equity_bucket: str,
    vega_tenor: str,
    out_path: str | None,
) -> None:
    """A CRIF (delta and vega per account and asset, from the Greeks) for `solvent simm` (docs/simm.md)."""
    choice = CryptoMapping(
        risk_class="fx" if mapping == "fx" else "equity", equity_bucket=equity_bucket, vega_tenor=vega_tenor
    )
    params = load_params(params_path) if params_path else None
    text = crif_csv(crif_from_portfolio(load_portfolio(portfolio_path), load_market(market_path), choice, params))
    if out_path is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out_path, lambda handle: print(text, file=handle, end=""))


@main.command()
@click.option("--out", "out_dir", default="docs/schemas", show_default=True, help="Folder to write into.")
@_fail_cleanly
def schema(out_dir: str) -> None:
    """Write the JSON Schema of every file format."""
    for path in write_schemas(out_dir):
        click.echo(str(path))


@main.group(invoke_without_command=True)
@click.pass_context
def params(context: click.Context) -> None:
    """Print the default model parameters (solvent.params/1 JSON): edit and pass with --params.

    Subcommands govern changes: propose (calibrate a bounded step), diff (dry run on a book), apply (audited)."""
    if context.invoked_subcommand is None:
        click.echo(MarginParams().to_json().decode())


@params.command("show")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@_fail_cleanly
def params_show(params_path: str | None) -> None:
    """Print the parameters of a file (or the defaults) with every field."""
    click.echo(load_params(params_path).to_json().decode())


_now_option = click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="The time of the step (ISO-8601, UTC without a zone; default: the clock).",
)


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC))


@params.command("propose")
@click.option("--portfolio", "portfolio_path", required=True, help="solvent.portfolio/1 file: the live book.")
@click.option("--market", "market_path", required=True, help="solvent.market/1 JSON file: the market now.")
@click.option("--params", "params_path", default=None, help="The current solvent.params/1 file (default: built-in).")
@click.option("--history", "history_path", default=None, help="solvent.history/1 file, for scenarios that need it.")
@click.option(
    "--depth-market", "depth_markets", multiple=True, help="An earlier market snapshot (repeat): depth drops."
)
@click.option(
    "--signal", "signal_path", default=None, help="solvent.signal/1 CSV (timestamp,value): an external signal."
)
@click.option(
    "--signal-scales",
    type=click.Choice(["vol_floor", "liquidity_stress"]),
    default="vol_floor",
    show_default=True,
    help="The target the signal may scale.",
)
@click.option("--proposed-by", default="solvent calibrator", show_default=True, help="Who or what proposes.")
@_now_option
@click.option("--out", "out_path", required=True, help="Where to write the solvent.proposal/1 JSON.")
@_fail_cleanly
def params_propose(
    portfolio_path: str,
    market_path: str,
    params_path: str | None,
    history_path: str | None,
    depth_markets: tuple[str, ...],
    signal_path: str | None,
    signal_scales: Literal["vol_floor", "liquidity_stress"],
    proposed_by: str,
    now: datetime | None,
    out_path: str,
) -> None:
    """Calibrate targets from market data and propose one bounded step toward each."""
    proposal = propose_from_files(
        portfolio_path,
        market_path,
        params_path,
        proposed_by=proposed_by,
        history=history_path,
        depth_markets=depth_markets,
        signal=signal_path,
        signal_target=signal_scales,
        now=_utc(now),
    )
    write_json(out_path, proposal)
    for change in proposal.changes:
        click.echo(f"{change.path}: {change.current!r} -> {change.proposed!r} (target {change.target!r})")
    click.echo(f"proposal: {out_path}")


@params.command("diff")
@click.option("--proposal", "proposal_path", required=True, help="solvent.proposal/1 JSON file.")
@click.option("--params", "params_path", default=None, help="The current solvent.params/1 file (default: built-in).")
@click.option("--portfolio", "portfolio_path", required=True, help="solvent.portfolio/1 file: the live book.")
@click.option("--market", "market_path", required=True, help="solvent.market/1 JSON file.")
@click.option("--history", "history_path", default=None, help="solvent.history/1 file, for scenarios that need it.")
@click.option("--out", "out_path", default=None, help="Write the solvent.params-diff/1 JSON here.")
@_fail_cleanly
def params_diff(
    proposal_path: str,
    params_path: str | None,
    portfolio_path: str,
    market_path: str,
    history_path: str | None,
    out_path: str | None,
) -> None:
    """Dry run: each account's IM and MM before and after, who becomes liquidatable. Changes nothing."""
    diff = diff_from_files(proposal_path, params_path, portfolio_path, market_path, history_path)
    if out_path is not None:
        write_json(out_path, diff)
    _echo_totals(diff)


def _echo_totals(diff: ParamsDiff) -> None:
    t = diff.totals
    click.echo(
        f"accounts {t.accounts}: IM {t.im_before:,.2f} -> {t.im_after:,.2f} ({t.im_change:+,.2f}), "
        f"MM {t.mm_before:,.2f} -> {t.mm_after:,.2f} ({t.mm_change:+,.2f}); "
        f"newly liquidatable {t.newly_liquidatable}, no longer {t.no_longer_liquidatable}"
    )


@params.command("apply")
@click.option("--proposal", "proposal_path", required=True, help="solvent.proposal/1 JSON file.")
@click.option("--params", "params_path", default=None, help="The current solvent.params/1 file (default: built-in).")
@click.option("--approved-by", required=True, help="Who approves the change (recorded in the audit log).")
@click.option("--log", "log_path", required=True, help="The audit log (solvent.audit/1 JSONL), appended to.")
@click.option("--out", "out_path", required=True, help="Where to write the new solvent.params/1 JSON.")
@click.option("--portfolio", "portfolio_path", default=None, help="The live book: its dry run goes into the log.")
@click.option("--market", "market_path", default=None, help="solvent.market/1 JSON file (with --portfolio).")
@click.option("--history", "history_path", default=None, help="solvent.history/1 file, for scenarios that need it.")
@_now_option
@_fail_cleanly
def params_apply(
    proposal_path: str,
    params_path: str | None,
    approved_by: str,
    log_path: str,
    out_path: str,
    portfolio_path: str | None,
    market_path: str | None,
    history_path: str | None,
    now: datetime | None,
) -> None:
    """Apply a proposal within its bounds and delays: write the new parameters and append the audit record."""
    if (portfolio_path is None) != (market_path is None):
        raise click.UsageError("--portfolio and --market go together")
    record, diff = apply_from_files(
        proposal_path,
        params_path,
        out_path,
        log_path,
        approved_by=approved_by,
        portfolio=portfolio_path,
        market=market_path,
        history=history_path,
        now=_utc(now),
    )
    if diff is not None:
        _echo_totals(diff)
    click.echo(
        f"applied #{record.seq}: params {record.params_before_sha256[:12]} -> {record.params_after_sha256[:12]}; "
        f"params: {out_path}; log: {log_path}"
    )


@main.command()
@click.option("--accounts", "n_accounts", default=DEMO_ACCOUNTS, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=DEMO_SEED, show_default=True, type=int)
@click.option("--out", "out_dir", default="solvent-demo", show_default=True, help="Folder for the report and inputs.")
@_fail_cleanly
@_terminate_cleanly
def demo(n_accounts: int, seed: int, out_dir: str) -> None:
    """Build a realistic synthetic venue on embedded defaults, margin it, summarise and report."""
    run_demo(out_dir, n_accounts, seed)


@main.command()
@click.option("--feed", "feed_path", required=True, help="solvent.feed/1 file (.ndjson or .parquet).")
@click.option("--accounts", "accounts_path", default=None, help="solvent.portfolio/1 file: the accounts at the start.")
@click.option("--market", "market_path", default=None, help="solvent.market/1 JSON file: the market at the start.")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@click.option("--history", "history_path", default=None, help="Price history (CSV/Parquet) for fhs/mc scenarios.")
@click.option("--insurance-fund", default=0.0, show_default=True, type=click.FloatRange(0.0), help="USD at the start.")
@click.option("--block-ms", default=None, type=click.IntRange(1), help="Batch records by time windows of N ms.")
@click.option("--state-in", default=None, help="Resume a stream saved with --state-out (instead of accounts/market).")
@click.option("--state-out", default=None, help="Save the final state here (solvent.state/1).")
@click.option("--events", "events_path", default="events.ndjson", show_default=True, help="Events file to write.")
@click.option("--summary", "summary_path", default="summary.json", show_default=True, help="Summary file to write.")
@click.option(
    "--screen",
    is_flag=True,
    help="Health screen: re-margin only the accounts a move can have changed (the same events, faster).",
)
@click.option(
    "--no-margin-calls",
    is_flag=True,
    help="No margin-call status (a perpetual DEX): healthy down to MM, then liquidatable.",
)
@click.option("--first-flags-only", is_flag=True, help="Publish each account's early flag once, its first.")
@click.option(
    "--follow",
    is_flag=True,
    help="Live: read NDJSON as it arrives (--feed - for stdin, or a growing file) until end of input or SIGTERM; "
    "events written as published (--events - for stdout).",
)
@_fail_cleanly
@_terminate_cleanly
def stream(
    feed_path: str,
    accounts_path: str | None,
    market_path: str | None,
    params_path: str | None,
    history_path: str | None,
    insurance_fund: float,
    block_ms: int | None,
    state_in: str | None,
    state_out: str | None,
    events_path: str,
    summary_path: str,
    screen: bool,
    no_margin_calls: bool,
    first_flags_only: bool,
    follow: bool,
) -> None:
    """Replay a feed through the streaming engine, or follow a live one: write its events (solvent.events/1) and a
    summary."""
    from solvent.stream.replay import ReplayFiles, replay  # the streaming engine loads only when it is asked for

    if state_in is None and (accounts_path is None or market_path is None):
        raise click.UsageError("give --accounts and --market, or --state-in")
    inputs = {
        "feed": None if follow or feed_path == "-" else feed_path,
        "accounts": accounts_path,
        "market": market_path,
    }
    inputs |= {"params": params_path, "history": history_path, "state_in": state_in}
    used = {"margin": load_params(params_path) if state_in is None else None}  # a saved state carries its own
    files = ReplayFiles(
        feed=feed_path,
        events=events_path,
        summary=summary_path,
        accounts=accounts_path,
        market=market_path,
        params=params_path,
        history=history_path,
        insurance_fund=insurance_fund,
        state_in=state_in,
        state_out=state_out,
        block_ms=block_ms,
        screen=screen,
        margin_calls=not no_margin_calls,
        reflag=not first_flags_only,
        provenance=provenance_of(inputs, used),
    )
    if follow:
        if feed_path.lower().endswith(".parquet"):
            raise click.UsageError("--follow reads NDJSON (a Parquet file is not written line by line)")
        followed = _follow(files)
        print_stream_summary(followed.summary, Console(stderr=events_path == "-"))
        if followed.unapplied_bytes:
            click.echo(f"stopped with a partial last line ({followed.unapplied_bytes} bytes) unapplied", err=True)
        return
    if "-" in (feed_path, events_path):
        raise click.UsageError("--feed - and --events - (standard input and output) need --follow")
    console = Console(stderr=True)
    with console.status("replaying the feed") as status:

        def progress(done: int, total: int) -> None:
            _stop_if_terminated()
            status.update(f"replaying the feed: {done:,} of {total:,} records")

        summary = replay(files, progress)
    print_stream_summary(summary, Console())
    click.echo(f"events: {events_path}\nsummary: {summary_path}" + (f"\nstate: {state_out}" if state_out else ""))


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs: a live command stops after the batch in hand (a
    normal end), instead of `_terminate_cleanly`'s exit."""
    stop = threading.Event()
    handlers = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _follow(files: ReplayFiles) -> Followed:
    """`stream --follow`: stdin or the file, events to stdout or the file (continued by a resumed follower)."""
    from solvent.stream.follow import follow

    with _stop_on_signals() as stop, contextlib.ExitStack() as stack:
        fd = sys.stdin.fileno() if files.feed == "-" else stack.enter_context(open(files.feed, "rb")).fileno()

        def open_events() -> IO[bytes]:
            if files.events == "-":
                return sys.stdout.buffer
            return stack.enter_context(open(files.events, "ab" if files.state_in else "wb"))

        return follow(files, fd, open_events, stop)


@main.command("nats-run")
@click.option("--accounts", "accounts_path", required=True, help="solvent.portfolio/1 file: the accounts at the start.")
@click.option("--market", "market_path", required=True, help="solvent.market/1 JSON file: the market at the start.")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@click.option("--insurance-fund", default=0.0, show_default=True, type=click.FloatRange(0.0), help="USD at the start.")
@click.option("--nats", "url", default="nats://127.0.0.1:4222", show_default=True, help="The NATS server.")
@click.option("--prefix", default="solvent", show_default=True, help="Subjects <prefix>.feed.> and <prefix>.events.")
@click.option("--durable", default="solvent-venue", show_default=True, help="The feed's durable consumer.")
@_fail_cleanly
def nats_run(
    accounts_path: str,
    market_path: str,
    params_path: str | None,
    insurance_fund: float,
    url: str,
    prefix: str,
    durable: str,
) -> None:
    """Run a venue on NATS JetStream: feed records from <prefix>.feed.>, events to <prefix>.events, until SIGTERM."""
    from solvent.service.nats import NatsConfig, serve_nats
    from solvent.service.venue import Venue

    venue = Venue.start(
        load_portfolio(accounts_path),
        load_market(market_path),
        load_params(params_path),
        insurance_fund=insurance_fund,
        portfolio_source=accounts_path,
        market_source=market_path,
    )
    with _stop_on_signals() as stop:
        serve_nats(venue, NatsConfig(url=url, prefix=prefix, durable=durable), stop)
    click.echo(f"stopped after input seq {venue.engine.last_input_seq}, event seq {venue.engine.next_seq - 1}")


@main.command()
@click.option("--feed", "feed_path", required=True, help="solvent.feed/1 file (.ndjson or .parquet).")
@click.option("--store", "store_url", required=True, help="memory://, sqlite:///FILE or postgresql://...[?schema=S].")
@click.option("--accounts", "accounts_path", required=True, help="solvent.portfolio/1 file: the accounts at the start.")
@click.option("--market", "market_path", required=True, help="solvent.market/1 JSON file: the market at the start.")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@click.option("--history", "history_path", default=None, help="Price history (CSV/Parquet) for fhs/mc scenarios.")
@click.option("--insurance-fund", default=0.0, show_default=True, type=click.FloatRange(0.0), help="USD at the start.")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1), help="Records per ingested batch.")
@click.option("--commit-every", default=1, show_default=True, type=click.IntRange(1), help="Batches per transaction.")
@click.option("--snapshot-every", default=None, type=click.IntRange(1), help="Snapshot the state every N records.")
@click.option("--summary", "summary_path", default="summary.json", show_default=True, help="Summary file to write.")
@_fail_cleanly
def ingest(
    feed_path: str,
    store_url: str,
    accounts_path: str,
    market_path: str,
    params_path: str | None,
    history_path: str | None,
    insurance_fund: float,
    batch: int,
    commit_every: int,
    snapshot_every: int | None,
    summary_path: str,
) -> None:
    """Feed a feed file into a durable venue: restored from its store (or started there), seen records skipped."""
    from solvent.service.ingest import IngestFiles, ingest_feed

    files = IngestFiles(
        feed=feed_path,
        store=store_url,
        accounts=accounts_path,
        market=market_path,
        params=params_path,
        history=history_path,
        insurance_fund=insurance_fund,
        batch=batch,
        commit_every=commit_every,
        snapshot_every=snapshot_every,
        summary=summary_path,
        provenance=provenance_of(
            {"feed": feed_path, "accounts": accounts_path, "market": market_path, "params": params_path}
            | {"history": history_path},
            {"margin": load_params(params_path)},
        ),
    )
    print_stream_summary(ingest_feed(files), Console())
    click.echo(f"store: {store_url}\nsummary: {summary_path}")


@main.command()
@click.option("--out", "out_dir", default="solvent-crash", show_default=True, help="Folder for the case's files.")
@click.option("--n-accounts", "n_accounts", default=2_000, show_default=True, type=click.IntRange(1))
@click.option("--step", "step_s", default=1.0, show_default=True, type=click.FloatRange(0.001), help="Seconds/quote.")
@click.option("--seed", default=DEMO_SEED, show_default=True, type=int)
@_fail_cleanly
@_terminate_cleanly
def crash(out_dir: str, n_accounts: int, step_s: float, seed: int) -> None:
    """Write issue 4's scripted crash (BTC -40% within an hour, its book thinning by half) for `solvent stream`."""
    from solvent.demo.crash import CrashScript, write_crash

    paths = write_crash(out_dir, n_accounts, CrashScript(step_s=step_s, seed=seed))
    for role, path in paths.items():
        click.echo(f"{role}: {path}")
    block_ms = max(1, round(step_s * 1000))
    click.echo(
        f"replay: solvent stream --accounts {paths['accounts']} --market {paths['market']} --params {paths['params']}"
        f" --history {paths['history']} --feed {paths['feed']} --block-ms {block_ms} --insurance-fund 1000000"
    )


@main.command()
@click.option("--history", "history_path", required=True, help="Price history (CSV/Parquet, solvent.history/1).")
@click.option(
    "--columns",
    "columns",
    default=None,
    help="Read --history as a foreign CSV: key=value pairs, e.g. 'skip=1,time=date,close=close,symbol=symbol'.",
)
@click.option("--from", "start", default=None, type=click.DateTime(), help="First date to backtest (UTC).")
@click.option("--to", "end", default=None, type=click.DateTime(), help="Last date whose MPOR closes (UTC).")
@click.option(
    "--windows",
    type=click.Choice(["independent", "overlapping"]),
    default="independent",
    show_default=True,
    help="Test every MPOR-th date (independent) or every date with overlap-adjusted bounds.",
)
@click.option(
    "--models",
    default=",".join(("static", "dydx", "vol_only", "multi")),
    show_default=True,
    help="Comma-separated: static, dydx, synthetix, drift, deribit, vol_only, multi.",
)
@click.option("--assets", default=None, help="Comma-separated assets, each backtested on its own dates (default: all).")
@click.option(
    "--portfolio",
    "portfolio_path",
    default=None,
    help="Also backtest this book's accounts (the dirty backtest; needs --market).",
)
@click.option("--market", "market_path", default=None, help="solvent.market/1 file the --portfolio is priced at.")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file for multi and vol_only.")
@_baseline_params_option
@click.option(
    "--out", "out_dir", default="solvent-backtest", show_default=True, help="Folder for report.html and summary.json."
)
@_fail_cleanly
@_terminate_cleanly
def backtest(
    history_path: str,
    columns: str | None,
    start: datetime | None,
    end: datetime | None,
    windows: Windows,
    models: str,
    assets: str | None,
    portfolio_path: str | None,
    market_path: str | None,
    params_path: str | None,
    baseline_params_path: str | None,
    out_dir: str,
) -> None:
    """Backtest margin models on a price history: coverage (Kupiec, Christoffersen, Basel zone), procyclicality;
    per-date output in dates.csv and dates.parquet; with --portfolio, each account of a book too."""
    from solvent.lab.backtest_dates import write_dates, write_portfolio
    from solvent.lab.margin_backtest import run_backtest
    from solvent.lab.models import check_models
    from solvent.lab.portfolio_backtest import run_portfolio_backtest
    from solvent.lab.report import write_backtest_report
    from solvent.market.history import parse_columns

    if (portfolio_path is None) != (market_path is None):
        raise InputError("--portfolio", "--market", "the portfolio backtest needs both")
    history = read_history(history_path, None if columns is None else parse_columns(columns))
    book = None if portfolio_path is None else load_portfolio(portfolio_path)
    market = None if market_path is None else load_market(market_path)
    first, last = _day(start), _day(end)
    dirty = None
    params = load_params(params_path)
    baselines = load_baseline_params(baseline_params_path)
    try:
        chosen = check_models([m.strip() for m in models.split(",") if m.strip()])
    except ValueError as error:
        raise InputError("--models", models, str(error)) from None
    names = history.assets if assets is None else tuple(a.strip() for a in assets.split(",") if a.strip())
    runs = []
    with RunProgress(len(names) + (book is not None), Console(stderr=True)) as progress:
        for name in names:
            progress.start(f"backtesting {name}")
            run = run_backtest(
                history,
                chosen,
                params,
                assets=(name,),
                source=history_path,
                baselines=baselines,
                start=first,
                end=last,
                windows=windows,
            )
            runs.append(run)
        if book is not None and market is not None:
            progress.start("backtesting the portfolio's accounts")
            dirty = run_portfolio_backtest(
                book,
                market,
                history,
                chosen,
                params,
                baselines=baselines,
                start=first,
                end=last,
                windows=windows,
                source=str(portfolio_path),
                market_source=str(market_path),
            )
    files = {"history": history_path, "portfolio": portfolio_path, "market": market_path, "params": params_path}
    provenance = provenance_of(
        files | {"baseline_params": baseline_params_path}, {"margin": params, "baseline": baselines}
    )
    report, summary = write_backtest_report(runs, out_dir, history_path, baseline_params_path, provenance)
    dates_csv, dates_parquet = write_dates(runs, out_dir, provenance)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # a pipe or a file: tables not truncated
    for run in runs:
        print_backtest(run.summary(), console)
    click.echo(f"report: {report}\nsummary: {summary}\ndates: {dates_csv}, {dates_parquet}")
    if dirty is not None:
        portfolio_json, portfolio_csv, portfolio_parquet = write_portfolio(dirty, out_dir, provenance)
        print_portfolio_backtest(dirty.summary(), console)
        click.echo(f"portfolio: {portfolio_json}, {portfolio_csv}, {portfolio_parquet}")


def _day(value: datetime | None) -> np.datetime64 | None:
    """A naive --from/--to datetime (UTC) as datetime64[s]."""
    import numpy as np

    return None if value is None else np.datetime64(value.replace(tzinfo=None), "s")


@main.command()
@click.option(
    "--episode",
    "episodes",
    default="all",
    show_default=True,
    help="Episode id(s), comma-separated, all, or none (with --synthetic or --history).",
)
@click.option(
    "--compare",
    "models",
    default="static,dydx,multi",
    show_default=True,
    help="Comma-separated models: static, dydx, synthetix, drift, deribit, multi; vol_only (with --history).",
)
@click.option("--accounts", "n_accounts", default=2_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--step",
    "step_s",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.001),
    help="Seconds between path points (and the margin cycle).",
)
@click.option("--seed", default=DEMO_SEED, show_default=True, type=int)
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file for multi and vol_only.")
@_baseline_params_option
@click.option("--insurance-fund", default=1_000_000.0, show_default=True, type=click.FloatRange(0.0))
@click.option("--synthetic", "synthetic_history", default=None, help="Also a synthetic market fitted to this history.")
@click.option("--hours", default=24.0, show_default=True, type=click.FloatRange(0.001), help="Of the synthetic market.")
@click.option(
    "--history",
    "history_path",
    default=None,
    help="Price history (CSV/Parquet, solvent.history/1): also backtest the compared models on it.",
)
@click.option(
    "--oracle-sources",
    "oracle_sources",
    default=0,
    show_default=True,
    type=int,
    help="Price every episode asset from N >= 2 oracle sources carrying the episode's oracle behaviour (0: none).",
)
@click.option(
    "--leverage",
    "leverages",
    default="10",
    show_default=True,
    help="Median leverage of the traders' intents (with --sweep: comma-separated, e.g. 3,5,10,20).",
)
@click.option(
    "--perps-only", is_flag=True, help="One perpetual per trader, USD collateral (no second perpetual, options, spot)."
)
@click.option("--intents", is_flag=True, help="Every model meets the intents as drawn, not opened within its own IM.")
@click.option("--sweep", is_flag=True, help="Episodes x models x --leverage x --steps x --apc, each run on its own.")
@click.option("--steps", default=None, help="With --sweep: comma-separated steps in seconds (default: --step).")
@click.option("--apc", "apc", default="on,off", show_default=True, help="With --sweep: on, off or on,off.")
@click.option("--ray-address", default=None, help="With --sweep: a Ray cluster's address (default: a local one).")
@click.option("--serial", is_flag=True, help="With --sweep: run in this process, not on Ray.")
@click.option(
    "--out", "out_dir", default="solvent-stress", show_default=True, help="Folder for report.html and summary.json."
)
@_fail_cleanly
@_terminate_cleanly
def stress(
    episodes: str,
    models: str,
    n_accounts: int,
    step_s: float,
    seed: int,
    params_path: str | None,
    baseline_params_path: str | None,
    insurance_fund: float,
    synthetic_history: str | None,
    hours: float,
    history_path: str | None,
    oracle_sources: int,
    leverages: str,
    perps_only: bool,
    intents: bool,
    sweep: bool,
    steps: str | None,
    apc: str,
    ray_address: str | None,
    serial: bool,
    out_dir: str,
) -> None:
    """Replay crash episodes (and, with --synthetic, a synthetic market's day) through the cascade simulator
    under several margin models (and, with --history, backtest them on a price history); write a report with
    the models compared across both."""
    from solvent.lab.cascade import CascadeConfig
    from solvent.lab.comparison import backtest_assets, run_history
    from solvent.lab.episodes import load_crashes
    from solvent.lab.report import write_stress_report
    from solvent.lab.stress import (
        COMPARED_MODELS,
        STREAM_MODELS,
        run_episode,
        run_synthetic,
        venue_assets,
        venue_population,
    )

    if oracle_sources < 0 or oracle_sources == 1:
        raise InputError("--oracle-sources", str(oracle_sources), "0 (a direct quote per asset) or 2 or more sources")
    if oracle_sources and synthetic_history is not None:
        raise InputError("--oracle-sources", str(oracle_sources), "a synthetic market has no oracle behaviour")
    library = load_crashes()
    known = {e.id: e for e in library.episodes}
    wanted = list(known) if episodes == "all" else [e.strip() for e in episodes.split(",") if e.strip() and e != "none"]
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise InputError("--episode", episodes, f"unknown episode {unknown[0]!r}: one of {', '.join(known)} or all")
    chosen = list(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
    bad = [m for m in chosen if m not in COMPARED_MODELS]
    if bad or not chosen:
        what = f"unknown model {bad[0]!r}" if bad else "no model"
        raise InputError("--compare", models, f"{what}: one of {', '.join(COMPARED_MODELS)}")
    streamed = [m for m in chosen if m in STREAM_MODELS]
    history_only = [m for m in chosen if m not in STREAM_MODELS]
    if history_only and history_path is None:
        raise InputError("--compare", models, f"{history_only[0]} is compared on a price history only: give --history")
    if not streamed and (wanted or synthetic_history is not None):
        raise InputError("--compare", models, f"no model the streaming engine runs: one of {', '.join(STREAM_MODELS)}")
    params = load_params(params_path)
    baselines = load_baseline_params(baseline_params_path)
    files = {"params": params_path, "baseline_params": baseline_params_path, "synthetic": synthetic_history}
    provenance = provenance_of(files | {"history": history_path}, {"margin": params, "baseline": baselines})
    medians = _positive_numbers("--leverage", leverages)
    if sweep:
        step_list = [step_s] if steps is None else _positive_numbers("--steps", steps)
        apc_list = [a.strip() for a in apc.split(",") if a.strip()]
        if not apc_list or any(a not in ("on", "off") for a in apc_list):
            raise InputError("--apc", apc, "on, off or on,off")
        _stress_sweep(
            wanted,
            streamed,
            medians,
            step_list,
            [a == "on" for a in apc_list],
            spec=venue_population(n_accounts, perps_only=perps_only),
            seed=seed,
            params=params,
            baselines=baselines,
            insurance_fund=insurance_fund,
            ray_address=ray_address,
            serial=serial,
            out_dir=out_dir,
            provenance=provenance,
        )
        return
    if len(medians) != 1:
        raise InputError("--leverage", leverages, "one median leverage (several with --sweep)")
    synthetic = read_history(synthetic_history) if synthetic_history is not None else None
    history = read_history(history_path) if history_path is not None else None
    spec = venue_population(n_accounts, medians[0], perps_only=perps_only)
    config = CascadeConfig(block_seconds=step_s, insurance_fund=insurance_fund, oracle_sources=oracle_sources)
    runs = []
    backtested = None
    traded = [a for name in wanted for a in venue_assets(known[name], library)[0]]
    traded += list(synthetic.assets) if synthetic is not None else []
    n_runs = len(streamed) * (len(wanted) + (synthetic is not None))
    n_runs += len(backtest_assets(history, traded)[0]) if history is not None else 0
    with RunProgress(n_runs, Console(stderr=True)) as progress:
        if history is not None and history_path is not None:  # first: a history it cannot run on fails early
            backtested = run_history(
                history,
                chosen,
                params,
                traded=traded,
                source=history_path,
                progress=lambda asset: progress.start(f"history: {asset}"),
                baselines=baselines,
            )
        for name in wanted:

            def show(model: str, episode: str = name) -> None:
                progress.start(f"{episode}: {model}")

            try:
                run = run_episode(
                    known[name],
                    streamed,
                    params,
                    spec=spec,
                    config=config,
                    step_seconds=step_s,
                    seed=seed,
                    library=library,
                    progress=show,
                    baselines=baselines,
                    fair=not intents,
                )
            except ValueError as error:  # a path the episode cannot be drawn on (a step too coarse for its move)
                raise InputError("--step", name, str(error)) from None
            runs.append(run)
        if synthetic is not None:
            runs.append(
                run_synthetic(
                    synthetic,
                    streamed,
                    params,
                    spec=spec,
                    config=config,
                    step_seconds=step_s,
                    hours=hours,
                    seed=seed,
                    progress=lambda model: progress.start(f"synthetic: {model}"),
                    baselines=baselines,
                    fair=not intents,
                )
            )
    settings: dict[str, Any] = {
        "accounts": n_accounts,
        "step_seconds": step_s,
        "seed": seed,
        "insurance_fund": insurance_fund,
        "leverage_median": medians[0],
        "population": "intents as drawn" if intents else "fair: each model opens the intents within its own IM",
        "mix": "perpetuals only" if perps_only else "venue mix",
    }
    if synthetic_history is not None:
        settings |= {"synthetic": synthetic_history, "hours": hours}
    if history_path is not None:
        settings |= {"history": history_path}
    if oracle_sources:
        settings |= {"oracle_sources": oracle_sources}
    if baseline_params_path is not None:
        settings |= {"baseline_params": baseline_params_path}
    report, summary = write_stress_report(
        runs, out_dir, settings, models=chosen, history=backtested, provenance=provenance
    )
    console = Console() if sys.stdout.isatty() else Console(width=200)  # a pipe or a file: tables not truncated
    for run in runs:
        print_stress(run.summary(), console)
        seconds = {model: round(result.wall_seconds, 1) for model, result in run.results.items()}
        click.echo(f"{run.episode}: simulated in {seconds} seconds", err=True)
    print_comparison(json.loads(summary.read_bytes())["comparison"], console)
    click.echo(f"report: {report}\nsummary: {summary}")


@main.command()
@click.option("--margin", "margin_path", default=None, help="solvent.margin/1 output (.json or .parquet) to commit.")
@click.option("--portfolio", "portfolio_path", default=None, help="Or margin this portfolio first (adds Cover 2).")
@click.option("--market", "market_path", default=None, help="solvent.market/1 JSON file (with --portfolio).")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (with --portfolio).")
@click.option("--history", "history_path", default=None, help="Price history for fhs/mc scenarios (with --portfolio).")
@click.option("--insurance-fund", default=0.0, show_default=True, type=click.FloatRange(0.0), help="USD.")
@click.option("--secret", "secret_path", default=None, help="File holding the salts' key in hex (default: random).")
@click.option("--proofs", "write_proofs", is_flag=True, help="Also write proofs.ndjson (every account, or --account).")
@click.option("--account", "accounts", multiple=True, help="Only this account's proof (repeatable; with --proofs).")
@click.option("--processes", type=click.IntRange(1), default=None, help="Hashing processes [default: one per core].")
@click.option("--out", "out_dir", default="solvent-proof", show_default=True, help="Folder to write into.")
@_fail_cleanly
@_terminate_cleanly
def prove(
    margin_path: str | None,
    portfolio_path: str | None,
    market_path: str | None,
    params_path: str | None,
    history_path: str | None,
    insurance_fund: float,
    secret_path: str | None,
    write_proofs: bool,
    accounts: tuple[str, ...],
    processes: int | None,
    out_dir: str,
) -> None:
    """Commit every account's equity, IM and MM to a Merkle-sum tree; write the solvency statement (root,
    totals, Cover 2 with --portfolio) and the tree, and with --proofs each account's inclusion proof."""
    if (margin_path is None) == (portfolio_path is None) or (portfolio_path is not None) != (market_path is not None):
        raise click.UsageError("give --margin FILE, or --portfolio FILE with --market FILE")
    if margin_path is not None and (params_path or history_path):
        raise click.UsageError("--params and --history go with --portfolio")
    if accounts and not write_proofs:
        raise click.UsageError("--account needs --proofs")
    secret = read_secret(secret_path)
    processes = default_processes() if processes is None else processes
    files = {"margin": margin_path, "portfolio": portfolio_path, "market": market_path, "params": params_path}
    used = {"margin": None if portfolio_path is None else load_params(params_path)}
    provenance = provenance_of(files | {"history": history_path}, used)  # not the secret: it stays private
    if margin_path is not None:
        tree, statement = prove_figures(read_margin_output(margin_path), secret, insurance_fund, None, processes)
    else:
        assert portfolio_path is not None and market_path is not None  # checked above
        tree, statement = prove_book(
            load_portfolio(portfolio_path),
            load_market(market_path),
            load_params(params_path),
            secret,
            insurance_fund,
            read_history(history_path) if history_path else None,
            processes=processes,
            portfolio_source=portfolio_path,
            market_source=market_path,
        )
    positions = proof_positions(tree, accounts) if write_proofs else None
    for path in write_outputs(out_dir, tree, statement, positions, provenance):
        click.echo(f"wrote {path}", err=True)
    for line in statement.summary_lines():
        click.echo(line)


@main.command()
@click.option("--proof", "proof_path", required=True, help="solvent.proof/1 JSON, or an NDJSON file of them.")
@click.option("--statement", "statement_path", default=None, help="The published solvent.solvency/1 statement.")
@click.option("--root", default=None, help="Or the published root alone (64 hex digits).")
@click.option("--account", default=None, help="The account the proof must be for (picks it from an NDJSON file).")
@_fail_cleanly
def verify(proof_path: str, statement_path: str | None, root: str | None, account: str | None) -> None:
    """Check one account's inclusion proof against a published root (and totals), without the book.
    Exit 0 when it verifies, 1 when it does not, 2 on unreadable input."""
    if (statement_path is None) == (root is None):
        raise click.UsageError("give --statement FILE or --root HEX")
    published, totals = published_root(statement_path, root)
    proof = load_proof(proof_path, account)
    verify_proof(proof, published, totals, account)
    click.echo(f"OK: account {proof.account!r} ({STATUSES[proof.status]}) is in the tree of root {published.hex()}")


@main.command("provenance")
@click.argument("path", metavar="FILE")
@click.option("--check", is_flag=True, help="Re-hash the inputs (paths as given, from here): exit 1 if one changed.")
@click.option("--json", "as_json", is_flag=True, help="Print the provenance as JSON.")
@_fail_cleanly
def provenance_command(path: str, check: bool, as_json: bool) -> None:
    """Print what made a solvent output (JSON, Parquet or HTML report): the engine, the digests of the parameters
    and of each input. With --check: exit 1 when an input is missing or its bytes differ now."""
    found = read_provenance(path)
    click.echo(msgspec.json.format(msgspec.json.encode(found), indent=2) if as_json else "\n".join(header_lines(found)))
    if check:
        changed = check_inputs(found)
        for role, what in changed.items():
            click.echo(f"changed: {role}: {what}", err=True)
        if changed:
            sys.exit(1)
        click.echo(f"OK: the {len(found.inputs)} inputs are unchanged", err=True)


def _positive_numbers(option: str, text: str) -> list[float]:
    """Comma-separated numbers > 0, or InputError naming the option."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(option, text, "comma-separated numbers expected") from None
    if not values or not all(math.isfinite(v) and v > 0.0 for v in values):
        raise InputError(option, text, "numbers > 0 expected")
    return values


def _stress_sweep(
    episodes: list[str],
    models: list[str],
    leverages: list[float],
    steps: list[float],
    apc: list[bool],
    *,
    spec: Any,
    seed: int,
    params: Any,
    baselines: Any,
    insurance_fund: float,
    ray_address: str | None,
    serial: bool,
    out_dir: str,
    provenance: Provenance,
) -> None:
    """`solvent stress --sweep`: every run on Ray (or serially), a line as each finishes, then the records."""
    from solvent.lab.sweep import APC_MODELS, SweepSettings, ray_available, run_sweep, sweep_runs, write_sweep

    if not episodes or not models:
        raise InputError("--sweep", ",".join(episodes), "needs an episode and a model the streaming engine runs")
    use_ray = not serial and ray_available()
    if not serial and not use_ray:
        click.echo("ray is not installed (pip install 'solvent[sweep]'): running serially", err=True)
    runs = sweep_runs(episodes, models, leverages, steps, apc)
    settings = SweepSettings(spec=spec, seed=seed, params=params, baselines=baselines, insurance_fund=insurance_fund)

    def done(k: int, total: int, run: Any, seconds: float) -> None:
        eta = seconds / k * (total - k)
        apc_text = ("APC on" if run.apc else "APC off") if run.model in APC_MODELS else "no APC"
        click.echo(
            f"[{k}/{total}] {run.episode} {run.model} {run.leverage_median:g}x {run.step_seconds:g} s "
            f"{apc_text} ({seconds:.0f} s elapsed, ~{eta:.0f} s left)",
            err=True,
        )

    try:
        records = run_sweep(runs, settings, use_ray=use_ray, ray_address=ray_address, progress=done)
    except ValueError as error:  # a path the episode cannot be drawn on (a step too coarse for its move)
        raise InputError("--steps", ",".join(f"{s:g}" for s in steps), str(error)) from None
    mix = {k: getattr(spec, k) for k in ("multi_asset_share", "option_share", "spot_collateral_share")}
    settings_used = {"accounts": spec.n_accounts, "seed": seed, "ray": use_ray, **mix}
    table, summary = write_sweep(records, out_dir, settings_used, provenance)
    click.echo(table.read_text(), nl=False)
    click.echo(f"table: {table}\nsummary: {summary}")


@main.command()
@click.option("--portfolio", "portfolio_path", default=None, help="solvent.portfolio/1 file (default: the demo venue).")
@click.option("--market", "market_path", default=None, help="solvent.market/1 JSON file (with --portfolio).")
@click.option("--params", "params_path", default=None, help="solvent.params/1 JSON file (default: built-in).")
@click.option("--history", "history_path", default=None, help="Price history (CSV/Parquet) for fhs/mc scenarios.")
@click.option(
    "--accounts", "demo_accounts", default=2_000, show_default=True, type=click.IntRange(1), help="Demo size."
)
@click.option("--insurance-fund", default=1_000_000.0, show_default=True, type=click.FloatRange(0.0), help="USD.")
@click.option(
    "--store", "store_url", default=DEFAULT_STORE, show_default=True, help="memory://, sqlite:///F, postgresql://"
)
@click.option("--keys", "keys_path", default="solvent-keys.json", show_default=True, help="solvent.keys/1 file.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--screen", is_flag=True, help="Health screen: a tick re-margins only the accounts near a boundary.")
@_fail_cleanly
def serve(
    portfolio_path: str | None,
    market_path: str | None,
    params_path: str | None,
    history_path: str | None,
    demo_accounts: int,
    insurance_fund: float,
    store_url: str,
    keys_path: str,
    host: str,
    port: int,
    screen: bool,
) -> None:
    """Run the HTTP API over a venue (docs/service.md). Without --portfolio/--market: the demo venue. A missing
    keys file is created with one operator key, printed once."""
    from solvent.service.serve import ServeOptions, first_key
    from solvent.service.serve import serve as run_service

    if (portfolio_path is None) != (market_path is None):
        raise click.UsageError("give --portfolio and --market together (or neither, for the demo venue)")
    created = first_key(keys_path)
    if created is not None:
        click.echo(f"created {keys_path} with an operator key (shown once): {created}", err=True)
    options = ServeOptions(
        portfolio=portfolio_path,
        market=market_path,
        params=params_path,
        history=history_path,
        demo_accounts=demo_accounts,
        insurance_fund=insurance_fund,
        store=store_url,
        keys=keys_path,
        host=host,
        port=port,
        screen=screen,
    )
    run_service(options)


@main.group()
def keys() -> None:
    """API keys for `solvent serve` (solvent.keys/1: names, roles, SHA-256 of each key)."""


@keys.command("add")
@click.option("--file", "keys_path", default="solvent-keys.json", show_default=True, help="solvent.keys/1 file.")
@click.option("--name", required=True, help="Who holds the key (shown in logs).")
@click.option("--role", type=click.Choice(["read", "trader", "feeder", "operator"]), required=True)
@click.option("--account", default=None, help="A trader's account.")
@_fail_cleanly
def keys_add(keys_path: str, name: str, role: str, account: str | None) -> None:
    """Make a key, store its hash, print the key (the only time it is shown)."""
    from solvent.service.auth import Role, add_key

    click.echo(add_key(keys_path, name, Role(role), account))
