"""The HTTP service under load (issue 15, "Performance"): margin queries and what-ifs over loopback while a
feeder posts a price tick (one quote per oracle source of one asset) every 100 ms.

Starts `solvent serve --screen` on the demo venue in a subprocess (granian in the HTTP process, the venue in its
engine process), then drives it from this process with a small asyncio HTTP/1.1 client over keep-alive connections
(a Python client such as httpx would be the bottleneck here). Phases, each `--seconds` long:

- the client alone: GET /health (no work on the server: what the client and the server's HTTP layer cost);
- queries, no ticks: GET /accounts/<random account> (the published copy of its full figures, no lock);
- queries + ticks: the same, with a tick every 100 ms (the ticks' own latency on a line of its own);
- fresh queries + ticks: GET /accounts/<random account>?fresh=true (margined now, under the venue's lock);
- published figures + ticks: GET /figures/<random account> (IM, MM, equity, status as of the last batch: no lock);
- what-if + ticks: POST /what-if on the trader's account (on the state after the last batch, no lock).

Each row gives the server's CPU seconds (user + system, all threads, from /proc: the HTTP process's, and its engine
process's, the server's child) and this client's over the phase beside the wall clock: all share the machine's
cores.

By default each connection sends its next request when the last is answered (closed loop: the most the server
answers); `--rate R` offers R requests a second in all on a fixed schedule instead (open loop, the latency counted
from when each request was due), the issue's "2,000 requests/s with p99 <= 5 ms" as stated. The what-if phase is
always one connection, closed loop.

Run: PYTHONPATH=src python benchmarks/bench_service.py [--accounts 100000] [--seconds 10] [--connections 8]
[--rate 0] [--batch-threads 0] [--engine-niceness -1] [--phases health,queries,ticks,fresh,figures,what-if]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from solvent.demo.run import ORACLE_SOURCES
from solvent.service.auth import Role, add_key

TICK_S = 0.1


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, key: str, body: bytes = b"", kind: str = "") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        if body:
            head += f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


class Feeder:
    """A tick every TICK_S: one oracle source (in turn) quotes one asset (BTC and ETH alternating), a small random
    walk; each tick is one batch that re-aggregates the asset's sources and re-margins the accounts exposed."""

    def __init__(self, port: int, key: str, prices: dict[str, float], start: datetime) -> None:
        self.port, self.key, self.prices, self.time = port, key, prices, start
        self.seq = 1_000_000
        self.latency: list[float] = []
        self.errors = 0
        self.rng = random.Random(1)

    async def run(self, stop: asyncio.Event) -> None:
        connection = await Connection.open(self.port)
        assets = [a for a in ("BTC", "ETH") if a in self.prices]
        k = 0
        while not stop.is_set():
            begin = time.perf_counter()
            asset = assets[k % len(assets)]
            self.prices[asset] *= math.exp(self.rng.gauss(0.0, 0.0005))
            self.time += timedelta(milliseconds=100)
            self.seq += 1
            source = ORACLE_SOURCES[k % len(ORACLE_SOURCES)]
            quote = {"type": "quote", "seq": self.seq, "time": self.time.isoformat(), "asset": asset}
            body = json.dumps({**quote, "source": source, "price": self.prices[asset]}).encode()
            status, _ = await connection.request("POST", "/records", self.key, body, "application/json")
            self.errors += status != 200
            self.latency.append(time.perf_counter() - begin)
            k += 1
            await asyncio.sleep(max(0.0, TICK_S - (time.perf_counter() - begin)))


async def load(
    port: int,
    seconds: float,
    connections: int,
    make: list[tuple[str, str, str, bytes]],
    feeder: Feeder | None,
    rate: float = 0.0,
) -> tuple[list[float], int]:
    """Run `connections` clients for `seconds`, each sending requests from `make` round-robin; latencies, errors.
    `rate` > 0: open loop, `rate` requests a second in all on a fixed schedule, each latency counted from the time
    its request was due (a late server delays the requests behind it, and they count the wait); 0: each client
    sends its next request as soon as the last is answered."""
    latency: list[float] = []
    errors = 0
    stop = asyncio.Event()
    start = time.perf_counter()

    async def client(offset: int) -> None:
        nonlocal errors
        connection = await Connection.open(port)
        k = offset
        due = start + offset / rate if rate else 0.0
        while not stop.is_set():
            method, path, key, body = make[k % len(make)]
            if rate:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                begin, due = due, due + connections / rate
            else:
                begin = time.perf_counter()
            status, _ = await connection.request(method, path, key, body, "application/json")
            latency.append(time.perf_counter() - begin)
            errors += status != 200
            k += connections

    tasks = [asyncio.create_task(client(c)) for c in range(connections)]
    if feeder is not None:
        tasks.append(asyncio.create_task(feeder.run(stop)))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return latency, errors


