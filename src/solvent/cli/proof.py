"""`solvent prove` (a Merkle-sum tree of every account's figures and the solvency statement) and `solvent verify`
(one account's inclusion proof against a published root), docs/proof.md."""

from __future__ import annotations

import click

from solvent.cli.guards import fail_cleanly, terminate_cleanly
from solvent.cli.options import (
    history_option,
    insurance_fund_option,
    market_option,
    params_option,
    portfolio_option,
)


@click.command()
@click.option("--margin", "margin_path", default=None, help="solvent.margin/1 output (.json or .parquet) to commit.")
@portfolio_option("Or margin this portfolio first (adds Cover 2).", required=False)
@market_option("solvent.market/1 JSON file (with --portfolio).", required=False)
@params_option("solvent.params/1 JSON file (with --portfolio).")
@history_option("Price history for fhs/mc scenarios (with --portfolio).")
@insurance_fund_option(help="USD.")
@click.option("--secret", "secret_path", default=None, help="File holding the salts' key in hex (default: random).")
@click.option("--proofs", "write_proofs", is_flag=True, help="Also write proofs.ndjson (every account, or --account).")
@click.option("--account", "accounts", multiple=True, help="Only this account's proof (repeatable; with --proofs).")
@click.option("--processes", type=click.IntRange(1), default=None, help="Hashing threads [default: one per core].")
@click.option(
    "--cap-levels",
    type=click.IntRange(0, 64),
    default=6,  # proof/cap.py DEFAULT_CAP_LEVELS, not imported here: --help loads no library
    show_default=True,
    help="Publish the tree's nodes this many levels below the root; proofs stop there (0: proofs to the root).",
)
@click.option("--out", "out_dir", default="solvent-proof", show_default=True, help="Folder to write into.")
@fail_cleanly
@terminate_cleanly
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
    cap_levels: int,
    out_dir: str,
) -> None:
    """Commit every account's equity, IM and MM to a Merkle-sum tree; write the solvency statement (root,
    totals, Cover 2 with --portfolio) and the tree, and with --proofs each account's inclusion proof."""
    from solvent.convert.inputs import load_params, load_portfolio
    from solvent.formats.io import load_market
    from solvent.formats.provenance import provenance_of
    from solvent.market.history import read_history
    from solvent.proof.files import read_margin_output, write_outputs
    from solvent.proof.prove import proof_positions, prove_book, prove_figures, read_secret
    from solvent.proof.tree import default_processes

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
        tree, statement = prove_figures(
            read_margin_output(margin_path), secret, insurance_fund, None, processes, cap_levels
        )
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
            cap_levels=cap_levels,
            portfolio_source=portfolio_path,
            market_source=market_path,
        )
    positions = proof_positions(tree, accounts) if write_proofs else None
    for path in write_outputs(out_dir, tree, statement, positions, provenance):
        click.echo(f"wrote {path}", err=True)
    for line in statement.summary_lines():
        click.echo(line)


@click.command()
@click.option("--proof", "proof_path", required=True, help="solvent.proof/3 (or /2, /1) JSON, or NDJSON of them.")
@click.option("--statement", "statement_path", default=None, help="The published solvent.solvency/2 (or /1) statement.")
@click.option("--root", default=None, help="Or the published root alone (64 hex digits).")
@click.option("--account", default=None, help="The account the proof must be for (picks it from an NDJSON file).")
@fail_cleanly
def verify(proof_path: str, statement_path: str | None, root: str | None, account: str | None) -> None:
    """Check one account's inclusion proof against a published root (and totals), without the book.
    A proof shorter than the tree's depth is checked against the statement's Merkle cap, the cap against the root.
    Exit 0 when it verifies, 1 when it does not, 2 on unreadable input."""
    from solvent.proof.cap import verify_cap, verify_proof_to_cap
    from solvent.proof.files import load_proof
    from solvent.proof.inclusion import verify_proof
    from solvent.proof.leaves import STATUSES
    from solvent.proof.prove import published_root

    if (statement_path is None) == (root is None):
        raise click.UsageError("give --statement FILE or --root HEX")
    published, totals, cap = published_root(statement_path, root)
    proof = load_proof(proof_path, account)
    if cap is None or len(proof.siblings) == cap.depth:  # a path to the root (solvent.proof/1, /2, or no cap)
        verify_proof(proof, published, totals, account)
    else:
        verify_cap(cap, published, totals)
        verify_proof_to_cap(proof, cap, account)
    click.echo(f"OK: account {proof.account!r} ({STATUSES[proof.status]}) is in the tree of root {published.hex()}")
