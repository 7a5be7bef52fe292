"""`solvent demo` (a synthetic venue, margined and reported) and `solvent crash` (issue 4's scripted crash case)."""

from __future__ import annotations

import click

from solvent.cli.guards import fail_cleanly, terminate_cleanly
from solvent.cli.options import seed_option
from solvent.demo.defaults import DEMO_ACCOUNTS


@click.command()
@click.option("--accounts", "n_accounts", default=DEMO_ACCOUNTS, show_default=True, type=click.IntRange(1))
@seed_option()
@click.option("--out", "out_dir", default="solvent-demo", show_default=True, help="Folder for the report and inputs.")
@fail_cleanly
@terminate_cleanly
def demo(n_accounts: int, seed: int, out_dir: str) -> None:
    """Build a realistic synthetic venue on embedded defaults, margin it, summarise and report."""
    from solvent.demo.run import run_demo

    run_demo(out_dir, n_accounts, seed)


@click.command()
@click.option("--out", "out_dir", default="solvent-crash", show_default=True, help="Folder for the case's files.")
@click.option("--n-accounts", "n_accounts", default=2_000, show_default=True, type=click.IntRange(1))
@click.option("--step", "step_s", default=1.0, show_default=True, type=click.FloatRange(0.001), help="Seconds/quote.")
@seed_option()
@fail_cleanly
@terminate_cleanly
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
