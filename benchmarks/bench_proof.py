"""The solvency proof (issue 16): `solvent prove` over 1,000,000 accounts, one proof's size, one verify.

Targets: prove <= 5 s on 2 cores; a proof <= ~1 KB; verify <= 1 ms. The venue is synthetic (equity, IM, MM
drawn per account, some below MM, some below zero), read from a solvent.margin/1 Parquet file as `solvent prove
--margin` reads it: in this process stage by stage (the hashing threads, then one), and as the command itself in
a fresh process (start-up, imports and the kernels' load from numba's cache included). CPU is user + system of
this process (its threads included) and of its finished children. Baseline, same run: the one-node-at-a-time
build (proof/hashing.py's `leaf_hash` and `node_hash` over hashlib, the verifier's own code, and the standard
library's HMAC for the salts), on the same accounts, which the compiled builder must match to the bit (checked
here too). Proof sizes: the body with the account id, the whole JSON line, and the fixed-width layout (8 bytes an
amount, status and a 4-byte index) for comparison, for a full path (cap 0: solvent.proof/2's) and under a Merkle
cap of k = 4, 6 (the default), 8 levels (solvent.proof/3), each with its statement's size, the cap's check
against the root (once per statement) and one proof's check against its cap node. Cover 2 (its stress needs
positions) is timed on bench_margin's venue.

Run: `.venv/bin/python benchmarks/bench_proof.py [--accounts 1000000] [--cover-accounts 100000]`.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from solvent.convert.results import RESULT_SCHEMA
from solvent.proof.cap import DEFAULT_CAP_LEVELS, merkle_cap, verify_cap, verify_proof_to_cap
from solvent.proof.encoding import decode_proof, encode_proof
from solvent.proof.files import load_proof, proof_document, read_margin_output, write_outputs
from solvent.proof.hashing import PAD_HASH, leaf_hash, node_hash
from solvent.proof.inclusion import InclusionProof, inclusion_proof, verify_proof
from solvent.proof.leaves import leaf_amounts, salt_of
from solvent.proof.prove import prove_figures
from solvent.proof.statement import solvency_statement
from solvent.proof.tree import SolvencyTree, default_processes

SECRET = bytes(range(32))


def margin_file(path: Path, n: int, seed: int = 0) -> None:
    """A solvent.margin/1 Parquet file with n accounts (only the columns `solvent prove` reads)."""
    rng = np.random.default_rng(seed)
    im = np.abs(rng.normal(5_000.0, 3_000.0, n))
    table = pa.table(
        {
            "account": pa.array([f"acct-{k:07d}" for k in range(n)]),
            "im": im,
            "mm": 0.5 * im,
            "equity": rng.normal(8_000.0, 9_000.0, n),
        }
    ).replace_schema_metadata({b"solvent.schema": RESULT_SCHEMA.encode()})
    pq.write_table(table, path)


def one_node_root(ids: list[str], equity: np.ndarray, im: np.ndarray, mm: np.ndarray) -> bytes:
    """The baseline: the same root, hashed one node at a time in Python."""
    leaves = leaf_amounts(equity, im, mm)
    amounts = leaves.amounts.tolist()
    status = leaves.status.tolist()
    nodes = sorted(
        (leaf_hash(salt_of(SECRET, a), amounts[k], status[k], a), tuple(amounts[k])) for k, a in enumerate(ids)
    )
    while len(nodes) > 1:
        if len(nodes) % 2:
            nodes.append((PAD_HASH, (0,) * 5))
        nodes = [
            (node_hash(lh, la, rh, ra), tuple(x + y for x, y in zip(la, ra, strict=True)))
            for (lh, la), (rh, ra) in zip(nodes[0::2], nodes[1::2], strict=True)
        ]
    return nodes[0][0]


def fixed_width_bytes(proof: InclusionProof) -> int:
    """The proof's size with every amount 8 bytes wide: id, salt, 5 amounts, status, a 4-byte index, then a
    32-byte hash and 5 amounts per sibling (what solvent.proof/2's varints compare against)."""
    return len(proof.account.encode()) + 32 + 40 + 1 + 4 + len(proof.siblings) * (32 + 40)


def median_us(check: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Median microseconds of `check(item)` over `items`."""
    times = []
    for item in items:
        start = time.perf_counter()
        check(item)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def cap_rows(table: Table, tree: SolvencyTree, picks: np.ndarray) -> None:
    """Per cap height: the proof's size, the statement's, the cap's check and one proof's check."""
    for levels in (0, 4, 6, 8):
        statement = solvency_statement(tree, 0.0, cap_levels=levels)
        size = len(msgspec.json.format(msgspec.json.encode(statement.to_dict()), indent=2)) + 1
        cap = merkle_cap(tree, levels)
        proofs = [inclusion_proof(tree, int(k), levels) for k in picks]
        body = statistics.mean(len(encode_proof(p)) + len(p.account.encode()) for p in proofs)
        line = statistics.mean(len(msgspec.json.encode(proof_document(p))) for p in proofs)
        cap_us = median_us(lambda c: verify_cap(c, tree.root, tree.totals), [cap] * 21)
        proof_us = median_us(lambda p, c=cap: verify_proof_to_cap(p, c), proofs)
        table.add_row(
            f"[b]cap {levels}: proof size[/b] (body + id)",
            f"[b]{body:,.0f} B[/b]",
            "",
            f"{line:,.0f} B as its JSON line; statement {size / 1e3:,.1f} kB ({len(cap.nodes)} cap nodes)",
        )
        table.add_row(
            f"cap {levels}: verify the cap, then one proof",
            f"{cap_us:,.0f} us + {proof_us:,.0f} us",
            "",
            "medians; the cap once per statement",
        )


def command_line(source: Path, folder: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `python -m solvent prove --margin` in a fresh process."""
    secret = folder / "secret.hex"
    secret.write_text(SECRET.hex())
    command = [sys.executable, "-m", "solvent", "prove", "--margin", str(source), "--secret", str(secret)]
    wall, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run([*command, "--out", str(folder / "cli")], check=True, capture_output=True)
    return time.perf_counter() - wall, cpu_seconds() - cpu


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its finished children."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--cover-accounts", type=int, default=100_000, help="Cover 2's venue (0: skip).")
    parser.add_argument("--processes", type=int, default=default_processes(), help="Hashing threads.")
    parser.add_argument("--proofs", type=int, default=2_000, help="Proofs extracted and verified.")
    parser.add_argument("--verify-all", action="store_true", help="Also extract and verify every account's proof.")
    args = parser.parse_args()
    table = Table(title=f"solvency proof, {args.accounts:,} accounts ({os.cpu_count()} cores)")
    load = os.getloadavg()[0]
    table.caption = f"load average at the start {load:.1f}: wall times on a busy machine are inflated"
    for column in ("what", "wall", "CPU", "note"):
        table.add_column(column, justify="left" if column in ("what", "note") else "right")

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "margin.parquet"
        margin_file(source, args.accounts)
        for processes in sorted({1, args.processes}, reverse=True):
            marks = [(time.perf_counter(), cpu_seconds())]
            figures = read_margin_output(source)
            marks.append((time.perf_counter(), cpu_seconds()))
            tree, statement = prove_figures(figures, SECRET, 0.0, processes=processes)
            marks.append((time.perf_counter(), cpu_seconds()))
            write_outputs(Path(folder) / "out", tree, statement)
            marks.append((time.perf_counter(), cpu_seconds()))
            sizes = sum(p.stat().st_size for p in (Path(folder) / "out").iterdir())
            stages = ("read the margin output", "amounts, salts, tree", "write the folder")
            for k, stage in enumerate(stages):
                wall, cpu = marks[k + 1][0] - marks[k][0], marks[k + 1][1] - marks[k][1]
                note = {0: "Parquet, 4 columns", 1: f"depth {tree.depth}", 2: f"{sizes / 1e6:,.0f} MB"}[k]
                table.add_row(f"  {stage}", f"{wall:.2f} s", f"{cpu:.2f} s", note)
            table.add_row(
                f"[b]prove, in this process, {processes} thread{'s' if processes > 1 else ''}[/b]",
                f"[b]{marks[-1][0] - marks[0][0]:.2f} s[/b]",
                f"{marks[-1][1] - marks[0][1]:.2f} s",
                "",
            )
        wall, cpu = command_line(source, Path(folder))
        table.add_row(
            f"[b]solvent prove --margin, a fresh process, {args.processes} threads[/b]",
            f"[b]{wall:.2f} s[/b]",
            f"{cpu:.2f} s",
            "target <= 5 s on 2 cores",
        )
        wall, cpu = time.perf_counter(), cpu_seconds()
        root = one_node_root(figures.account_ids, figures.equity, figures.im, figures.mm)
        base_wall, base_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        same = "same root" if root == tree.root else "ROOTS DIFFER"
        table.add_row("baseline: one node at a time (tree only)", f"{base_wall:.2f} s", f"{base_cpu:.2f} s", same)

        rng = np.random.default_rng(1)
        picks = rng.choice(args.accounts, size=min(args.proofs, args.accounts), replace=False)
        start = time.perf_counter()
        proofs = [inclusion_proof(tree, int(k)) for k in picks]
        extract = (time.perf_counter() - start) / len(proofs)
        times = []
        for proof in proofs:
            start = time.perf_counter()
            verify_proof(proof, tree.root, tree.totals)
            times.append(time.perf_counter() - start)
        from_file = []
        for proof in proofs[:200]:
            path = Path(folder) / "one.json"
            path.write_bytes(msgspec.json.encode(proof_document(proof)))
            start = time.perf_counter()
            verify_proof(load_proof(path), tree.root, tree.totals)
            from_file.append(time.perf_counter() - start)
        body = statistics.mean(len(encode_proof(p)) + len(p.account.encode()) for p in proofs)
        text = statistics.mean(len(msgspec.json.encode(proof_document(p))) for p in proofs)
        fixed = statistics.mean(fixed_width_bytes(p) for p in proofs)
        table.add_row("one proof from the tree", f"{1e6 * extract:.0f} us", "", "")
        if args.verify_all:
            start = time.perf_counter()
            cap = merkle_cap(tree, DEFAULT_CAP_LEVELS)
            verify_cap(cap, tree.root, tree.totals)
            for position in range(args.accounts):
                account = tree.account_ids[position]
                proof = decode_proof(account, encode_proof(inclusion_proof(tree, position, DEFAULT_CAP_LEVELS)))
                verify_proof_to_cap(proof, cap, account)
            table.add_row(
                f"every account's proof (cap {DEFAULT_CAP_LEVELS}) extracted, encoded, decoded, verified",
                f"{time.perf_counter() - start:.0f} s",
                "",
                "all verify",
            )
        table.add_row(
            "[b]verify one proof[/b]", f"[b]{1e6 * statistics.median(times):.0f} us[/b]", "", "median; target <= 1 ms"
        )
        table.add_row(
            "verify one proof from its file",
            f"{1e6 * statistics.median(from_file):.0f} us",
            "",
            "median; read, base64, decode, verify",
        )
        table.add_row(
            "[b]proof size, full path[/b]",
            f"[b]{body:,.0f} B[/b]",
            "",
            f"solvent.proof/2 body + id; {text:,.0f} B as its JSON line; {fixed:,.0f} B fixed-width",
        )
        cap_rows(table, tree, picks)

    if args.cover_accounts:
        from bench_margin import bench_book, bench_venue

        from solvent.engine.margin import margin_accounts, risk_context
        from solvent.market.state import build_market_state
        from solvent.params import MarginParams
        from solvent.proof.cover2 import cover2

        instruments, market = bench_venue()
        book = bench_book(instruments, args.cover_accounts)
        params = MarginParams()
        state = build_market_state(instruments, market, params)
        context = risk_context(state, params)
        equity = margin_accounts(book, state, params, context, predictive=False).equity
        start = time.perf_counter()
        result = cover2(book, context.arrays, context.scenarios.labels, equity, 1e6)
        table.add_row(
            f"Cover 2, {args.cover_accounts:,} accounts",
            f"{time.perf_counter() - start:.2f} s",
            "",
            f"{context.scenarios.n_scenarios:,} scenarios; loss {result.loss:,.0f} USD",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