def _row(name: str, latency: list[float], errors: int, seconds: float, cpu: tuple[float, float, float] | None) -> str:
    ms = np.array(latency) * 1000.0
    used = "| | |" if cpu is None else f"| {cpu[0]:.1f} | {cpu[1]:.1f} | {cpu[2]:.1f} |"
    return (
        f"| {name} | {len(ms):,} | {len(ms) / seconds:,.0f} | {np.median(ms):.2f} | {np.quantile(ms, 0.99):.2f} "
        f"| {ms.max():.1f} | {errors} {used}"
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the server's engine process; multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except OSError:  # gone meanwhile
            continue
    return found


def _server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the HTTP process `pid` and of its child processes (the engine's)."""
    return _cpu_seconds(pid), sum(_cpu_seconds(child) for child in _children(pid))


class Phase:
    """Runs load phases against the server, timing the server's and this client's CPU over each."""

    def __init__(self, port: int, pid: int, seconds: float, connections: int, rate: float) -> None:
        self.port, self.pid, self.seconds, self.connections, self.rate = port, pid, seconds, connections, rate
        self.rows: list[str] = []

    def run(
        self, name: str, make: list[tuple[str, str, str, bytes]], feeder: Feeder | None, connections: int = 0
    ) -> None:
        """One phase; `connections` given (the what-if's one): a closed loop on that many, whatever the rate."""
        server, client = _server_cpu(self.pid), time.process_time()
        rate = 0.0 if connections else self.rate
        latency, errors = asyncio.run(
            load(self.port, self.seconds, connections or self.connections, make, feeder, rate)
        )
        http, engine = _server_cpu(self.pid)
        cpu = (http - server[0], engine - server[1], time.process_time() - client)
        self.rows.append(_row(name, latency, errors, self.seconds, cpu))
        if feeder is not None:
            ticks = _row("  the ticks themselves (POST /records)", feeder.latency, feeder.errors, self.seconds, None)
            self.rows.append(ticks)


def _get(port: int, path: str, key: str) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--port", type=int, default=18_765)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s offered in all, open loop (0: each connection closed loop)"
    )
    parser.add_argument(
        "--batch-threads", type=int, default=0, help="the engine process's batch threads (0: the server's default)"
    )
    parser.add_argument(
        "--engine-niceness", type=int, default=-1, help="the engine process's added niceness (-1: the server's default)"
    )
    parser.add_argument(
        "--phases", default="health,queries,ticks,fresh,figures,what-if", help="which phases to run, comma-separated"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="solvent-bench-"))
    keys = folder / "keys.json"
    reader, feeder_key = add_key(keys, "bench-read", Role.READ), add_key(keys, "bench-feed", Role.FEEDER)
    width = len(str(args.accounts))  # the demo venue's account ids: acct-000042 of 100,000
    trader = add_key(keys, "bench-trader", Role.TRADER, f"acct-{0:0{width}d}")
    command = [sys.executable, "-m", "solvent", "serve", "--accounts", str(args.accounts), "--screen"]
    # A fresh durable store in the run's folder (the default, ./solvent-service.sqlite, would restore an earlier run's
    # venue, whatever --accounts says).
    command += ["--keys", str(keys), "--port", str(args.port), "--store", f"sqlite:///{folder / 'bench.sqlite'}"]
    command += ["--batch-threads", str(args.batch_threads)] if args.batch_threads else []
    command += ["--engine-niceness", str(args.engine_niceness)] if args.engine_niceness >= 0 else []
    server = subprocess.Popen(command, env=os.environ.copy(), stderr=subprocess.DEVNULL)
    try:
        begin = time.perf_counter()
        while True:
            try:
                _get(args.port, "/health", "")
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - begin > 900:
                    raise SystemExit("the server did not start") from None
                time.sleep(1.0)
        print(f"server up with {args.accounts:,} accounts in {time.perf_counter() - begin:.0f} s", file=sys.stderr)
        state = _get(args.port, "/venue", reader)
        prices = {k: float(v) for k, v in dict(state["prices"]).items() if k in ("BTC", "ETH")}  # type: ignore[call-overload]
        clock = datetime.fromisoformat(str(state["time"]))
        rng = random.Random(0)
        ids = [f"acct-{rng.randrange(args.accounts):0{width}d}" for _ in range(5_000)]
        health = [("GET", "/health", reader, b"")]
        queries = [("GET", f"/accounts/{a}", reader, b"") for a in ids]
        fresh = [("GET", f"/accounts/{a}?fresh=true", reader, b"") for a in ids]
        published = [("GET", f"/figures/{a}", reader, b"") for a in ids]
        trade = {"account": f"acct-{0:0{width}d}", "instrument": "BTC-PERP", "price": prices["BTC"]}
        what_ifs = [
            ("POST", "/what-if", trader, json.dumps({**trade, "quantity": q}).encode())
            for q in (0.01, -0.02, 0.05, -0.1)
        ]
        warm = Feeder(args.port, feeder_key, dict(prices), clock)  # warm up (JIT, the screen's first bands, caches)
        asyncio.run(load(args.port, 3.0, args.connections, queries + what_ifs, warm))
        phase = Phase(args.port, server.pid, args.seconds, args.connections, args.rate)
        chosen = set(args.phases.split(","))
        if "health" in chosen:
            phase.run("the client alone: GET /health, no ticks (baseline)", health, None)
        if "queries" in chosen:
            phase.run("margin queries (published copy), no ticks", queries, None)
        feeder = Feeder(args.port, feeder_key, warm.prices, warm.time)
        for k, (key, name, make, connections) in enumerate(
            (
                ("ticks", "margin queries (published copy) + a tick every 100 ms", queries, 0),
                ("fresh", "fresh margin queries (?fresh=true, under the lock) + ticks", fresh, 0),
                ("figures", "published figures (GET /figures) + ticks", published, 0),
                ("what-if", "what-if (1 connection, published state) + ticks", what_ifs, 1),
            )
        ):
            if key not in chosen:
                continue
            feeder = Feeder(args.port, feeder_key, feeder.prices, feeder.time)
            feeder.seq = 2_000_000 + 500_000 * k
            phase.run(name, make, feeder, connections)
    finally:
        server.terminate()
        server.wait(timeout=30)
    offered = f"open loop at {args.rate:,.0f} requests/s" if args.rate else "closed loop"
    print(f"\n{args.accounts:,} accounts, {args.connections} connections ({offered}), {args.seconds:.0f} s a phase\n")
    print(
        "| phase | requests | req/s | p50 ms | p99 ms | max ms | errors | HTTP process CPU s | engine process CPU s "
        "| client CPU s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(phase.rows))


if __name__ == "__main__":
    main()
