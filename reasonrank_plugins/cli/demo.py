"""``reasonrank demo``: rerank a real DL19 query's BM25 top 20 (bundled with the package) with the
embedded model, and show the labels and nDCG@10 before and after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..options import RankerOptions
from . import app
from .options import ranker_options
from .rerank import print_result, result_json


def ndcg10(qrels: dict[str, dict[str, int]], qid: str, docids: list[str]) -> float | None:
    """nDCG@10 of ``docids`` (best first) with ir-measures, or ``None`` when it is not installed."""
    from ..eval.metrics import per_query

    try:
        values = per_query(qrels, {qid: {d: float(len(docids) - r) for r, d in enumerate(docids)}}, ["nDCG@10"])
    except ImportError:  # ir_measures, imported when first used
        return None
    return values.get(qid, {}).get("nDCG@10", 0.0)


@app.command()
@ranker_options(exclude=("depth",), max_passage_tokens=100)
def demo(
    data: Optional[Path] = typer.Option(
        None, help="A BEIR-layout folder with run.bm25.trec (default: the bundled DL19 query)."
    ),
    query_index: int = typer.Option(0, "--query", help="Which judged query of --data (0-based, file order)."),
    depth: int = typer.Option(20, help="How many first-stage candidates to rerank."),
    reasoning_chars: int = typer.Option(600, help="Cut each window's printed reasoning here (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output, the reasoning in full."),
    *,
    options: RankerOptions,
) -> None:
    """Rerank one DL19 query's BM25 top 20 and print the reasoning, the new order, the relevance
    labels and nDCG@10 before and after. The query ships with the package (MS MARCO passages:
    non-commercial research use); --data DIR takes a query from a BEIR-layout folder instead.
    Passages are cut to 100 tokens by default, which suits web passages such as DL19."""
    from ..eval.data import load_beir, load_example, ranked

    if data is None:
        collection = load_example()
    elif not (data / "run.bm25.trec").exists():
        raise typer.BadParameter(f"{data} has no run.bm25.trec", param_hint="--data")
    else:
        try:
            collection = load_beir(data, run=data / "run.bm25.trec")
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--data") from exc
    qids = collection.query_ids(collection.run)
    if not 0 <= query_index < len(qids):
        raise typer.BadParameter(f"--query must be in [0, {len(qids)})", param_hint="--query")
    if depth < 1:
        raise typer.BadParameter("--depth must be at least 1", param_hint="--depth")
    qid = qids[query_index]
    docids = ranked(collection.run[qid])[:depth]
    passages = [collection.corpus[d] for d in docids]
    query = collection.queries[qid]
    if not as_json:
        typer.secho(f"query {qid}: {query}  ({len(passages)} BM25 candidates, {collection.name})", bold=True)
    try:
        with options.build() as ranker:
            result = ranker.rerank(query, passages)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    reranked = [docids[i] for i in result.order]
    labels = collection.qrels.get(qid, {})
    before, after = ndcg10(collection.qrels, qid, docids), ndcg10(collection.qrels, qid, reranked)
    if as_json:
        out = {"qid": qid, "data": collection.name, **result_json(result),
               "labels": {"first_stage": [labels.get(d, 0) for d in docids],
                          "reranked": [labels.get(d, 0) for d in reranked]},
               "ndcg@10": {"first_stage": before, "reranked": after}}
        typer.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    print_result(result, reasoning_chars or None)
    typer.echo("relevance labels (0-3), BM25 order:     " + " ".join(str(labels.get(d, 0)) for d in docids))
    typer.echo("relevance labels (0-3), reranked order: " + " ".join(str(labels.get(d, 0)) for d in reranked))
    if before is None or after is None:
        typer.echo("nDCG@10 needs ir-measures: pip install 'reasonrank-plugins[demo]'")
    else:
        typer.echo(f"nDCG@10: BM25 {before:.4f} -> reranked {after:.4f}")
