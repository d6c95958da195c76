"""Load: 200 requests from 20 concurrent clients against a real server process with the scripted
engine, twice. Every request is answered with its own documents; latencies are printed (not
asserted); the server's memory after the second round is not meaningfully above the first.
Then ``benchmarks/server_load.py`` for a few seconds per run (cache on, cache off), with a client
sending malformed bodies throughout: its correctness checks are asserted, not its figures."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

CLIENTS, REQUESTS, DOCS = 20, 200, 30


def make_request(n: int) -> dict:
    rng = random.Random(n)
    words = [f"w{n}a", f"w{n}b", f"w{n}c"]
    docs = [f"req{n} doc{k} " + " ".join(rng.sample(words, rng.randint(0, 2))) for k in range(DOCS)]
    best = rng.randrange(DOCS)
    docs[best] = f"req{n} doc{best} " + " ".join(words)  # the only document with every query word
    return {"query": " ".join(words), "documents": docs, "return_documents": True, "_best": best}


async def one_round(url: str) -> list[float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(REQUESTS):
        queue.put_nowait(n)
    latencies: list[float] = []

    async def client_loop(c: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            request = make_request(n)
            best = request.pop("_best")
            began = time.perf_counter()
            r = await c.post(f"{url}/v1/rerank", json=request)
            latencies.append(time.perf_counter() - began)
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert sorted(x["index"] for x in results) == list(range(DOCS))
            assert results[0]["index"] == best
            assert all(x["document"]["text"] == request["documents"][x["index"]] for x in results)

    async with httpx.AsyncClient(timeout=120) as c:
        await asyncio.gather(*(client_loop(c) for _ in range(CLIENTS)))
    return latencies


def test_200_requests_from_20_clients(server_factory):
    server = server_factory("--backend", "scripted", "--latency", "0.05", "--max-batch", "32")
    proc = psutil.Process(server.proc.pid)
    rss = []
    for round_no in (1, 2):
        began = time.perf_counter()
        latencies = asyncio.run(one_round(server.url))
        wall = time.perf_counter() - began
        assert len(latencies) == REQUESTS
        rss.append(proc.memory_info().rss)
        q = statistics.quantiles(latencies, n=100)
        print(
            f"\nround {round_no}: {REQUESTS} requests / {CLIENTS} clients in {wall:.2f}s "
            f"({REQUESTS / wall:.0f} req/s); p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms; "
            f"server RSS {rss[-1] / 2**20:.1f} MiB"
        )
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'reasonrank_requests_total{{status="200"}} {2 * REQUESTS}.0' in metrics
    peak = float(
        next(
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("reasonrank_windows_in_flight_peak")
        )
    )
    assert peak > 1  # windows of different requests ran together
    assert "reasonrank_queued_requests 0.0" in metrics
    assert rss[1] - rss[0] < 25 * 2**20, f"RSS grew {(rss[1] - rss[0]) / 2**20:.1f} MiB over 200 requests"
    server.stop()


def test_malformed_bodies_do_not_disturb_the_others(tmp_path):
    """20 clients draw from 100 requests over /v1, /v2 and TEI's /rerank, with the cache on and off,
    while one more sends truncated JSON, wrong types, 10 MB bodies and 5,000 documents."""
    script = Path(__file__).parents[2] / "benchmarks" / "server_load.py"
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(script), "--seconds", "4", "--clients", "20", "--json", str(out)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = {run["name"]: run for run in json.loads(out.read_text())}
    assert set(runs) == {"cache on", "cache off"}
    expected = {
        "truncated": {"422"},
        "wrong types": {"422"},
        "10 MB": {"413"},
        "10 MB chunked": {"413"},
        "5000 documents": {"413"},
    }
    for name, run in runs.items():
        assert run["requests"] > 20, (name, run["requests"])
        assert run["wrong"] == [] and run["errors"] == [], (name, run["wrong"][:3], run["errors"][:3])
        assert set(run["malformed"]) == set(expected), (name, run["malformed"])
        for kind, statuses in run["malformed"].items():
            assert set(statuses) <= expected[kind], (name, kind, statuses)
        assert run["rss_peak_mib"] - run["rss_start_mib"] < 100, (
            name,
            run["rss_start_mib"],
            run["rss_peak_mib"],
        )
    assert runs["cache on"]["cached"] > 0  # repeated requests were answered from the cache
    assert runs["cache off"]["cached"] == 0
