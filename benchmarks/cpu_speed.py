"""llama.cpp CPU speed: prefill and decode tokens/s of real 20-passage windows, per setting, side by side.

Each setting loads the model into its own llama.cpp context and runs the same DL19 windows (BM25
top 20 of the first judged queries, passages cut to 100 tokens, the reference prompt), decoding
``--decode`` tokens greedily with the stop strings off so that every setting decodes the same
length. Prefill and decode times are llama.cpp's own counters (``llama_perf_context``). Settings:

- ``before``: what the backend used before this benchmark (``n_threads=os.cpu_count()``,
  ``n_batch=512``, flash attention off);
- ``flash``: flash attention on; ``batch N``: ``n_batch = n_ubatch = N`` for prefill;
- ``threads N``: N threads;
- ``prefix``: the second window of a query after the first, its shared prefix (system prompt and
  query) kept in the KV cache, against the same call after a reset; and a forced answer (the same
  prompt, the output so far and ``</think>\\n<answer>``) with and without the cache;
- ``2 contexts``: two windows of different queries on two contexts of one thread each, at once,
  against the same two windows in turn on one context of two threads.

    python benchmarks/cpu_speed.py                       # the demo model, 2 queries
    python benchmarks/cpu_speed.py --model demo-1.5b --decode 64
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer

from reasonrank_plugins.backends.base import GenerationRequest
from reasonrank_plugins.backends.llamacpp import SAMPLING, LlamaCppBackend, available_cores
from reasonrank_plugins.demo_model import is_embedded, model_path
from reasonrank_plugins.engine import forcing_prefix
from reasonrank_plugins.eval import load_data
from reasonrank_plugins.eval.data import ranked, read_trec_run
from reasonrank_plugins.prompt import build_messages

DL19 = Path(__file__).resolve().parents[2] / "shared" / "data" / "dl19"


def perf(backend: LlamaCppBackend) -> tuple[float, int, float, int]:
    """llama.cpp's prefill (ms, tokens) and decode (ms, tokens) since the last reset."""
    import llama_cpp

    data = llama_cpp.llama_perf_context(backend.llm.ctx)
    return data.t_p_eval_ms, data.n_p_eval, data.t_eval_ms, data.n_eval


def run(backend: LlamaCppBackend, request: GenerationRequest, keep_cache: bool = False) -> dict[str, float]:
    """One completion of ``request.max_tokens`` tokens (stop strings off); the KV cache is cleared
    first unless ``keep_cache``."""
    import llama_cpp

    if not keep_cache:
        backend.llm.reset()
    llama_cpp.llama_perf_context_reset(backend.llm.ctx)
    began = time.perf_counter()
    out = backend.llm.create_completion(backend._tokens(request), max_tokens=request.max_tokens, **SAMPLING)
    wall = time.perf_counter() - began
    p_ms, p_n, d_ms, d_n = perf(backend)
    return {"wall_s": wall, "prefill_tokens": p_n, "prefill_s": p_ms / 1000, "decode_tokens": d_n,
            "decode_s": d_ms / 1000, "prompt_tokens": out["usage"]["prompt_tokens"], "text": out["choices"][0]["text"]}


def rate(rows: list[dict[str, float]], kind: str) -> float:
    tokens = sum(r[f"{kind}_tokens"] for r in rows)
    seconds = sum(r[f"{kind}_s"] for r in rows)
    return tokens / seconds if seconds else 0.0


