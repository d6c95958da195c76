"""``reasonrank batch``: rerank a TREC run over a BEIR folder, resumably, in-process or on Ray."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .options import BACKEND_HELP, BASE_URL_HELP, CUTOFF, LATENCY_HELP, MAX_BATCH_HELP, STRATEGY, ranker_spec


@app.command()
def batch(
    data: Path = typer.Option(..., help="BEIR folder: corpus.jsonl and queries.jsonl."),
    run: Path | None = typer.Option(None, help="First-stage TREC run (default DATA/run.bm25.trec)."),
    out: Path = typer.Option(..., help="Output folder; a rerun skips the queries already there."),
    depth: int = typer.Option(100, help="Rerank the top DEPTH candidates of each query."),
    batch_size: int = typer.Option(8, help="Queries per worker call (their windows are batched)."),
    use_ray: bool = typer.Option(
        False, "--ray", help="Run on Ray Data (local, or the cluster at --ray-address)."
    ),
    num_replicas: int = typer.Option(1, help="Ray actors, each holding one ranker."),
    num_cpus: float = typer.Option(1.0, help="CPUs per Ray actor."),
    num_gpus: float = typer.Option(0.0, help="GPUs per Ray actor."),
    ray_address: str | None = typer.Option(None, help="Ray cluster address (default $RAY_ADDRESS or local)."),
    model: str = typer.Option("demo", help="'demo', a local path or a hub id."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    base_url: list[str] = typer.Option([], help=BASE_URL_HELP),
    window_size: int = typer.Option(20, "--window-size", "--window"),
    step: int = typer.Option(10),
    max_passage_tokens: int = typer.Option(512),
    reasoning_budget: int = typer.Option(3072),
    strategy: str = STRATEGY,
    cutoff: int = CUTOFF,
    latency: float = typer.Option(0.0, help=LATENCY_HELP),
    max_batch: int | None = typer.Option(None, help=MAX_BATCH_HELP),
) -> None:
    """Rerank every query of a first-stage run; write OUT/parts/*.jsonl and OUT/run.trec."""
    from ..batch import load_items, run_batch

    run = run or data / "run.bm25.trec"
    for path in (data / "corpus.jsonl", data / "queries.jsonl", run):
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
    spec = ranker_spec(
        model, backend, base_url, window_size, step, max_passage_tokens, reasoning_budget, latency, max_batch,
        strategy=strategy, cutoff=cutoff,
    )
    items = load_items(data, run, depth)
    try:
        summary = run_batch(
            items,
            spec,
            out,
            batch_size=batch_size,
            use_ray=use_ray,
            num_replicas=num_replicas,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            ray_address=ray_address,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(
        f"{summary.total} queries: {summary.skipped} already done, {len(summary.computed)} reranked "
        f"in {summary.seconds:.1f}s -> {summary.run_path}"
    )
