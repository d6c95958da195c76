"""Scheduling on the real demo model: DL19 queries reranked one at a time, in lockstep by window
position, and as chains, through llama.cpp in process and through an OpenAI-compatible server
with several parallel slots (llama.cpp's ``llama-server -np N``), all measured in one run.

llama-cpp-python's own server holds one global lock (one request at a time), so it cannot show
batching; ``llama-server`` (built from the llama.cpp sources) decodes its slots together. The
in-process llama.cpp backend serves one window at a time, so there the three schedules should
take about the same time: chains only pay off when the backend batches.

    python benchmarks/eval_scheduling.py --queries 4 --top-k 30 --server-bin /path/to/llama-server

Each server schedule starts a fresh server so no schedule reuses another's prompt cache. It
prints wall time per schedule, the ratios (chains / lockstep, chains / one at a time), the peak
number of windows in flight, and whether the final orders equal the one-at-a-time orders.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import typer

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends import load_backend
from reasonrank_plugins.demo_model import demo_model_path
from reasonrank_plugins.eval import load_data
from reasonrank_plugins.eval.data import ranked, read_trec_run
from reasonrank_plugins.testing import make_qwen25_tokenizer
from reasonrank_plugins.windows import window_spans

DL19 = Path(__file__).resolve().parents[2] / "shared" / "data" / "dl19"
SCHEDULES = ("sequential", "lockstep", "chains")


class LlamaServer:
    """``llama-server`` on the demo GGUF with ``slots`` parallel sequences, on a free local port."""

    def __init__(self, binary: Path, slots: int, ctx_per_slot: int, threads: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        args = [str(binary), "-m", str(demo_model_path()), "--host", "127.0.0.1", "--port", str(port),
                "-np", str(slots), "-c", str(slots * ctx_per_slot), "-t", str(threads), "--jinja"]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not start: {' '.join(args)}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def timed(ranker: ReasonRanker, items: list, schedule: str) -> tuple[float, list]:
    began = time.perf_counter()
    results = ranker.rerank_many(items, schedule=schedule)
    return time.perf_counter() - began, results


def report(label: str, rows: dict[str, tuple[float, list, int]]) -> None:
    seq_wall, seq_results, _ = rows["sequential"]
    for schedule, (wall, results, peak) in rows.items():
        windows = sum(len(r.windows) for r in results)
        tokens = sum(r.completion_tokens for r in results)
        same = all(a.order == b.order for a, b in zip(results, seq_results))
        typer.echo(
            f"{label:<26} {schedule:<11} {wall:>8.1f} {wall / seq_wall:>7.2f}x {windows:>8} {tokens:>7} "
            f"{peak:>5} {'yes' if same else 'no':>5}"
        )
    chains, lockstep = rows["chains"][0], rows["lockstep"][0]
    typer.echo(
        f"{label:<26} chains / lockstep = {chains / lockstep:.2f}, chains / one at a time = {chains / seq_wall:.2f}"
    )


def main(
    queries: int = typer.Option(4, help="first N judged DL19 queries"),
    top_k: int = typer.Option(30, help="BM25 candidates per query"),
    window: int = typer.Option(20),
    step: int = typer.Option(10),
    max_passage_tokens: int = typer.Option(60),
    reasoning_budget: int = typer.Option(256),
    llamacpp: bool = typer.Option(True, help="run the in-process llama.cpp backend"),
    server_bin: Path | None = typer.Option(None, help="llama-server binary: run the multi-slot server too"),
    slots: int = typer.Option(4, help="llama-server parallel slots"),
    threads: int = typer.Option(2, help="CPU threads for llama.cpp (both backends)"),
) -> None:
    logging.basicConfig(level=logging.WARNING)
    data = load_data(DL19)
    run = read_trec_run(DL19 / "run.bm25.trec")
    qids = data.query_ids(run)[:queries]
    items = [(data.queries[q], [data.corpus[d] for d in ranked(run[q])[:top_k]]) for q in qids]
    engine = {"window_size": window, "step": step, "max_passage_tokens": max_passage_tokens,
              "reasoning_budget": reasoning_budget}  # fmt: skip
    spans = len(window_spans(top_k, window, step))
    typer.echo(f"{len(items)} DL19 queries x {top_k} candidates = {spans} windows each (window {window}, step {step}); "
               f"max_passage_tokens {max_passage_tokens}, reasoning_budget {reasoning_budget}")  # fmt: skip
    typer.echo(f"{'backend':<26} {'schedule':<11} {'wall s':>8} {'vs seq':>8} {'windows':>8} {'compl':>7} "
               f"{'peak':>5} {'same':>5}")  # fmt: skip
    if llamacpp:
        backend = load_backend("demo", "llamacpp", n_threads=threads)
        rows = {}
        for schedule in SCHEDULES:
            with ReasonRanker(backend=backend, **engine) as ranker:  # a shared backend stays open
                wall, results = timed(ranker, items, schedule)
                rows[schedule] = (wall, results, ranker.engine.peak_in_flight)
        backend.close()
        report("llamacpp in-process", rows)
    if server_bin is not None:
        tokenizer = make_qwen25_tokenizer(Path(tempfile.mkdtemp(prefix="qwen25-tok-")))
        rows = {}
        for schedule in SCHEDULES:
            server = LlamaServer(server_bin, slots, ctx_per_slot=8192, threads=threads)
            try:
                with ReasonRanker("demo", "openai", base_url=server.url, tokenizer=str(tokenizer),
                                  max_concurrency=slots, **engine) as ranker:  # fmt: skip
                    wall, results = timed(ranker, items, schedule)
                    rows[schedule] = (wall, results, ranker.engine.peak_in_flight)
            finally:
                server.stop()
        report(f"llama-server {slots} slots", rows)


if __name__ == "__main__":
    typer.run(main)
