"""`solvent stress --sweep`: episodes x models x median leverage x step x APC on/off, each an independent run.

Every run is one model on one episode (`lab.stress.run_episode` with that model alone: the same seeded path,
books and fair population as in a comparison), so runs share nothing and can go anywhere. On Ray (an optional
extra, `pip install 'solvent[sweep]'`): a local cluster by default, `ray_address` for an existing one; each run
a Ray task, results gathered as they finish (`progress` told of each) and put back in the sweep's order, so the
records are those of the serial run, bit for bit (the same function on the same arguments; floats cross
Ray's pickling unchanged). Without Ray the same runs go one after another in this process.

APC "on": the multi-factor model with issue 12's buffer (`volatility.apc_mode` "buffer", released: drawn while
the margin rises, rebuilt in calm, `engine.apc`); "off": `apc_mode` "none". The venue rules charge no buffer.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from solvent._extras import requires_extra
from solvent.baselines import BaselineParams
from solvent.formats.io import write_text_atomic
from solvent.formats.provenance import Provenance, markdown_header, stamped
from solvent.lab.cascade import CascadeConfig, PopulationSpec
from solvent.lab.episodes import load_crashes
from solvent.lab.stress import run_episode
from solvent.params import MarginParams

#: The record fields a sweep table shows, in order (a run's totals, population and procyclicality).
COLUMNS: tuple[str, ...] = (
    "episode",
    "model",
    "leverage_median",
    "step_seconds",
    "apc",
    "bad_debt",
    "accounts_liquidated",
    "liquidated_notional",
    "capital_locked",
    "peak_to_trough",
    "max_step_rise",
    "max_hour_rise",
    "capped_accounts",
    "opened_notional_share",
)


#: The models the APC setting changes (those that charge the buffer).
APC_MODELS: tuple[str, ...] = ("multi",)


@dataclass(frozen=True)
class SweepRun:
    """One independent run: a model on an episode at a median leverage, a step, APC on or off."""

    episode: str
    model: str
    leverage_median: float
    step_seconds: float
    apc: bool


@dataclass(frozen=True)
class SweepSettings:
    """What every run of a sweep shares: the population (its median leverage set per run), the seed, the
    parameters (APC set per run), the venue rules' parameters and the insurance fund."""

    spec: PopulationSpec
    seed: int
    params: MarginParams
    baselines: BaselineParams
    insurance_fund: float


def sweep_runs(
    episodes: Sequence[str],
    models: Sequence[str],
    leverages: Sequence[float],
    steps: Sequence[float],
    apc: Sequence[bool],
) -> list[SweepRun]:
    """Every combination, episode-major (the order of the records)."""
    return [SweepRun(*combo) for combo in itertools.product(episodes, models, leverages, steps, apc)]


def with_apc(params: MarginParams, on: bool) -> MarginParams:
    """`params` with issue 12's released buffer (on) or no anti-procyclicality tool (off)."""
    volatility = msgspec.structs.replace(
        params.volatility, apc_mode="buffer" if on else "none", apc_buffer_release=True
    )
    return msgspec.structs.replace(params, volatility=volatility)


def run_one(run: SweepRun, settings: SweepSettings) -> dict[str, Any]:
    """One run's record (`COLUMNS`): its totals, the population its model opened and the procyclicality of its
    requirement (IM sampled every margin cycle: the largest one-cycle and one-hour rises)."""
    episode = {e.id: e for e in load_crashes().episodes}[run.episode]
    stress = run_episode(
        episode,
        [run.model],
        with_apc(settings.params, run.apc),
        spec=dataclasses.replace(settings.spec, leverage_median=run.leverage_median),
        config=CascadeConfig(
            block_seconds=run.step_seconds, im_sample_seconds=run.step_seconds, insurance_fund=settings.insurance_fund
        ),
        step_seconds=run.step_seconds,
        seed=settings.seed,
        baselines=settings.baselines,
    )
    record = stress.summary()["models"][run.model]
    cyc = record["procyclicality"] or {}
    rises = cyc.get("max_increase", {})
    hour = cyc.get("hour_samples")
    population = record["population"] or {}
    return {
        **dataclasses.asdict(run),
        "apc": "on" if run.apc else "off",
        "bad_debt": record["bad_debt"],
        "accounts_liquidated": record["accounts_liquidated"],
        "liquidated_notional": record["liquidated_notional"],
        "capital_locked": record["capital_locked"],
        "peak_to_trough": cyc.get("peak_to_trough"),
        "max_step_rise": rises.get("1"),
        "max_hour_rise": rises.get(str(hour)) if hour is not None else None,
        "capped_accounts": population.get("capped_accounts"),
        "opened_notional_share": population.get("opened_notional_share"),
        "liquidatable_at_start": record["liquidatable_at_start"],
        "procyclicality_without_apc": record["procyclicality_without_apc"],
    }


