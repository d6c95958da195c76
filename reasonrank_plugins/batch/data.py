"""Read a BEIR folder (``corpus.jsonl``, ``queries.jsonl``) and a TREC run into rerank items.

A minimal reader kept here so that ``batch`` needs no evaluation extras.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class BatchItem:
    """One query and its first-stage candidates, best first."""

    qid: str
    query: str
    docids: list[str]
    texts: list[str]
    titles: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, payload: str) -> BatchItem:
        return cls(**json.loads(payload))


def read_run(path: Path, depth: int) -> dict[str, list[str]]:
    """TREC run ``qid Q0 docid rank score tag`` -> the top ``depth`` docids of each query, by rank."""
    ranked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4:
                raise ValueError(f"{path}:{n}: not a TREC run line: {line.strip()!r}")
            ranked[fields[0]].append((int(fields[3]), fields[2]))
    return {qid: [d for _, d in sorted(pairs)[:depth]] for qid, pairs in ranked.items()}


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_items(data: str | Path, run: str | Path, depth: int = 100) -> list[BatchItem]:
    """Items for every query of ``run`` that ``queries.jsonl`` has, in run order; only the corpus
    documents the run names are kept in memory."""
    root = Path(data)
    candidates = read_run(Path(run), depth)
    queries = {str(q["_id"]): q["text"] for q in _read_jsonl(root / "queries.jsonl")}
    wanted = {d for docids in candidates.values() for d in docids}
    corpus: dict[str, tuple[str, str]] = {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            doc = json.loads(line)
            if str(doc["_id"]) in wanted:
                corpus[str(doc["_id"])] = (doc.get("text") or "", doc.get("title") or "")
    items = []
    for qid, docids in candidates.items():
        if qid not in queries:
            logger.warning("query %s of the run is not in queries.jsonl: skipped", qid)
            continue
        found = [d for d in docids if d in corpus]
        if len(found) < len(docids):
            logger.warning(
                "query %s: %d run documents missing from the corpus", qid, len(docids) - len(found)
            )
        if not found:
            continue
        items.append(
            BatchItem(qid, queries[qid], found, [corpus[d][0] for d in found], [corpus[d][1] for d in found])
        )
    return items
