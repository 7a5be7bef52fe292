"""The margin pass of `make bench` timed in CPU time beside wall time, for the code on PYTHONPATH: run it for two
trees back to back on a shared machine, where CPU time is the steadier figure (docs/benchmarks.md, "Issue 12").

Run: `PYTHONPATH=<tree>/src .venv/bin/python benchmarks/compare_margin.py 300000 <tree>` (the tree's own
benchmarks/bench_margin.py builds the venue and the book, so an older tree is measured on its own builder).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec
from bench_assets import best  # this tree's timer, imported before the measured tree's benchmarks come first

sys.path.insert(0, sys.argv[2] + "/benchmarks")
from bench_margin import bench_book, bench_venue, with_factor_inputs

from solvent.engine.margin import margin_book
from solvent.engine.riskarrays import build_risk_arrays
from solvent.market.state import build_market_state
from solvent.params import CollateralParams, MarginParams, McParams, ScenarioParams
from solvent.scenarios import generate_scenarios


def kernel_pass(csr: tuple[Any, Any, Any], arrays: Any) -> Callable[[], object]:
    """The kernel with its outputs reused: the Greeks on the held rows where the tree has them (`held_margins`),
    else the dense (N, A, 3) Greeks of the trees before them (`margins`)."""
    try:
        from solvent.engine.kernel import held_margins
        from solvent.factors.held import held_assets
    except ImportError:  # a tree before the held rows
        from solvent.engine.kernel import margins

        dense = margins(*csr, arrays, 0.99, "es")
        return lambda: margins(*csr, arrays, 0.99, "es", out=dense)
    held = held_assets(csr[0], arrays.instrument_asset[csr[1]], arrays.n_assets)
    margin, greeks = held_margins(*csr, arrays, 0.99, "es", held)
    return lambda: held_margins(*csr, arrays, 0.99, "es", held, out=margin, out_greeks=greeks)


def main() -> None:
    n = int(sys.argv[1])
    instruments, market = bench_venue()
    book = bench_book(instruments, n)
    params = MarginParams(scenarios=ScenarioParams(method="mc", mc=McParams(n_scenarios=256)))
    state = build_market_state(instruments, market, params)
    arrays = build_risk_arrays(state, generate_scenarios(state, params), 1e-6)
    full_state = build_market_state(instruments, with_factor_inputs(market), params)
    every = msgspec.structs.replace(params, collateral=CollateralParams(mode="haircut"))
    csr = (book.pos_offsets, book.pos_instrument, book.pos_quantity)
    kernel = kernel_pass(csr, arrays)
    kernel()  # warm-up (or cache load) of every kernel
    margin_book(book, full_state, params)
    margin_book(book, full_state, every)
    runs: list[tuple[str, Callable[[], object]]] = [
        ("kernel", kernel),
        ("margin_book default", lambda: margin_book(book, full_state, params)),
        ("margin_book every factor", lambda: margin_book(book, full_state, every)),
    ]
    for name, run in runs:
        wall, cpu = best(run, 3)
        print(f"{name}: wall {wall:.3f} s, cpu {cpu:.3f} s", flush=True)


if __name__ == "__main__":
    main()
