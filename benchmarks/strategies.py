"""Window strategies side by side: sliding against tdpart, in one run.

    python benchmarks/strategies.py                  # latency (1 and 32 queries) and simulated quality
    python benchmarks/strategies.py --demo           # + the demo model on llama.cpp (DL19 top-40, 3 queries)
    python benchmarks/strategies.py --demo-only      # the demo model part alone

Latency: a scripted batching backend (``--slots`` slots, FIFO beyond) that takes ``--latency``
seconds a window, over DL19's BM25 top-100; it ranks with the simulated ranker below (sigma 0.5).
Quality without a GPU: a simulated listwise ranker orders each window by relevance grade plus
Gaussian noise (sigma in {0, 0.5, 1}; fresh noise for every window, seeded by the window), over
DL19's BM25 top-100 and qrels (../shared/data/dl19); nDCG@10 with ir-measures, mean and spread
over seeds; window 20 / step 10 (tdpart cutoff 10) and window 10 / step 5 (cutoff 5).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import time
from pathlib import Path

from reasonrank_plugins import Passage, ReasonRanker
from reasonrank_plugins.eval.data import EvalData, load_beir, ranked
from reasonrank_plugins.eval.metrics import aggregate
from reasonrank_plugins.testing import ScriptedBackend

DATA = Path(os.environ.get("REASONRANK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VARIANTS = {"sliding": {"strategy": "sliding"}, "tdpart": {"strategy": "tdpart"},
            "tdpart/b0": {"strategy": "tdpart", "budget": 0}}  # b0: no budget, the partitioning repeats


def simulated(qrels: dict[str, dict[str, int]], sigma: float, seed: int):
    """A listwise 'model': each window sorted by grade + N(0, sigma); the passages are doc ids."""

    def respond(query: str, contents: list[str]) -> str:
        key = f"{seed}|{query}|{'|'.join(contents)}".encode()
        rng = random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))
        grades = qrels.get(query, {})
        score = [grades.get(doc, 0) + rng.gauss(0, sigma) for doc in contents]
        order = sorted(range(len(contents)), key=lambda i: -score[i])
        return "<think>simulated</think> <answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"

    return respond


def items(data: EvalData, depth: int) -> list[tuple[str, list[Passage]]]:
    assert data.run is not None
    return [(qid, [Passage(doc) for doc in ranked(data.run[qid])[:depth]]) for qid in data.query_ids(data.run)]


def ndcg(data: EvalData, queries, results) -> float:
    run = {q: {p[i].text: r.scores[n] for n, i in enumerate(r.order)} for (q, p), r in zip(queries, results)}
    return aggregate(data.qrels, run, ["nDCG@10"])["nDCG@10"]


def latency(data: EvalData, slots: int, seconds: float, single: int) -> None:
    queries = items(data, 100)
    print(f"\n## Latency: scripted batching backend, {slots} slots, {seconds:g} s per window, DL19 BM25 top-100, "
          "window 20 (sliding step 10, tdpart cutoff 10), simulated ranker sigma 0.5")
    rows: dict[str, dict[str, float]] = {}
    for name, variant in VARIANTS.items():
        backend = ScriptedBackend(simulated(data.qrels, 0.5, 0), latency=seconds, max_batch=slots, keep_requests=0)
        with ReasonRanker(backend=backend, max_active_queries=slots, **variant) as ranker:
            walls, windows, depths = [], [], []
            for q, p in queries[:single]:  # one interactive query at a time
                began = time.perf_counter()
                result = ranker.rerank(q, p)
                walls.append(time.perf_counter() - began)
                windows.append(len(result.windows))
                depths.append(result.depth)
            began = time.perf_counter()
            batch = ranker.rerank_many(queries[:32])
            makespan = time.perf_counter() - began
        rows[name] = {"wall": statistics.mean(walls), "windows": statistics.mean(windows), "depth": statistics.mean(depths),
                      "max_depth": max(depths), "max_windows": max(windows), "makespan": makespan,
                      "windows32": sum(len(r.windows) for r in batch) / len(batch)}
    print(f"one query at a time (first {single} queries, mean):")
    print(f"{'':>9} {'wall s':>7} {'windows':>8} {'max':>4} {'depth':>6} {'max':>4} | 32 queries: {'makespan s':>10} {'windows/q':>9}")
    for name, r in rows.items():
        print(f"{name:>9} {r['wall']:7.2f} {r['windows']:8.2f} {r['max_windows']:4d} {r['depth']:6.2f} {r['max_depth']:4d} |"
              f" {'':>11} {r['makespan']:10.2f} {r['windows32']:9.2f}")
    s, t = rows["sliding"], rows["tdpart"]
    print(f"{'tdpart/sliding':>14} wall {t['wall'] / s['wall']:.3f}, windows {t['windows'] / s['windows']:.3f}, "
          f"makespan (32 queries) {t['makespan'] / s['makespan']:.3f}")


def quality(data: EvalData, seeds: int) -> None:
    queries = items(data, 100)
    print(f"\n## Quality: simulated ranker over DL19 BM25 top-100 ({len(queries)} queries), nDCG@10, "
          f"mean ± sd over {seeds} seeds (BM25: {ndcg_bm25(data, queries):.4f})")
    print(f"{'setting':>22} {'sigma':>5} " + " ".join(f"{n:>16}" for n in VARIANTS) + "   diff vs sliding   windows   depth")
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    for window, step, cutoff in ((20, 10, 10), (10, 5, 5)):
        for sigma in (0.0, 0.5, 1.0):
            scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
            cost: dict[str, list[float]] = {name: [] for name in VARIANTS}
            depth: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for seed in range(seeds):
                for name, variant in VARIANTS.items():
                    backend = ScriptedBackend(simulated(data.qrels, sigma, seed), keep_requests=0)
                    with ReasonRanker(backend=backend, window_size=window, step=step, cutoff=cutoff, **variant) as r:
                        results = r.rerank_many(queries)
                    scores[name].append(ndcg(data, queries, results))
                    cost[name].append(statistics.mean(len(x.windows) for x in results))
                    depth[name].append(statistics.mean(x.depth for x in results))
            mean = {n: statistics.mean(v) for n, v in scores.items()}
            print(f"{f'w{window} s{step} / cutoff {cutoff}':>22} {sigma:5.1f} "
                  + " ".join(f"{mean[n]:.4f} ± {sd(scores[n]):.4f}" for n in VARIANTS) + "  "
                  + "/".join(f"{mean[n] - mean['sliding']:+.4f}" for n in VARIANTS if n != "sliding") + "  "
                  + "/".join(f"{statistics.mean(cost[n]):.2f}" for n in VARIANTS) + "  "
                  + "/".join(f"{statistics.mean(depth[n]):.1f}" for n in VARIANTS))


def ndcg_bm25(data: EvalData, queries) -> float:
    assert data.run is not None
    return aggregate(data.qrels, {q: data.run[q] for q, _ in queries}, ["nDCG@10"])["nDCG@10"]


def demo(data: EvalData, queries: int, threads: int | None) -> None:
    """The embedded demo model on llama.cpp: the strategy runs on a real model (its nDCG means little)."""
    assert data.run is not None
    chosen = [(data.queries[q], [data.corpus[d] for d in ranked(data.run[q])[:40]], q)
              for q in data.query_ids(data.run)[:queries]]
    print(f"\n## Demo model (Qwen2.5-Coder-0.5B Q4_K_M, llama.cpp), DL19 BM25 top-40, {queries} queries, "
          "max_passage_tokens 100, reasoning_budget 512")
    options = {"n_threads": threads} if threads else {}
    with ReasonRanker("demo", max_passage_tokens=100, reasoning_budget=512, **options) as ranker:
        for name in ("sliding", "tdpart"):
            began = time.perf_counter()
            results = [ranker.rerank(q, p, strategy=name) for q, p, _ in chosen]
            seconds = time.perf_counter() - began
            run = {qid: {p[i].id: r.scores[n] for n, i in enumerate(r.order)} for (_, p, qid), r in zip(chosen, results)}
            score = aggregate(data.qrels, run, ["nDCG@10"])["nDCG@10"]
            statuses = sum((r.statuses for r in results), start=__import__("collections").Counter())
            print(f"{name:>8}: windows {[len(r.windows) for r in results]}, depth {[r.depth for r in results]}, "
                  f"{seconds / len(chosen):.1f} s/query, nDCG@10 {score:.4f}, statuses {dict(statuses)}")
    bm25 = aggregate(data.qrels, {qid: data.run[qid] for _, _, qid in chosen}, ["nDCG@10"])["nDCG@10"]
    print(f"    BM25: nDCG@10 {bm25:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "dl19")
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per window")
    parser.add_argument("--single", type=int, default=10, help="queries timed one at a time")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--demo", action="store_true", help="also run the demo model on llama.cpp")
    parser.add_argument("--demo-queries", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--demo-only", action="store_true", help="run only the demo model part")
    args = parser.parse_args()
    data = load_beir(args.data, run=args.data / "run.bm25.trec")
    if not args.demo_only:
        latency(data, args.slots, args.latency, args.single)
        quality(data, args.seeds)
    if args.demo or args.demo_only:
        demo(data, args.demo_queries, args.threads)


if __name__ == "__main__":
    main()
