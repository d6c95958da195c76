"""``reasonrank eval`` (rerank a test collection, resumable) and ``reasonrank compare``."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from ..demo_model import is_embedded
from . import app
from ..options import RankerOptions
from .options import ranker_options


def _first_stage(data, run: Path | None, retrieve: str | None, depth: int, root: Path):
    """``--run``/``--retrieve`` as :func:`first_stage` arguments: ``--retrieve bm25`` skips the
    folder's ``run.bm25.trec``."""
    from ..eval.retrieve import first_stage

    if run and retrieve:
        raise typer.BadParameter("give --run or --retrieve, not both", param_hint="--retrieve")
    if retrieve not in (None, "bm25"):
        raise typer.BadParameter(f"only 'bm25' is supported, got {retrieve!r}", param_hint="--retrieve")
    if run is not None and not run.exists():
        raise typer.BadParameter(f"{run} does not exist", param_hint="--run")
    if run is None and (retrieve or not (root / "run.bm25.trec").exists()):
        typer.echo(f"retrieving the first stage with bm25s over {len(data.corpus)} documents", err=True)
    return first_stage(data, depth, run=run, root=None if retrieve else root)


@app.command("eval")
@ranker_options(exclude=("depth",))
def eval_command(
    data_dir: Path = typer.Option(
        ...,
        "--data",
        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels) or BRIGHT folder (examples/, documents/).",
    ),
    task: str | None = typer.Option(None, help="BRIGHT task, e.g. biology."),
    long_documents: bool = typer.Option(False, help="BRIGHT: long_documents/ and gold_ids_long."),
    run: Path | None = typer.Option(
        None, help="First-stage TREC run (default: run.bm25.trec in --data, else BM25)."
    ),
    retrieve: str | None = typer.Option(None, help="'bm25': retrieve with bm25s (k1 0.9, b 0.4)."),
    depth: int = typer.Option(100, help="First-stage depth kept in the runs."),
    top_k: int = typer.Option(100, help="Rerank this many candidates per query."),
    queries: int | None = typer.Option(None, help="Evaluate only this many queries."),
    seed: int | None = typer.Option(None, help="With --queries: a random sample drawn with this seed."),
    parallel: int = typer.Option(
        1, help="Queries in flight at once (a batching backend or a server's slots)."
    ),
    out: Path | None = typer.Option(
        None, help="Output folder (default runs/<data>-<model>-top<k>); run the same command again to resume."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar with the running nDCG@10."),
    *,
    options: RankerOptions,
) -> None:
    """Rerank a test collection's first stage; write the run, a JSON report and a figure."""
    from ..eval.data import drop_excluded, load_data, select_queries
    from ..eval.runner import evaluate

    try:
        data = load_data(data_dir, task=task, long_documents=long_documents)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from exc
    first_stage, source = _first_stage(data, run, retrieve, depth, data_dir)
    qids = select_queries(data.query_ids(drop_excluded(first_stage, data.excluded)), queries, seed)
    model, strategy = options.model, options.strategy
    label = (
        f"scripted-{model}" if options.backend == "scripted" else (model if is_embedded(model) else Path(model).stem)
    )
    folder = f"{data.name}-{label}-top{top_k}" + ("" if strategy == "sliding" else f"-{strategy}")
    out = out or Path("runs") / re.sub(r"[^\w.-]+", "_", folder)
    command = shlex.join(["reasonrank", *sys.argv[1:]])
    try:
        with options.build() as ranker:
            report = evaluate(
                data,
                ranker,
                out,
                first_stage=first_stage,
                source=source,
                qids=qids,
                top_k=top_k,
                parallel=parallel,
                command=command,
                show_progress=progress,
            )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    m = report["metrics"]
    typer.echo(f"{report['queries']['evaluated']} queries, {report['model']} on {report['backend']}")
    for name in report["measures"]:
        typer.echo(f"  {name:<8} {m['before'][name]:.4f} -> {m['after'][name]:.4f} ({m['delta'][name]:+.4f})")
    s, t, w, d = report["seconds"], report["tokens"], report["windows"], report["depth"]
    typer.echo(
        f"  {s['per_query_mean']:.1f} s/query, {t['prompt_per_query']:.0f}+{t['completion_per_query']:.0f} "
        f"tokens/query, forced {report['forced']}, statuses {report['statuses']}"
    )
    typer.echo(
        f"  {report['strategy']}: {w['per_query_mean']:.1f} windows/query (max {w['per_query_max']}), "
        f"depth {d['per_query_mean']:.1f} rounds/query (max {d['per_query_max']})"
    )
    typer.echo(f"wrote {out}/run.trec, {out}/report.json, {out}/figure.png")


