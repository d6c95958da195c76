"""Scheduling benchmark: N queries x C candidates reranked three ways on one batching backend.

    python benchmarks/scheduling.py                      # scripted engine with variable latency
    python benchmarks/scheduling.py --backend tiny       # real transformers micro-batching (tiny Qwen2)
    python benchmarks/scheduling.py --demo               # + engine overhead and peak memory of the demo

"one at a time" reranks query after query; "lockstep" runs window k of every query together and
waits for the slowest (the reference implementation's way); "chains" submits each query's next
window as soon as its previous one ends. All three run in this process, side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends import GenerationRequest
from reasonrank_plugins.testing import ScriptedBackend, make_tiny_qwen2

SCHEDULES = ("sequential", "lockstep", "chains")


def lognormal_latency(mean: float) -> callable:
    """Reasoning length varies window to window: a seeded log-normal time per call (sigma 0.6)."""

    def latency(request: GenerationRequest) -> float:
        if request.prefix:  # a forced answer is short
            return mean / 20
        seed = int(hashlib.sha256(request.messages[1]["content"].encode()).hexdigest()[:8], 16)
        return mean * random.Random(seed).lognormvariate(-0.18, 0.6)

    return latency


def workload(queries: int, candidates: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(0)
    return [
        (f"query {q}", [f"passage {q}-{i} relevance {rng.randrange(1000)}" for i in range(candidates)])
        for q in range(queries)
    ]


def run(ranker: ReasonRanker, items, schedule: str) -> tuple[float, list[list[int]]]:
    began = time.perf_counter()
    results = ranker.rerank_many(items, schedule=schedule)
    return time.perf_counter() - began, [r.order for r in results]


def engine_overhead(items) -> float:
    """Seconds of engine work (validation, truncation, prompts, parsing) per window, zero-latency backend."""
    backend = ScriptedBackend(score=lambda q, c: float(c.rsplit(" ", 1)[-1]))
    with ReasonRanker(backend=backend, max_passage_tokens=100) as ranker:
        began = time.perf_counter()
        ranker.rerank_many(items, schedule="sequential")
        elapsed = time.perf_counter() - began
    return elapsed / len(backend.requests)


DEMO_CHILD = """
import json, resource
from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.eval.data import load_beir, ranked
data = load_beir({data!r}, run={data!r} + "/run.bm25.trec")
qid = data.query_ids(data.run)[0]
passages = [data.corpus[d] for d in ranked(data.run[qid])[:20]]
with ReasonRanker("demo", max_passage_tokens=100) as ranker:
    result = ranker.rerank(data.queries[qid], passages)
w = result.windows[0]
print(json.dumps({{"seconds": w.seconds, "prompt": w.prompt_tokens, "completion": w.completion_tokens,
    "status": str(w.status), "forced": w.forced,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def demo_window() -> dict:
    data = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "dl19")
    out = subprocess.run([sys.executable, "-c", DEMO_CHILD.format(data=data)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("scripted", "tiny"), default="scripted")
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2, help="mean seconds per window (scripted)")
    parser.add_argument("--demo", action="store_true", help="also time one demo-model window (llama.cpp)")
    args = parser.parse_args()

    items = workload(args.queries, args.candidates)
    if args.backend == "scripted":
        backend = ScriptedBackend(
            score=lambda q, c: float(c.rsplit(" ", 1)[-1]), latency=lognormal_latency(args.latency),
            max_batch=args.queries,
        )
        ranker = ReasonRanker(backend=backend, max_passage_tokens=100)
        label = f"scripted engine, {args.queries} slots, log-normal latency mean {args.latency}s"
    else:
        model = make_tiny_qwen2(Path(tempfile.mkdtemp()) / "tiny")
        ranker = ReasonRanker(str(model), backend="transformers", reasoning_budget=16,
                              max_passage_tokens=32, batch_size=args.queries)
        label = f"transformers tiny Qwen2 (CPU), batch {args.queries}, 16 reasoning tokens"
    with ranker:
        times, orders = {}, {}
        for schedule in SCHEDULES:
            times[schedule], orders[schedule] = run(ranker, items, schedule)
    print(f"{args.queries} queries x {args.candidates} candidates, window 20 / step 10 -- {label}")
    print(f"{'schedule':<12}{'wall s':>9}{'vs lockstep':>13}{'vs one-at-a-time':>18}")
    for schedule in SCHEDULES:
        t = times[schedule]
        print(f"{schedule:<12}{t:>9.2f}{t / times['lockstep']:>13.2f}{t / times['sequential']:>18.2f}")
    same = orders["chains"] == orders["sequential"] == orders["lockstep"]
    print(f"identical orders across schedules: {same}")

    per_window = engine_overhead(workload(4, args.candidates))
    print(f"engine overhead: {per_window * 1000:.2f} ms per window (100 candidates, zero-latency backend)")
    if args.demo:
        demo = demo_window()
        print(
            f"demo window (llama.cpp, DL19 top-20): {demo['seconds']:.1f}s, {demo['prompt']}+{demo['completion']} "
            f"tokens, {demo['status']}{' forced' if demo['forced'] else ''}; engine overhead "
            f"{100 * per_window / demo['seconds']:.3f}% of backend time; peak RSS {demo['peak_rss_mb']:.0f} MB"
        )
    print(f"benchmark process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
