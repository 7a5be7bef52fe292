"""`make bench`: the margin pass on a 200-asset venue beside the 20-asset one, the same book (issue 14 item 4).

The book is `bench_margin.bench_book` with the same seed on both venues: the same accounts, position counts and
quantities, each position on an instrument drawn uniformly over the venue (~7 positions an account, so ~6 assets
held on 20 assets and ~7 on 200). Each case runs in a fresh subprocess, so that its peak RSS (ru_maxrss) is its
own: the venue, the book, the risk arrays and the margin pass. "margin pass" is `margin_accounts` on prepared risk
arrays (best of `--repeats` after a warm-up), "margin_book" the whole call, risk arrays included (best of up to 2);
wall and CPU time side by side (the machine is shared: CPU time is the steadier figure).

Methods: `grid` (the default), `mc` (256 draws with the default correlation stress: one group of the same draws
per asset, so 256 x 201 scenarios on 200 assets) and `mc0` (256 draws, stress 0: the joint group alone).
Target: 200 assets within 1.2x the time and memory of 20 assets, grid and Monte Carlo, peak <= 2 GB at 1,000,000
accounts. Run: `.venv/bin/python benchmarks/bench_assets.py --accounts 1000000` (`make bench`).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def best(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(fastest wall time, fastest CPU time) over `repeats` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def case(method: str, n_assets: int, n_accounts: int, repeats: int) -> dict[str, float]:
    """One case's figures (run inside its own subprocess)."""
    sys.path.insert(0, str(HERE))
    from bench_margin import bench_book, bench_venue, with_factor_inputs

    from solvent.engine.margin import margin_book
    from solvent.market.state import build_market_state
    from solvent.params import MarginParams, McParams, ScenarioParams

    instruments, market = bench_venue(n_assets)
    if method == "grid":
        params = MarginParams()
    else:  # "mc": the default correlation stress (a group per asset); "mc0": the joint draws alone
        mc = McParams(n_scenarios=256, stress_weight=0.0 if method == "mc0" else McParams().stress_weight)
        params = MarginParams(scenarios=ScenarioParams(method="mc", mc=mc))
    state = build_market_state(instruments, with_factor_inputs(market), params)
    book = bench_book(instruments, n_accounts)
    figures = pass_figures(book, state, params, repeats)  # its risk arrays are freed on return
    book_wall, book_cpu = best(lambda: margin_book(book, state, params), min(repeats, 2))
    return {
        **figures,
        "book_wall_s": book_wall,
        "book_cpu_s": book_cpu,
        "positions": float(book.pos_offsets[-1]),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def pass_figures(book: Any, state: Any, params: Any, repeats: int) -> dict[str, float]:
    """The risk arrays' build time and the margin pass on them (`margin_accounts`), after a warm-up."""
    from solvent.engine.margin import margin_accounts, risk_context

    start = time.perf_counter()
    context = risk_context(state, params)
    context_s = time.perf_counter() - start
    margin_accounts(book, state, params, context)  # warm-up (or cache load) of every kernel
    wall, cpu = best(lambda: margin_accounts(book, state, params, context), repeats)
    return {"scenarios": float(context.scenarios.n_scenarios), "context_s": context_s, "wall_s": wall, "cpu_s": cpu}


def run_case(method: str, n_assets: int, n_accounts: int, repeats: int) -> dict[str, float]:
    """`case` in a fresh interpreter: its peak RSS is its own."""
    command = [sys.executable, __file__, "--case", f"{method},{n_assets}", "--accounts", str(n_accounts)]
    command += ["--repeats", str(repeats)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--assets", default="20,200", help="the venues' asset counts, the first the baseline")
    parser.add_argument(
        "--methods", default="grid,mc0,mc", help="grid; mc (256 draws, the default stress groups); mc0 (stress 0)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # method,assets: one case, figures as JSON
    args = parser.parse_args()
    if args.case:
        method, n_assets = args.case.split(",")
        print(json.dumps(case(method, int(n_assets), args.accounts, args.repeats)))
        return
    console = Console(width=150)
    assets = [int(a) for a in args.assets.split(",")]
    table = Table(title=f"margin pass, {args.accounts:,} accounts: {' vs '.join(map(str, assets))} assets")
    columns = (
        "method", "assets", "scenarios", "risk arrays", "margin pass", "margin_book", "peak RSS",
        "vs first: pass CPU / margin_book CPU / RSS",
    )  # fmt: skip
    for name in columns:
        table.add_column(name)
    for method in args.methods.split(","):
        base: dict[str, float] | None = None
        for n_assets in assets:
            console.print(f"{method}, {n_assets} assets ...")
            f = run_case(method, n_assets, args.accounts, args.repeats)
            base = base or f
            ratio = (
                f"{f['cpu_s'] / base['cpu_s']:.2f}x / {f['book_cpu_s'] / base['book_cpu_s']:.2f}x / "
                f"{f['peak_gb'] / base['peak_gb']:.2f}x"
            )
            table.add_row(
                method,
                str(n_assets),
                f"{f['scenarios']:,.0f}",
                f"{f['context_s']:.2f} s",
                f"{f['wall_s']:.3f} s (CPU {f['cpu_s']:.3f})",
                f"{f['book_wall_s']:.3f} s (CPU {f['book_cpu_s']:.3f})",
                f"{f['peak_gb']:.2f} GB",
                ratio,
            )
    console.print(table)
    console.print("target: 200 assets within 1.2x of 20 (time and memory), peak <= 2 GB at 1,000,000 accounts")


if __name__ == "__main__":
    main()