@app.command()
def compare(
    a: Path = typer.Argument(..., help="First eval report (report.json)."),
    b: Path = typer.Argument(..., help="Second eval report."),
    measure: list[str] = typer.Option([], help="Measures to test (default: all both reports have)."),
) -> None:
    """Print two eval reports side by side with paired t-tests on the reranked per-query values."""
    from ..eval.compare import compare_reports

    reports = []
    for path in (a, b):
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
        reports.append(json.loads(path.read_text()))
    ra, rb = reports
    rows = [
        ("data", ra["data"]["name"], rb["data"]["name"]),
        ("model", ra["model"], rb["model"]),
        ("backend", ra["backend"], rb["backend"]),
        ("queries", ra["queries"]["evaluated"], rb["queries"]["evaluated"]),
        ("strategy", *(r.get("strategy", "sliding") for r in reports)),
        (
            "top_k / window / step",
            *(
                f"{r['settings']['top_k']} / {r['settings']['window_size']} / {r['settings']['step']}"
                for r in reports
            ),
        ),
        ("windows / query", *(_per_query(r, "windows") for r in reports)),
        ("depth (rounds) / query", *(_per_query(r, "depth") for r in reports)),
        ("s / query", *(f"{r['seconds']['per_query_mean']:.2f}" for r in reports)),
        ("prompt tok / query", *(f"{r['tokens']['prompt_per_query']:.0f}" for r in reports)),
        ("completion tok / query", *(f"{r['tokens']['completion_per_query']:.0f}" for r in reports)),
        ("forced", ra["forced"], rb["forced"]),
        ("statuses", ra["statuses"], rb["statuses"]),
    ]
    width = max(28, *(len(str(v)) + 2 for row in rows for v in row[1:]))
    typer.echo(f"{'':<24}{'A':<{width}}{'B':<{width}}")
    for name, x, y in rows:
        typer.echo(f"{name:<24}{x!s:<{width}}{y!s:<{width}}")
    typer.echo(
        f"\n{'measure':<10}{'A before':>9}{'A after':>9}{'B before':>9}{'B after':>9}"
        f"{'B-A':>9}{'95% CI':>20}{'n':>5}{'t':>8}{'p':>8}"
    )
    for test in compare_reports(ra, rb, measure or None):
        m = test.measure
        t = "n/a" if test.t is None else f"{test.t:.2f}"
        p = "n/a" if test.p is None else f"{test.p:.3f}"
        ci = "n/a" if test.ci_low is None else f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]"
        typer.echo(
            f"{m:<10}{ra['metrics']['before'][m]:>9.4f}{ra['metrics']['after'][m]:>9.4f}"
            f"{rb['metrics']['before'][m]:>9.4f}{rb['metrics']['after'][m]:>9.4f}"
            f"{test.delta:>+9.4f}{ci:>20}{test.n:>5}{t:>8}{p:>8}"
        )
    typer.echo(
        "B-A, t and p: paired two-sided t-test (scipy) on the reranked values of the shared queries; "
        "95% CI: paired bootstrap over queries (10,000 resamples, seed 0)."
    )


def _per_query(report: dict[str, Any], key: str) -> str:
    """``mean (max N)`` of a per-query count; ``n/a`` for a report written before it was recorded."""
    spread = report.get(key)
    if not isinstance(spread, dict):
        return "n/a"
    return f"{spread['per_query_mean']:.1f} (max {spread['per_query_max']})"
