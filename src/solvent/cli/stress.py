"""`solvent stress`: crash episodes (and a synthetic market's day) replayed through the cascade simulator under
several margin models, with --history a backtest of the same models, with --sweep a grid of runs (on Ray)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from solvent.cli.guards import fail_cleanly, terminate_cleanly
from solvent.cli.options import baseline_params_option, insurance_fund_option, params_option, seed_option
from solvent.errors import InputError


@click.command()
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
@seed_option()
@params_option("solvent.params/1 JSON file for multi and vol_only.")
@baseline_params_option()
@insurance_fund_option(1_000_000.0, None)
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
@fail_cleanly
@terminate_cleanly
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
    from rich.console import Console

    from solvent.console import RunProgress, print_comparison, print_stress
    from solvent.convert.inputs import load_baseline_params, load_params
    from solvent.formats.provenance import provenance_of
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
    from solvent.market.history import read_history

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
    provenance: Any,
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
