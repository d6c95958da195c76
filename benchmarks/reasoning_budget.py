"""Reasoning budget: the same DL19 windows reranked with budgets of 256, 1024 and 3072 tokens.

Each query's BM25 top-``--top-k`` is one window (``--top-k`` equal to the window size). For each
budget it prints quality (nDCG@10 before and after, with ir-measures), prompt and completion
tokens per window, seconds per window, how often the answer had to be forced, and the parse
statuses, and the ratios of tokens and time to the largest budget, all measured in one run on one
backend. Greedy decoding makes a smaller budget's output a prefix of a larger one's until the cut.

    python benchmarks/reasoning_budget.py --queries 4                      # demo model, llama.cpp
    python benchmarks/reasoning_budget.py --model M --backend openai -o base_url=http://...
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import Counter
from pathlib import Path

import typer

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends import load_backend
from reasonrank_plugins.cli.options import parse_options
from reasonrank_plugins.eval import aggregate, load_data
from reasonrank_plugins.eval.data import ranked, read_trec_run

DL19 = Path(__file__).resolve().parents[2] / "shared" / "data" / "dl19"


def main(
    data: Path = typer.Option(DL19, help="BEIR folder with run.bm25.trec"),
    queries: int = typer.Option(4, help="first N judged queries; one window each"),
    top_k: int = typer.Option(20, help="candidates per query (= the window)"),
    budgets: list[int] = typer.Option([256, 1024, 3072], "--budget", help="reasoning budgets (repeatable)"),
    max_passage_tokens: int = typer.Option(100),
    model: str = typer.Option("demo"),
    backend: str = typer.Option("auto"),
    option: list[str] = typer.Option([], "--option", "-o", help="backend option key=value"),
    out: Path | None = typer.Option(None, help="also write the rows as JSON here"),
) -> None:
    logging.basicConfig(level=logging.WARNING)
    dataset = load_data(data)
    run = read_trec_run(data / "run.bm25.trec")
    qids = dataset.query_ids(run)[:queries]
    items = [(dataset.queries[q], [dataset.corpus[d] for d in ranked(run[q])[:top_k]]) for q in qids]
    ids = [ranked(run[q])[:top_k] for q in qids]
    qrels = {q: dataset.qrels[q] for q in qids}
    before = aggregate(qrels, {q: run[q] for q in qids})
    shared = load_backend(model, backend, **parse_options(option))
    rows = []
    try:
        for budget in budgets:
            with ReasonRanker(
                backend=shared, window_size=top_k, step=top_k // 2,
                max_passage_tokens=max_passage_tokens, reasoning_budget=budget,
            ) as ranker:  # fmt: skip
                began = time.perf_counter()
                results = ranker.rerank_many(items, schedule="sequential")
                wall = time.perf_counter() - began
            after_run = {
                q: {ids[n][i]: float(top_k - r) for r, i in enumerate(res.order)}
                for n, (q, res) in enumerate(zip(qids, results))
            }
            windows = [w for res in results for w in res.windows]
            rows.append({
                "budget": budget,
                "nDCG@10": aggregate(qrels, after_run)["nDCG@10"],
                "windows": len(windows),
                "forced": sum(w.forced for w in windows),
                "statuses": dict(Counter(str(w.status) for w in windows)),
                "prompt_per_window": statistics.fmean(w.prompt_tokens for w in windows),
                "completion_per_window": statistics.fmean(w.completion_tokens for w in windows),
                "seconds_per_window": wall / len(windows),
            })  # fmt: skip
    finally:
        shared.close()
    ref = rows[-1]
    typer.echo(f"{len(qids)} DL19 queries x 1 window of {top_k}; {shared.name} {shared.model_name}")
    typer.echo(f"nDCG@10 first stage {before['nDCG@10']:.4f}")
    typer.echo(
        f"{'budget':>7} {'nDCG@10':>8} {'forced':>7} {'prompt/w':>9} {'compl/w':>8} {'s/window':>9} "
        f"{'compl x':>8} {'time x':>7}  statuses"
    )
    for r in rows:
        typer.echo(
            f"{r['budget']:>7} {r['nDCG@10']:>8.4f} {r['forced']:>4}/{r['windows']:<2} {r['prompt_per_window']:>9.0f} "
            f"{r['completion_per_window']:>8.0f} {r['seconds_per_window']:>9.1f} "
            f"{r['completion_per_window'] / ref['completion_per_window']:>7.2f}x "
            f"{r['seconds_per_window'] / ref['seconds_per_window']:>6.2f}x  {r['statuses']}"
        )
    typer.echo(f"(ratios against budget {ref['budget']})")
    if out:
        out.write_text(json.dumps({"first_stage": before, "queries": qids, "rows": rows}, indent=1))


if __name__ == "__main__":
    typer.run(main)
