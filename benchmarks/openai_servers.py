"""Replica dispatch of the openai backend: the same queries through 1, 2 and 4 servers, in one run.

Each server is a scripted OpenAI-compatible server on 127.0.0.1 that answers like
``ScriptedBackend`` after ``latency`` seconds and runs at most ``slots`` requests at once (a batching
engine's capacity), so the figures show the dispatch, not a model. For each replica count it prints
wall time, speed-up over one replica, windows per replica, and wall time against the ideal
(total windows over total slots, or one query's chain, whichever is longer). The last row kills one
of two replicas after a quarter of the windows: every query still completes, at the cost shown.

    python benchmarks/openai_servers.py --queries 32 --passages 40 --latency 0.2 --slots 4
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import socket
import threading
import time

import httpx
import typer
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends.base import GenerationRequest
from reasonrank_plugins.testing import ScriptedBackend
from reasonrank_plugins.windows import window_spans


def score(query: str, content: str) -> float:
    return float(content.split()[1])


def serve(port: int, latency: float, slots: int) -> None:
    """Chat completions answered by ``ScriptedBackend(latency, max_batch=slots)``."""
    script = ScriptedBackend(score=score, latency=latency, max_batch=slots)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        gen = await script.generate(GenerationRequest(body["messages"], body["max_tokens"]))
        message = {"role": "assistant", "content": gen.text}
        usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens}
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [{"index": 0, "message": message, "finish_reason": gen.finish_reason}],
                "usage": {**usage, "total_tokens": sum(usage.values())},
            }
        )

    app = Starlette(
        routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical")


class ScriptedServer:
    """One scripted server in its own process (so it does not share the client's CPU time)."""

    def __init__(self, latency: float, slots: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.process = multiprocessing.get_context("fork").Process(
            target=serve, args=(port, latency, slots), daemon=True
        )
        self.process.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.kill()
        self.process.join(10)


def run(
    urls: list[str], items: list, kill: ScriptedServer | None = None, after: int = 0
) -> tuple[float, list]:
    with ReasonRanker("scripted", base_url=urls, max_concurrency=64, probe_interval=1.0) as ranker:
        replicas = ranker.backend.replicas
        if kill is not None:

            def killer() -> None:
                while sum(r.served for r in replicas) < after:
                    time.sleep(0.005)
                kill.kill()

            threading.Thread(target=killer, daemon=True).start()
        began = time.perf_counter()
        results = ranker.rerank_many(items)
        wall = time.perf_counter() - began
    assert all(sorted(r.order) == list(range(len(p))) for r, (_, p) in zip(results, items))
    return wall, replicas


def main(
    queries: int = typer.Option(32, help="queries, each one chain of windows"),
    passages: int = typer.Option(40, help="candidates per query (window 20, step 10)"),
    latency: float = typer.Option(0.2, help="seconds per request on a server"),
    slots: int = typer.Option(4, help="requests a server runs at once"),
) -> None:
    items = [
        (f"q{k}", [f"passage {(7 * i + k) % passages} text" for i in range(passages)]) for k in range(queries)
    ]
    depth = len(window_spans(passages, 20, 10))
    windows = queries * depth
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    servers = [ScriptedServer(latency, slots) for _ in range(5)]
    typer.echo(
        f"{queries} queries x {depth} windows = {windows} windows; {latency}s per window, {slots} slots/server"
    )
    typer.echo(f"{'replicas':>10} {'wall s':>8} {'speed-up':>9} {'vs ideal':>9}  windows per replica")
    base = None
    for k in (1, 2, 4):
        wall, replicas = run([s.url for s in servers[:k]], items)
        base = base or wall
        ideal = max(depth * latency, math.ceil(windows / (k * slots)) * latency)
        served = [r.served for r in replicas]
        typer.echo(f"{k:>10} {wall:>8.2f} {base / wall:>8.2f}x {wall / ideal:>8.2f}x  {served}")
    wall, replicas = run([servers[3].url, servers[4].url], items, kill=servers[4], after=windows // 4)
    served = [r.served for r in replicas]
    states = ["healthy" if r.healthy else "unhealthy" for r in replicas]
    typer.echo(f"{'2, 1 dies':>10} {wall:>8.2f} {base / wall:>8.2f}x {'':>9}  {served} {states}")
    for server in servers[:4]:
        server.kill()


if __name__ == "__main__":
    typer.run(main)
