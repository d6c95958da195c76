"""Admission control: bounded against unbounded chains, side by side in one run.

    python benchmarks/admission.py                    # 500 queries x 100 candidates, 32 slots
    python benchmarks/admission.py --queries 100 --latency 0.02

The backend is the scripted one with ``max_batch`` slots: beyond them calls wait in FIFO order, as
in a batching engine's queue. "unbounded" starts every query at once (the engine before admission
control: each query's next window queues behind every other query's first); "bounded" admits
``max_active_queries`` (default: the backend's capacity, the slot count) and starts the next
query as one ends. Latency is measured from the call, so it includes the wait for admission.
Peak memory is tracemalloc's peak over the run (a second run of each, since tracing slows Python).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import tracemalloc

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.testing import ScriptedBackend

WORDS = "the of and to in is was for on that with as by at from it an be are this which or".split()


def workload(queries: int, candidates: int, words: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(0)
    return [
        (f"query {q}", [f"passage {rng.randrange(10_000)} " + " ".join(rng.choices(WORDS, k=words))
                        for _ in range(candidates)])
        for q in range(queries)
    ]


def run(items, slots: int, latency: float, bounded: bool, trace: bool) -> dict[str, float]:
    backend = ScriptedBackend(score=lambda q, c: float(c.split(" ", 2)[1]), latency=latency, max_batch=slots,
                             keep_requests=0)
    backend.capacity = slots  # what a real batching backend reports
    limit = None if bounded else len(items)
    with ReasonRanker(backend=backend, max_active_queries=limit, max_passage_tokens=100) as ranker:
        if trace:
            tracemalloc.start()
        began = time.perf_counter()
        results = ranker.rerank_many(items)
        makespan = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
    # every query's latency runs from the call to its end: its result's seconds
    latencies = sorted(r.seconds for r in results)
    return {"first": latencies[0], "median": statistics.median(latencies), "makespan": makespan,
            "peak_mb": peak / 2**20, "active": ranker.engine.peak_active}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per window")
    parser.add_argument("--words", type=int, default=80, help="words per passage")
    args = parser.parse_args()
    items = workload(args.queries, args.candidates, args.words)
    rows = {}
    for name, bounded in (("unbounded", False), ("bounded", True)):
        timed = run(items, args.slots, args.latency, bounded, trace=False)
        timed["peak_mb"] = run(items, args.slots, args.latency, bounded, trace=True)["peak_mb"]
        rows[name] = timed
    print(f"{args.queries} queries x {args.candidates} candidates, window 20 step 10, {args.slots} slots "
          f"(FIFO beyond), {args.latency:g} s per window")
    print(f"{'':>10} {'first done s':>13} {'median s':>9} {'makespan s':>11} {'peak MB':>8} {'active':>7}")
    for name, r in rows.items():
        print(f"{name:>10} {r['first']:13.2f} {r['median']:9.2f} {r['makespan']:11.2f} {r['peak_mb']:8.1f} "
              f"{r['active']:7d}")
    b, u = rows["bounded"], rows["unbounded"]
    print(f"{'ratio':>10} {b['first'] / u['first']:13.3f} {b['median'] / u['median']:9.3f} "
          f"{b['makespan'] / u['makespan']:11.3f} {b['peak_mb'] / u['peak_mb']:8.3f}   (bounded / unbounded)")


if __name__ == "__main__":
    main()
