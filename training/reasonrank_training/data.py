"""Inputs and JSONL files: BEIR folders with a TREC run, or ``{qid, query, candidates}`` records.

Every stage writes one JSON object a line (``datasets.load_dataset("json", ...)`` reads it) and
appends, so a stage that was stopped resumes where it left off.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrank_plugins import Passage
from reasonrank_plugins.windows import window_spans

logger = logging.getLogger(__name__)


@dataclass
class QueryItem:
    """One query and its ranked candidates (first-stage order)."""

    qid: str
    query: str
    candidates: list[dict[str, str]]  # {"docid", "text", "title"?}
    answer: str | None = None
    dataset: str = "default"


@dataclass
class Window:
    """Candidates ``[start, end)`` of one query: the unit of synthesis and training."""

    item: QueryItem
    start: int
    end: int
    candidates: list[dict[str, str]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.item.qid}:{self.start}-{self.end}"

    @property
    def initial_list(self) -> list[str]:
        return [c["docid"] for c in self.candidates]

    def record(self, teacher: str) -> dict[str, Any]:
        """The fields every synth record of this window carries, before its teacher's answer."""
        return {
            "qid": self.item.qid,
            "query": self.item.query,
            "dataset": self.item.dataset,
            "answer": self.item.answer,
            "window": [self.start, self.end],
            "candidates": self.candidates,
            "initial_list": self.initial_list,
            "teacher": teacher,
        }


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` atomically (to a temporary file, then renamed); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels ``qid 0 docid rel`` as ``{qid: {docid: rel}}``."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4:
                qrels[parts[0]][parts[2]] = int(parts[3])
    return dict(qrels)


def load_beir(
    folder: str | Path, run: str | Path | None = None, *, depth: int = 20, dataset: str | None = None
) -> list[QueryItem]:
    """Queries of a BEIR folder with the top ``depth`` candidates of a TREC run (in run order).

    ``run`` defaults to the folder's ``run.bm25.trec``. Queries without candidates are skipped.
    """
    folder = Path(folder)
    run_path = Path(run) if run else folder / "run.bm25.trec"
    ranked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with open(run_path, encoding="utf-8") as f:
        for line in f:
            qid, _, docid, rank, *_ = line.split()
            ranked[qid].append((int(rank), docid))
    wanted = {d for docs in ranked.values() for _, d in sorted(docs)[:depth]}
    corpus = {}
    for row in read_jsonl(folder / "corpus.jsonl"):
        if row["_id"] in wanted:
            corpus[row["_id"]] = {
                "docid": row["_id"],
                "text": row.get("text", ""),
                "title": row.get("title", ""),
            }
    items = []
    for row in read_jsonl(folder / "queries.jsonl"):
        docs = [corpus[d] for _, d in sorted(ranked.get(row["_id"], []))[:depth] if d in corpus]
        if docs:
            items.append(QueryItem(row["_id"], row["text"], docs, row.get("answer"), dataset or folder.name))
    return items


def load_records(
    path: str | Path, *, depth: int | None = None, dataset: str | None = None
) -> list[QueryItem]:
    """JSONL records ``{qid, query, candidates: [{docid, text, title?}], answer?, dataset?}``."""
    items = []
    for row in read_jsonl(path):
        candidates = [{**c, "docid": str(c["docid"])} for c in row["candidates"]][:depth]
        items.append(
            QueryItem(
                str(row["qid"]),
                row["query"],
                candidates,
                row.get("answer"),
                row.get("dataset") or dataset or Path(path).stem,
            )
        )
    return items


def load_items(source: str | Path, **kwargs: Any) -> list[QueryItem]:
    """A BEIR folder (with ``run=`` or its ``run.bm25.trec``) or a JSONL file of records."""
    if Path(source).is_dir():
        return load_beir(source, **kwargs)
    kwargs.pop("run", None)
    return load_records(source, **kwargs)


def windows(items: Iterable[QueryItem], window_size: int = 20, step: int = 10) -> Iterator[Window]:
    """Each query's sliding windows, in the core engine's order (back to front)."""
    for item in items:
        spans = window_spans(len(item.candidates), window_size, step) or [(0, len(item.candidates))]
        for start, end in spans:
            yield Window(item, start, end, item.candidates[start:end])


def to_passage(candidate: dict[str, str]) -> Passage:
    return Passage(
        text=candidate.get("text", ""), title=candidate.get("title") or None, id=candidate["docid"]
    )
