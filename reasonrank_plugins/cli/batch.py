"""``reasonrank batch``: rerank a TREC run over a BEIR folder, resumably, in-process or on Ray."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from ..options import RankerOptions
from .options import ranker_options


@app.command()
@ranker_options(exclude=("depth",))
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
    *,
    options: RankerOptions,
) -> None:
    """Rerank every query of a first-stage run; write OUT/parts/*.jsonl and OUT/run.trec."""
    from ..batch import load_items, run_batch

    run = run or data / "run.bm25.trec"
    for path in (data / "corpus.jsonl", data / "queries.jsonl", run):
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
    items = load_items(data, run, depth)
    try:
        summary = run_batch(
            items,
            options,
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