def main(
    model: str = typer.Option("demo"),
    data: Path = typer.Option(DL19, help="BEIR folder with run.bm25.trec"),
    queries: int = typer.Option(2, help="first N judged queries, one window of 20 each"),
    decode: int = typer.Option(64, help="tokens decoded per window"),
    batches: list[int] = typer.Option([2048], "--batch", help="n_batch values to try (repeatable)"),
    out: Path | None = typer.Option(None, help="also write the rows as JSON here"),
) -> None:
    logging.basicConfig(level=logging.WARNING)
    path = str(model_path(model) if is_embedded(model) else model)
    dataset = load_data(data)
    run_ = read_trec_run(data / "run.bm25.trec")
    qids = dataset.query_ids(run_)[:queries]
    cores = available_cores()

    def requests(backend: LlamaCppBackend, start: int = 0) -> list[GenerationRequest]:
        reqs = []
        for q in qids:
            passages = [dataset.corpus[d] for d in ranked(run_[q])[start:start + 20]]
            messages = build_messages(dataset.queries[q], passages, max_passage_tokens=100,
                                      truncate=backend.truncate)
            reqs.append(GenerationRequest(messages=messages, max_tokens=decode))
        return reqs

    settings: list[tuple[str, dict]] = [
        ("before", {"n_threads": os.cpu_count(), "n_batch": 512, "flash_attn": False}),
        ("flash", {"n_threads": cores, "n_batch": 512, "flash_attn": True}),
        *[(f"batch {b}", {"n_threads": cores, "n_batch": b, "n_ubatch": b, "flash_attn": False}) for b in batches],
        *[(f"flash + batch {b}", {"n_threads": cores, "n_batch": b, "n_ubatch": b, "flash_attn": True})
          for b in batches],
        ("threads 1", {"n_threads": 1, "n_batch": 512, "flash_attn": False}),
    ]
    table: list[dict] = []
    typer.echo(f"{Path(path).name}, {len(qids)} windows of 20 from {data.name}, {decode} decoded tokens each, "
               f"{cores} cores available (os.cpu_count() {os.cpu_count()})")
    typer.echo(f"{'setting':<22} {'prefill tok/s':>13} {'decode tok/s':>12} {'s/window':>9} {'vs before':>9}")
    base_wall = None
    for label, kwargs in settings:
        backend = LlamaCppBackend(path, n_ctx=8192, **kwargs)
        try:
            rows = [run(backend, r) for r in requests(backend)]
        finally:
            backend.close()
        wall = sum(r["wall_s"] for r in rows) / len(rows)
        base_wall = base_wall or wall
        table.append({"setting": label, **kwargs, "prefill_tok_s": rate(rows, "prefill"),
                      "decode_tok_s": rate(rows, "decode"), "s_per_window": wall})
        typer.echo(f"{label:<22} {rate(rows, 'prefill'):>13.1f} {rate(rows, 'decode'):>12.2f} {wall:>9.1f} "
                   f"{base_wall / wall:>8.2f}x")

    # prefix reuse: a query's second window after its first, and a forced answer after its window
    backend = LlamaCppBackend(path, n_ctx=8192, n_threads=cores)
    try:
        firsts, seconds = requests(backend), requests(backend, start=10)
        cold = [run(backend, s) for s in seconds]
        warm = []
        for f, s in zip(firsts, seconds):
            run(backend, f)
            warm.append(run(backend, s, keep_cache=True))
        forced_cold, forced_warm = [], []
        for f in firsts:
            first = run(backend, f)
            forced = GenerationRequest(messages=f.messages, max_tokens=8, prefix=forcing_prefix(first["text"]))
            forced_warm.append(run(backend, forced, keep_cache=True))
            forced_cold.append(run(backend, forced))
    finally:
        backend.close()
    for label, c, w in (("next window, same query", cold, warm), ("forced answer", forced_cold, forced_warm)):
        cs, ws = sum(r["prefill_s"] for r in c) / len(c), sum(r["prefill_s"] for r in w) / len(w)
        ct, wt = sum(r["prefill_tokens"] for r in c) / len(c), sum(r["prefill_tokens"] for r in w) / len(w)
        typer.echo(f"prefix reuse, {label}: prefill {ct:.0f} -> {wt:.0f} tokens, {cs:.2f} -> {ws:.2f} s "
                   f"({cs / ws if ws else float('inf'):.1f}x)")
        table.append({"setting": f"prefix reuse, {label}", "prefill_tokens_cold": ct, "prefill_tokens_warm": wt,
                      "prefill_s_cold": cs, "prefill_s_warm": ws})

    # two contexts of one thread each, two windows of different queries at once, against one context in turn
    one = LlamaCppBackend(path, n_ctx=8192, n_threads=cores)
    try:
        reqs = requests(one)[:2]
        began = time.perf_counter()
        for r in reqs:
            run(one, r)
        in_turn = time.perf_counter() - began
    finally:
        one.close()
    pair = [LlamaCppBackend(path, n_ctx=8192, n_threads=max(1, cores // 2)) for _ in range(2)]
    try:
        reqs = requests(pair[0])[:2]
        began = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run, pair, reqs))
        together = time.perf_counter() - began
    finally:
        for b in pair:
            b.close()
    typer.echo(f"2 windows: one context of {cores} threads in turn {in_turn:.1f} s, two contexts of "
               f"{max(1, cores // 2)} thread(s) at once {together:.1f} s ({in_turn / together:.2f}x)")
    table.append({"setting": "2 contexts", "in_turn_s": in_turn, "together_s": together})
    if out:
        out.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    typer.run(main)
