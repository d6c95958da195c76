"""``reasonrank rerank`` and ``reasonrank models``."""

from __future__ import annotations

import csv
import json
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import ftfy
import typer

from ..types import Passage, RerankResult
from . import app
from ..options import RankerOptions
from .options import ranker_options


def read_passages(path: Path) -> list[Passage]:
    """JSONL (``text``/``contents``, optional ``title``, ``id``/``docid``/``_id``) or TSV (``id<TAB>text``
    or ``text`` per line)."""
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist", param_hint="--passages")
    passages = []
    if path.suffix in (".jsonl", ".json"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(f"{path}:{n} is not valid JSON ({exc})", param_hint="--passages") from exc
            if not isinstance(record, dict):
                raise typer.BadParameter(f"{path}:{n} is not a JSON object", param_hint="--passages")
            text = record.get("text", record.get("contents"))
            if not isinstance(text, str):
                raise typer.BadParameter(f"{path}:{n} has no string 'text' field", param_hint="--passages")
            pid = record.get("id", record.get("docid", record.get("_id")))
            passages.append(Passage(text, record.get("title") or None, None if pid is None else str(pid)))
    else:
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row:
                    passages.append(Passage(row[-1], id=row[0] if len(row) > 1 else None))
    return passages


def result_json(result: RerankResult) -> dict:
    return {
        "query": result.query,
        "order": result.order,
        "results": [
            {"index": h.index, "id": h.passage.id, "rank": h.rank, "score": h.score, "text": h.passage.text}
            for h in result.hits
        ],
        "windows": [{**asdict(w), "status": str(w.status)} for w in result.windows],
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "forced": result.forced,
        "seconds": result.seconds,
        "strategy": result.strategy,
        "depth": result.depth,
        "statuses": dict(sorted(result.statuses.items())),
        "timed_out": result.timed_out,
    }


def reasoning_text(reasoning: str, limit: int | None = None, width: int = 100) -> str:
    """Reasoning for a terminal: wrapped to ``width``, indented, and cut after ``limit`` characters
    (``None`` or 0: all of it) with a note of its full length."""
    if not reasoning.strip():
        return "  (none)"
    text = reasoning.strip()
    if limit and len(text) > limit:
        text = f"{text[:limit].rstrip()} … [cut: {len(reasoning.strip())} characters in all; --json has them]"
    lines = []
    for paragraph in text.splitlines():
        lines += textwrap.wrap(paragraph, width, initial_indent="  ", subsequent_indent="  ") or [""]
    return "\n".join(lines)


def print_result(result: RerankResult, reasoning_chars: int | None = None) -> None:
    """Each window's status, reasoning (``reasoning_text``) and answer, then the new order."""
    for n, w in enumerate(result.windows, start=1):
        typer.secho(
            f"--- window {n}/{len(result.windows)} ({w.kind}, round {w.round + 1}): "
            f"ranks {w.start + 1}-{w.end}, {w.status}{f' ({w.error})' if w.error else ''}"
            f"{', forced answer' if w.forced else ''}, {w.prompt_tokens}+{w.completion_tokens} tokens, "
            f"{w.seconds:.1f}s",
            bold=True,
        )
        typer.echo("reasoning:\n" + reasoning_text(w.reasoning or "", reasoning_chars))
        typer.echo(f"answer: {w.answer or '(none)'}")
    typer.secho(f"--- new order for: {result.query}", bold=True)
    for h in result.hits:
        label = h.passage.id if h.passage.id is not None else f"#{h.index}"
        snippet = " ".join(ftfy.fix_text(h.passage.text).split())[:90]  # as the prompt shows it
        typer.echo(f"{h.rank + 1:>3}. {label} (was {h.index + 1}, score {h.score:.3f}) {snippet}")
    typer.echo(
        f"{result.strategy}: {len(result.windows)} windows in {result.depth} rounds"
        f"{', deadline passed' if result.timed_out else ''}, {result.seconds:.1f}s, "
        f"{result.prompt_tokens} prompt + {result.completion_tokens} completion tokens"
    )


@app.command()
@ranker_options()
def rerank(
    query: str = typer.Option(..., "--query", "-q", help="The search query."),
    passages: Path = typer.Option(..., "--passages", "-p", help="Passages: .jsonl or .tsv"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Show only the best k."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    *,
    options: RankerOptions,
) -> None:
    """Rerank passages for one query and print each window's reasoning and the new order."""
    items = read_passages(passages)
    try:
        with options.build() as ranker:
            result = ranker.rerank(query, items, top_k=top_k)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result_json(result), ensure_ascii=False, indent=1))
    else:
        print_result(result)