def run_sweep(
    runs: Sequence[SweepRun],
    settings: SweepSettings,
    *,
    use_ray: bool = True,
    ray_address: str | None = None,
    progress: Callable[[int, int, SweepRun, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Every run's record, in the order of `runs`: on Ray (local, or the cluster at `ray_address`) with
    `use_ray`, else one after another. A venue rule charges no anti-procyclicality buffer, so its APC "on" and
    "off" runs are one run (made once, recorded under both). `progress(done, total, run, seconds since the
    sweep began)` as each distinct run finishes. (A run's wall time is not in its record: the records are the
    same wherever they ran.)"""
    distinct = list(dict.fromkeys(_computed(run) for run in runs))
    if use_ray:
        made = _on_ray(distinct, settings, ray_address, progress)
    else:
        made = []
        begin = time.perf_counter()
        for k, run in enumerate(distinct):
            made.append(run_one(run, settings))
            if progress is not None:
                progress(k + 1, len(distinct), run, time.perf_counter() - begin)
    by_run = dict(zip(distinct, made, strict=True))
    return [{**by_run[_computed(run)], "apc": "on" if run.apc else "off"} for run in runs]


def _computed(run: SweepRun) -> SweepRun:
    """The run that gives `run`'s record: under a venue rule, its APC "off" twin."""
    return run if run.model in APC_MODELS else dataclasses.replace(run, apc=False)


def _on_ray(
    runs: Sequence[SweepRun],
    settings: SweepSettings,
    address: str | None,
    progress: Callable[[int, int, SweepRun, float], None] | None,
) -> list[dict[str, Any]]:
    with requires_extra("sweep"):
        import ray  # the optional extra: imported only here

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        task = ray.remote(run_one)
        shared = ray.put(settings)
        begin = time.perf_counter()
        pending = {task.remote(run, shared): k for k, run in enumerate(runs)}
        records: list[dict[str, Any] | None] = [None] * len(runs)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            records[k] = ray.get(ready[0])
            if progress is not None:
                progress(len(runs) - len(pending), len(runs), runs[k], time.perf_counter() - begin)
        return [r for r in records if r is not None]
    finally:
        if started:
            ray.shutdown()


def ray_available() -> bool:
    """Whether the optional extra (Ray) is installed."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _group_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["episode"], record["leverage_median"], record["step_seconds"], record["apc"])


def sweep_findings(records: Sequence[dict[str, Any]]) -> list[str]:
    """Plain sentences computed from the records, one per episode, median leverage, step and APC setting that
    compares two or more models: who leaves the least bad debt and locks the least capital, and where `multi`
    loses (more bad debt, more accounts liquidated, more capital locked, a larger peak-to-trough: ties within
    $1 or 10^-9 are no loss)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_group_key(record), []).append(record)
    out = []
    for (episode, leverage, step, apc), rows in groups.items():
        if len(rows) < 2:
            continue
        by = {r["model"]: r for r in rows}
        debt = min(by, key=lambda m: by[m]["bad_debt"])
        capital = min(by, key=lambda m: by[m]["capital_locked"])
        text = (
            f"{episode}, {leverage:g}x, {step:g} s, APC {apc}: least bad debt under {debt} "
            f"(${by[debt]['bad_debt']:,.0f}), least capital locked under {capital} "
            f"({by[capital]['capital_locked']:.1%})"
        )
        if "multi" in by:
            losses = _multi_losses(by)
            text += "; multi loses on " + "; ".join(losses) if losses else "; multi is not beaten"
        out.append(text + ".")
    return out


def _multi_losses(by: dict[str, dict[str, Any]]) -> list[str]:
    multi = by["multi"]
    criteria = (
        ("bad_debt", "bad debt", lambda v: f"${v:,.0f}", 1.0),
        ("accounts_liquidated", "accounts liquidated", str, 0.0),
        ("capital_locked", "capital locked", lambda v: f"{v:.1%}", 1e-9),
        ("peak_to_trough", "peak-to-trough", lambda v: f"{v:.2f}", 1e-9),
    )
    losses = []
    for field, what, show, tie in criteria:
        mine = multi[field]
        better = [
            f"{m} {show(r[field])}"
            for m, r in by.items()
            if m != "multi" and mine is not None and r[field] is not None and r[field] < mine - tie
        ]
        if better:
            losses.append(f"{what} ({show(mine)} vs " + ", ".join(better) + ")")
    return losses


def sweep_markdown(records: Sequence[dict[str, Any]]) -> str:
    """The records as a Markdown table (dollars with separators, shares as %), one row per run, in order."""
    header = (
        "| episode | model | leverage | step | APC | bad debt | liquidated | capital locked | peak/trough "
        "| max 1-step rise | max 1-hour rise | capped | opened |"
    )
    lines = [header, "|" + "---|" * 13]

    def share(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    for r in records:
        lines.append(
            f"| {r['episode']} | {r['model']} | {r['leverage_median']:g}x | {r['step_seconds']:g} s | {r['apc']} "
            f"| ${r['bad_debt']:,.0f} | {r['accounts_liquidated']} | {share(r['capital_locked'])} "
            f"| {'n/a' if r['peak_to_trough'] is None else format(r['peak_to_trough'], '.3f')} "
            f"| {share(r['max_step_rise'])} | {share(r['max_hour_rise'])} "
            f"| {r['capped_accounts']} | {share(r['opened_notional_share'])} |"
        )
    return "\n".join(lines) + "\n"


def write_sweep(
    records: Sequence[dict[str, Any]], out_dir: str, settings: dict[str, Any], provenance: Provenance | None = None
) -> tuple[Path, Path]:
    """(sweep.md: the table and the findings, sweep.json: settings, records, findings), written atomically; with a
    provenance, sweep.md opens with it and sweep.json carries it."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    findings = sweep_findings(records)
    table = folder / "sweep.md"
    text = "" if provenance is None else markdown_header(provenance)
    text += sweep_markdown(records) + "".join(f"\n- {line}" for line in findings) + ("\n" if findings else "")
    write_text_atomic(table, lambda handle: print(text, end="", file=handle))
    summary = folder / "sweep.json"
    payload = {"schema": "solvent.stress-sweep/1", "settings": settings, "records": list(records), "findings": findings}
    payload = stamped(payload, provenance)
    write_text_atomic(summary, lambda handle: print(json.dumps(payload, indent=1), file=handle))
    return table, summary
