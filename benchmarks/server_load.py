"""``reasonrank serve`` under load, with the result cache on and off: two server runs side by side
in one run of the script (scripted engine by default).

In each run ``--clients`` clients send requests for ``--seconds``, drawn at random from a pool of
``--pool`` distinct requests (so some repeat and the cache has hits), over Cohere's ``/v1`` and
``/v2`` and TEI's ``/rerank`` in turn. One more client sends malformed bodies the whole time:
truncated JSON, wrong types, a 10 MB body (with and without Content-Length) and 5,000 documents.
Every answer to a well-formed request is checked: status 200, a permutation of its own documents
(texts compared), the one document holding every query word first. Every malformed one must get a
4xx. The server's RSS is sampled throughout. Prints throughput, p50/p99 latency, cache hits and
RSS per run; ``--json`` also writes the figures and the check counts (the load test reads them).

    python benchmarks/server_load.py --seconds 60
    python benchmarks/server_load.py --seconds 5 --json /tmp/load.json
    python benchmarks/server_load.py --seconds 20 -- --model demo --reasoning-budget 96
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil
import typer

DOCS = 30
ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank")


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
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


@dataclass(frozen=True)
class Pooled:
    query: str
    documents: list[str]
    best: int


def pool(size: int) -> list[Pooled]:
    """``size`` distinct requests; in each only one document holds every query word."""
    out = []
    for n in range(size):
        rng = random.Random(n)
        words = [f"w{n}a", f"w{n}b", f"w{n}c"]
        docs = [f"req{n} doc{k} " + " ".join(rng.sample(words, rng.randint(0, 2))) for k in range(DOCS)]
        best = rng.randrange(DOCS)
        docs[best] = f"req{n} doc{best} " + " ".join(words)
        out.append(Pooled(" ".join(words), docs, best))
    return out


def body(route: str, p: Pooled) -> dict:
    if route == "/rerank":
        return {"query": p.query, "texts": p.documents, "return_text": True}
    return {"query": p.query, "documents": p.documents, "return_documents": True}


def wrong(route: str, p: Pooled, r: httpx.Response) -> str | None:
    """What is wrong with the answer to ``p`` (None when it is right)."""
    if r.status_code != 200:
        return f"status {r.status_code}: {r.text[:200]}"
    data = r.json()
    if route == "/rerank":
        got = [(x["index"], x["text"]) for x in data]
    else:
        got = [(x["index"], x["document"]["text"]) for x in data["results"]]
    if sorted(i for i, _ in got) != list(range(len(p.documents))):
        return "not a permutation of the request's documents"
    if any(text != p.documents[i] for i, text in got):
        return "another request's documents"
    if got[0][0] != p.best:
        return f"document {got[0][0]} first, not {p.best}"
    return None


def malformed_bodies() -> list[tuple[str, dict[str, object]]]:
    big = b'{"query": "q", "documents": ["' + b"x" * (10 * 2**20) + b'"]}'

    async def chunked():
        for k in range(0, len(big), 2**16):
            yield big[k : k + 2**16]

    many = {"query": "q", "documents": [f"doc {k}" for k in range(5000)]}
    return [
        ("truncated", {"content": b'{"query": "q", "documents": ["a", "b"', "route": "/v1/rerank"}),
        ("truncated", {"content": b'{"query": "q", "texts": ["a"', "route": "/rerank"}),
        ("wrong types", {"json": {"query": 5, "documents": "a b"}, "route": "/v2/rerank"}),
        (
            "wrong types",
            {"json": {"query": "q", "documents": [1, None], "top_n": "x"}, "route": "/v1/rerank"},
        ),
        ("wrong types", {"json": {"query": ["q"], "texts": [{"t": 1}]}, "route": "/rerank"}),
        ("10 MB", {"content": big, "route": "/v1/rerank"}),
        ("10 MB chunked", {"content": chunked, "route": "/v2/rerank"}),
        ("5000 documents", {"json": many, "route": "/v1/rerank"}),
        ("5000 documents", {"json": {"query": "q", "texts": many["documents"]}, "route": "/rerank"}),
    ]


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    requests: int = 0
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # transport errors of well-formed requests
    cached: int = 0
    cohere: int = 0
    latencies: list[float] = field(default_factory=list)
    malformed: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> status -> count
    rss_start_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_end_mib: float = 0.0

    def figures(self) -> dict[str, float]:
        q = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [float("nan")] * 99
        return {
            "req_per_s": self.requests / self.seconds,
            "p50_ms": q[49] * 1000,
            "p99_ms": q[98] * 1000,
            "cache_hit_rate": self.cached / max(self.cohere, 1),
        }


async def load(
    url: str, proc: psutil.Process, run: Run, seconds: float, clients: int, requests: list[Pooled]
) -> None:
    stop = time.perf_counter() + seconds
    run.rss_start_mib = proc.memory_info().rss / 2**20

    async def client(c: httpx.AsyncClient, k: int) -> None:
        rng = random.Random(1000 + k)
        while time.perf_counter() < stop:
            p, route = rng.choice(requests), rng.choice(ROUTES)
            began = time.perf_counter()
            try:
                r = await c.post(f"{url}{route}", json=body(route, p))
            except httpx.TransportError as exc:
                run.errors.append(f"{route}: {exc!r}")
                continue
            run.latencies.append(time.perf_counter() - began)
            run.requests += 1
            if (problem := wrong(route, p, r)) is not None:
                run.wrong.append(f"{route} {p.query!r}: {problem}")
            elif route != "/rerank":
                run.cohere += 1
                run.cached += bool(r.json()["usage"]["cached"])

    async def bad_client(c: httpx.AsyncClient) -> None:
        bodies = malformed_bodies()
        n = 0
        while time.perf_counter() < stop:
            kind, spec = bodies[n % len(bodies)]
            n += 1
            kwargs = {k: v() if callable(v) else v for k, v in spec.items() if k != "route"}
            try:
                r = await c.post(f"{url}{spec['route']}", **kwargs)  # type: ignore[arg-type]
                status = str(r.status_code)
            except httpx.TransportError as exc:  # the server answered 413 and closed mid-upload
                status = type(exc).__name__
            counts = run.malformed.setdefault(kind, {})
            counts[status] = counts.get(status, 0) + 1

    async def sample_rss() -> None:
        while time.perf_counter() < stop:
            run.rss_peak_mib = max(run.rss_peak_mib, proc.memory_info().rss / 2**20)
            await asyncio.sleep(0.2)

    began = time.perf_counter()
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c, httpx.AsyncClient(timeout=120) as bad:
        await asyncio.gather(*(client(c, k) for k in range(clients)), bad_client(bad), sample_rss())
    run.seconds = time.perf_counter() - began
    run.rss_end_mib = proc.memory_info().rss / 2**20
    run.rss_peak_mib = max(run.rss_peak_mib, run.rss_end_mib)


def main(
    seconds: float = typer.Option(60, help="Seconds of load per run."),
    clients: int = typer.Option(20),
    pool_size: int = typer.Option(100, "--pool", help="Distinct requests the clients draw from."),
    latency: float = typer.Option(0.05, help="Scripted engine: seconds per window."),
    max_batch: int = typer.Option(32, help="Scripted engine: windows that run together."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures and checks here."),
    server_args: list[str] = typer.Argument(None, help="After --: other `reasonrank serve` options."),
) -> None:
    args = server_args or ["--backend", "scripted", "--latency", str(latency), "--max-batch", str(max_batch)]
    requests = pool(pool_size)
    runs = []
    for name, cache in (("cache on", "1024"), ("cache off", "0")):
        proc, url = start([*args, "--cache-size", cache])
        try:
            run = Run(name)
            asyncio.run(load(url, psutil.Process(proc.pid), run, seconds, clients, requests))
            runs.append(run)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    typer.echo(
        f"server: reasonrank serve {' '.join(args)}; {clients} clients + 1 malformed, {seconds:g} s per run,"
    )
    typer.echo(f"requests drawn from {pool_size} distinct ones of {DOCS} documents over {', '.join(ROUTES)}")
    typer.echo(
        f"{'run':>10} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'hits':>6} "
        f"{'RSS start':>10} {'peak':>6} {'end MiB':>8} {'wrong':>6} {'malformed':>10}"
    )
    for run in runs:
        f = run.figures()
        bad = sum(sum(c.values()) for c in run.malformed.values())
        typer.echo(
            f"{run.name:>10} {run.requests:>9} {f['req_per_s']:>7.1f} {f['p50_ms']:>7.0f} {f['p99_ms']:>7.0f} "
            f"{f['cache_hit_rate']:>6.0%} {run.rss_start_mib:>10.1f} {run.rss_peak_mib:>6.1f} "
            f"{run.rss_end_mib:>8.1f} {len(run.wrong) + len(run.errors):>6} {bad:>10}"
        )
    typer.echo("hits: the share of /v1 and /v2 answers with usage.cached (TEI's shape does not say)")
    for run in runs:
        typer.echo(f"{run.name}, malformed answers: {json.dumps(run.malformed)}")
        for problem in (run.wrong + run.errors)[:5]:
            typer.echo(f"{run.name}, WRONG: {problem}")
    if json_out is not None:
        rows = [asdict(run) | run.figures() for run in runs]
        for row in rows:
            del row["latencies"]
        json_out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    typer.run(main)
