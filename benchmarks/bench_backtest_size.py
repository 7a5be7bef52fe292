"""How often each backtest rejects a correct model (its size), against the naive one in the same run.

A correct model: a random walk of i.i.d. returns (Gaussian, or Student-t(3) scaled the same way), margined
every day at the exact 99% quantile of its 2-day move; losses over a 2-day MPOR on every date. For each
window length T and return law, the share of paths whose Kupiec test rejects at 5%:

- naive: every (overlapping) date, chi-square p-value (the baseline);
- every 2nd date (non-overlapping windows), chi-square p-value;
- independent: every 2nd date, exact binomial law (`window_backtest`'s default);
- overlapping: every date, law simulated for overlapping Gaussian windows (`--windows overlapping`).

Run: PYTHONPATH=src python benchmarks/bench_backtest_size.py [paths]   (docs/model.md, "Overlapping windows")
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.special import ndtri

from solvent.lab.backtest import backtest, window_backtest

H, COVERAGE = 2, 0.99


def losses(law: str, paths: int, dates: int, seed: int) -> tuple[np.ndarray, float]:
    """(paths, dates) 2-day losses and the exact 99% quantile of a 2-day loss under `law`."""
    rng = np.random.default_rng(seed)
    if law == "gaussian":
        steps, quantile = rng.standard_normal((paths, dates + H - 1)), float(ndtri(COVERAGE)) * np.sqrt(H)
    else:
        steps = rng.standard_t(3, (paths, dates + H - 1))
        quantile = float(np.quantile(rng.standard_t(3, (4_000_000, H)).sum(axis=1), COVERAGE))
    walk = np.concatenate((np.zeros((paths, 1)), np.cumsum(steps, axis=1)), axis=1)
    return walk[:, H:] - walk[:, :-H], quantile


def main(paths: int) -> None:
    header = f"{'law':<12}{'dates':>7}{'naive':>9}{'2nd, chi2':>11}{'independent':>13}{'overlapping':>13}"
    print(f"{header}   ({paths} paths, 5% nominal)")
    for law in ("gaussian", "student-t3"):
        for dates in (500, 1000):
            loss, quantile = losses(law, paths, dates, seed=5)
            requirement = np.full(dates, quantile)
            naive = np.mean([backtest(requirement, x, COVERAGE).kupiec.reject for x in loss])
            every_2nd = np.mean([backtest(requirement[::H], x[::H], COVERAGE).kupiec.reject for x in loss])
            independent = np.mean([window_backtest(requirement, x, COVERAGE, H).kupiec.reject for x in loss])
            overlapping = np.mean(
                [window_backtest(requirement, x, COVERAGE, H, windows="overlapping").kupiec.reject for x in loss]
            )
            print(f"{law:<12}{dates:>7}{naive:>9.1%}{every_2nd:>11.1%}{independent:>13.1%}{overlapping:>13.1%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000)
