"""The command line's start (issue 14 item 7): `solvent --help`, `solvent margin --help`, and `solvent margin` on the
README's example files with a warm numba cache, each a fresh process, beside `python -c pass` in the same run.

Targets: `--help` <= 0.3 s; the warm `solvent margin` on the examples <= 1 s. Each command runs --repeat times
(after one untimed run that warms numba's cache, Python's bytecode cache and the file-system cache); the table gives
the best and the median wall time and the CPU time (user + system) of the best run. With --compare-src DIR, the same
commands are also timed on another checkout's src folder (e.g. one from before the lazy CLI), in the same run.

Warm means as an installed package runs: the commands read compiled bytecode, which they write on the untimed run
into a temporary PYTHONPYCACHEPREFIX (so that neither checkout is written to), even where the environment sets
PYTHONDONTWRITEBYTECODE (a checkout that cannot write it compiles solvent's modules at each start: 0.1 s more).

Run: `.venv/bin/python benchmarks/bench_cli.py [--repeat 7] [--compare-src /path/to/other/src]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HELP_TARGET_S = 0.3
MARGIN_TARGET_S = 1.0

#: (label, arguments after the interpreter, target seconds or None for the baseline).
COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", ["-c", "pass"], None),
    ("solvent --help", ["-m", "solvent", "--help"], HELP_TARGET_S),
    ("solvent margin --help", ["-m", "solvent", "margin", "--help"], HELP_TARGET_S),
    (
        "solvent margin (examples, warm)",
        [
            "-m",
            "solvent",
            "margin",
            "--portfolio",
            str(EXAMPLES / "portfolio.json"),
            "--market",
            str(EXAMPLES / "market.json"),
        ],
        MARGIN_TARGET_S,
    ),
)


@dataclass(frozen=True)
class Timing:
    best_wall: float
    median_wall: float
    best_cpu: float


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def environment(src: Path, pycache: Path) -> dict[str, str]:
    """The commands' environment: `src` on PYTHONPATH, bytecode read from and written to `pycache`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPATH": str(src), "PYTHONPYCACHEPREFIX": str(pycache)}


def timed(arguments: list[str], env: dict[str, str], repeat: int) -> Timing:
    """Run `python ARGUMENTS` in `env`, once untimed, then `repeat` times."""
    command = [sys.executable, *arguments]
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)  # warms numba's cache and the disk's
    runs = []
    for _ in range(repeat):
        cpu, start = children_cpu(), time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        runs.append((time.perf_counter() - start, children_cpu() - cpu))
    wall, cpu = min(runs)
    return Timing(best_wall=wall, median_wall=statistics.median(w for w, _ in runs), best_cpu=cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="Timed runs per command (best and median reported).")
    parser.add_argument("--compare-src", type=Path, default=None, help="Another checkout's src folder, timed too.")
    args = parser.parse_args()
    sources = [("this checkout", ROOT / "src")]
    if args.compare_src is not None:
        sources.append((str(args.compare_src), args.compare_src.resolve()))
    table = Table(title=f"the CLI's start: best of {args.repeat} fresh processes (wall and CPU seconds)")
    for column in ("src", "command", "best wall", "median wall", "CPU (best run)", "over `pass`", "target", "met"):
        table.add_column(column, justify="left" if column in ("src", "command") else "right")
    with tempfile.TemporaryDirectory(prefix="solvent-bench-cli-") as pycache:
        for name, src in sources:
            baseline = None
            for label, arguments, target in COMMANDS:
                timing = timed(arguments, environment(src, Path(pycache)), args.repeat)
                baseline = timing.best_wall if baseline is None else baseline
                table.add_row(
                    name,
                    label,
                    f"{timing.best_wall:.3f}",
                    f"{timing.median_wall:.3f}",
                    f"{timing.best_cpu:.3f}",
                    f"{timing.best_wall - baseline:+.3f}",
                    "" if target is None else f"<= {target:g}",
                    "" if target is None else ("yes" if timing.best_wall <= target else "NO"),
                )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
