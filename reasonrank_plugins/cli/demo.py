"""``reasonrank demo``: rerank a real DL19 query's BM25 top 20 with the embedded model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from .rerank import print_result

DEFAULT_DATA = Path("../shared/data/dl19")


@app.command()
def demo(
    data: Optional[Path] = typer.Option(None, help="A BEIR-layout folder with run.bm25.trec (default: DL19)."),
    query_index: int = typer.Option(0, "--query", help="Which judged query (0-based, file order)."),
    depth: int = typer.Option(20, help="How many first-stage candidates to rerank."),
    model: str = typer.Option("demo", help="'demo', a local path or a hub id."),
    backend: str = typer.Option("auto"),
    max_passage_tokens: int = typer.Option(100, help="100 suits web passages such as DL19."),
    reasoning_budget: int = typer.Option(3072),
) -> None:
    """Rerank one DL19 query's BM25 top 20 and print the reasoning, the new order and the labels."""
    from ..eval.data import load_beir, ranked
    from ..ranker import ReasonRanker

    root = data or next((p for p in (DEFAULT_DATA, Path(__file__).parents[3] / "shared/data/dl19") if p.exists()),
                        DEFAULT_DATA)
    if not (root / "run.bm25.trec").exists():
        raise typer.BadParameter(f"{root} has no run.bm25.trec; pass --data DIR", param_hint="--data")
    collection = load_beir(root, run=root / "run.bm25.trec")
    qids = collection.query_ids(collection.run)
    if not 0 <= query_index < len(qids):
        raise typer.BadParameter(f"--query must be in [0, {len(qids)})", param_hint="--query")
    qid = qids[query_index]
    docids = ranked(collection.run[qid])[:depth]
    passages = [collection.corpus[d] for d in docids]
    typer.secho(f"query {qid}: {collection.queries[qid]}  ({len(passages)} BM25 candidates)", bold=True)
    with ReasonRanker(model, backend, max_passage_tokens=max_passage_tokens,
                      reasoning_budget=reasoning_budget) as ranker:
        result = ranker.rerank(collection.queries[qid], passages)
    print_result(result)
    labels = collection.qrels.get(qid, {})
    typer.echo("relevance labels, BM25 order:     " + " ".join(str(labels.get(d, 0)) for d in docids))
    typer.echo("relevance labels, reranked order: " + " ".join(str(labels.get(docids[i], 0)) for i in result.order))
