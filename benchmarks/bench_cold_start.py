"""Install footprint and cold start (issue 14 item 11): for each venv given, the size of its site-packages and its
largest packages, then the wall and CPU time of starting solvent, beside baselines measured in the same run (these
2-core machines are noisy: compare within a run, not across runs).

Rows, each the median of `--repeat` fresh processes:
- `python -c pass`: the interpreter alone (the baseline of the import rows);
- `import solvent` (lazy: nothing heavy loads), `import solvent.api` (the engine: numba, scipy, pyarrow), and
  `solvent --help`;
- `solvent margin` on examples/ with numba's cache warm (the baseline of the next row), and with an empty cache
  (a fresh NUMBA_CACHE_DIR each time): the first run after an install compiles the kernels it calls.

Standard library only, so any Python runs it against any venv. Not in `make bench`: it needs venvs of its own,
e.g. a core-only one (`python3 -m venv /tmp/core && /tmp/core/bin/pip install -c constraints.txt .`).
Run: `python3 benchmarks/bench_cold_start.py --venv /tmp/core --venv .venv`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def megabytes(path: Path) -> int:
    """Disk use of `path` in MiB, as `du -sm` counts it."""
    return int(subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def site_packages(venv: Path) -> Path:
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())


def largest(site: Path, n: int) -> list[tuple[str, int]]:
    """The `n` largest top-level entries of `site` (packages and their bundled libraries), dist-info left out."""
    sizes = [(p.name, megabytes(p)) for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")]
    return sorted(sizes, key=lambda item: -item[1])[:n]


def timed(command: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system, the child's) seconds of one run of `command`, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_run(command: Sequence[str], repeat: int, cwd: Path, fresh_cache: bool, cache: Path) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as cold:
            env = dict(os.environ, NUMBA_CACHE_DIR=cold if fresh_cache else str(cache))
            runs.append(timed(command, env, cwd))
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def bench(venv: Path, repeat: int, top: int) -> None:
    site = site_packages(venv)
    python, solvent = str(venv / "bin" / "python"), str(venv / "bin" / "solvent")
    print(f"\n### {venv}\n\nsite-packages: {megabytes(site)} MiB ({site})\n")
    print("| largest package | MiB |\n|---|---|")
    for name, size in largest(site, top):
        print(f"| {name} | {size} |")
    margin = [solvent, "margin", "--portfolio", str(EXAMPLES / "portfolio.json"), "--market",
              str(EXAMPLES / "market.json")]  # fmt: skip
    rows: list[tuple[str, Sequence[str], bool, str | None]] = [
        ("python -c pass", [python, "-c", "pass"], False, None),
        ("import solvent", [python, "-c", "import solvent"], False, "python -c pass"),
        ("import solvent.api", [python, "-c", "import solvent.api"], False, "python -c pass"),
        ("solvent --help", [solvent, "--help"], False, "python -c pass"),
        ("solvent margin, numba cache warm", margin, False, None),
        ("solvent margin, numba cache empty", margin, True, "solvent margin, numba cache warm"),
    ]
    print(f"\n| {repeat} runs each | median wall s | median CPU s | vs baseline |\n|---|---|---|---|")
    measured: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="numba-warm-") as warm, tempfile.TemporaryDirectory() as cwd:
        subprocess.run(margin, env=dict(os.environ, NUMBA_CACHE_DIR=warm), cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip  # fills the warm cache
        for name, command, fresh, baseline in rows:
            wall, cpu = median_run(command, repeat, Path(cwd), fresh, Path(warm))
            measured[name] = wall
            ratio = "1.00x (baseline)" if baseline is None else f"{wall / measured[baseline]:.2f}x"
            print(f"| {name} | {wall:.2f} | {cpu:.2f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", action="append", required=True, type=Path, help="A venv with solvent installed.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per row (median).")
    parser.add_argument("--top", type=int, default=8, help="Largest packages listed per venv.")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    for venv in args.venv:
        bench(venv.resolve(), args.repeat, args.top)


if __name__ == "__main__":
    main()
