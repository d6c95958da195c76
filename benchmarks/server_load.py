"""``reasonrank serve`` under load: the same requests from 1 client and from C concurrent clients,
in one run, against one server process (scripted engine by default).

With the scripted engine each window takes ``--latency`` seconds and up to ``--max-batch`` windows
run together, like a batching inference engine; concurrent requests share the server's one engine,
so their windows are batched. Prints throughput, p50/p99 latency, the speed-up of C clients over
one, the peak number of windows in flight (from /metrics) and the server's RSS after each phase.

    python benchmarks/server_load.py --requests 200 --clients 20 --docs 30 --latency 0.05
    python benchmarks/server_load.py --requests 4 --clients 2 --docs 4 -- --model demo --reasoning-budget 96
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx
import psutil
import typer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "reasonrank_plugins", "serve", "--port", str(port), *args]
    env = {k: v for k, v in os.environ.items() if k != "REASONRANK_TOKEN"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(3000):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def request(n: int, docs: int) -> dict:
    words = [f"w{n}a", f"w{n}b", f"w{n}c"]
    return {
        "query": " ".join(words),
        "documents": [f"doc {k} " + " ".join(words[: k % 4]) for k in range(docs)],
    }


async def phase(url: str, requests: int, clients: int, docs: int) -> tuple[float, list[float]]:
    pending = list(range(requests))
    latencies: list[float] = []

    async def loop(c: httpx.AsyncClient) -> None:
        while pending:
            n = pending.pop()
            began = time.perf_counter()
            r = await c.post(f"{url}/v1/rerank", json=request(n, docs))
            r.raise_for_status()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=3600) as c:
        await asyncio.gather(*(loop(c) for _ in range(clients)))
    return time.perf_counter() - began, latencies


def peak_windows(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("reasonrank_windows_in_flight_peak"):
            return float(line.split()[1])
    return float("nan")


def main(
    requests: int = typer.Option(200),
    clients: int = typer.Option(20),
    docs: int = typer.Option(30, help="Documents per request."),
    latency: float = typer.Option(0.05, help="Scripted engine: seconds per window."),
    max_batch: int = typer.Option(32, help="Scripted engine: windows that run together."),
    server_args: list[str] = typer.Argument(None, help="After --: other `reasonrank serve` options."),
) -> None:
    args = server_args or ["--backend", "scripted", "--latency", str(latency), "--max-batch", str(max_batch)]
    proc, url = start(args)
    rss = psutil.Process(proc.pid)
    try:
        rows = []
        for count in (1, clients):
            wall, lat = asyncio.run(phase(url, requests, count, docs))
            q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
            rows.append((count, wall, q[49], q[98], peak_windows(url), rss.memory_info().rss / 2**20))
        typer.echo(f"server: reasonrank serve {' '.join(args)}; {requests} requests of {docs} documents")
        typer.echo(
            f"{'clients':>8} {'wall s':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'peak win':>9} {'RSS MiB':>8}"
        )
        for count, wall, p50, p99, peak, mib in rows:
            typer.echo(
                f"{count:>8} {wall:>8.2f} {requests / wall:>8.1f} {p50 * 1000:>8.0f} {p99 * 1000:>8.0f} "
                f"{peak:>9.0f} {mib:>8.1f}"
            )
        typer.echo(f"speed-up of {clients} clients over 1: {rows[0][1] / rows[1][1]:.2f}x")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    typer.run(main)
