"""Evaluation data providers: the BEIR layout (+ a TREC run) and BRIGHT's own layout."""

from __future__ import annotations

import csv
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..types import Passage

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]  # qid -> docid -> score
Qrels = dict[str, dict[str, int]]  # qid -> docid -> relevance


@dataclass
class EvalData:
    """One test collection: documents, queries, judgements, an optional first-stage run, and the
    documents to drop per query before scoring (BRIGHT's ``excluded_ids``)."""

    name: str
    corpus: dict[str, Passage]
    queries: dict[str, str]  # in file order
    qrels: Qrels
    run: Run | None = None
    excluded: dict[str, set[str]] = field(default_factory=dict)
    layout: str = "beir"

    def query_ids(self, run: Run | None = None) -> list[str]:
        """Queries that have judgements (and candidates in ``run`` when given), in file order."""
        return [q for q in self.queries if q in self.qrels and (run is None or run.get(q))]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_trec_run(path: str | Path) -> Run:
    """A TREC run (``qid Q0 docid rank score tag``) read with ir-measures."""
    import ir_measures

    run: Run = {}
    for doc in ir_measures.read_trec_run(str(path)):
        run.setdefault(doc.query_id, {})[doc.doc_id] = doc.score
    return run


def write_trec_run(run: Run, path: str | Path, tag: str) -> None:
    """Write ``run`` best first per query; each query's scores must already be distinct."""
    with Path(path).open("w", encoding="utf-8") as f:
        for qid, docs in run.items():
            f.writelines(
                f"{qid} Q0 {docid} {rank} {score!r} {tag}\n"
                for rank, (docid, score) in enumerate(sorted(docs.items(), key=lambda d: -d[1]), start=1)
            )


def read_qrels(path: Path) -> Qrels:
    """TREC qrels (``qid 0 docid rel``, read with ir-measures) or BEIR's ``qrels/<split>.tsv``."""
    qrels: Qrels = {}
    if path.suffix == ".tsv":
        with path.open(encoding="utf-8", newline="") as f:
            rows = csv.reader(f, delimiter="\t")
            for row in rows:
                if len(row) >= 3 and row[2].lstrip("-").isdigit():  # skips the header
                    qrels.setdefault(row[0], {})[row[1]] = int(row[2])
        return qrels
    import ir_measures

    for qrel in ir_measures.read_trec_qrels(str(path)):
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.relevance
    return qrels


def ranked(docs: dict[str, float]) -> list[str]:
    """Doc ids best first (ties keep their insertion order)."""
    return sorted(docs, key=lambda d: -docs[d])


def load_beir(path: str | Path, run: str | Path | None = None, split: str = "test") -> EvalData:
    """``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``), and
    ``qrels.trec`` or ``qrels/<split>.tsv``; ``run`` is an optional TREC first-stage run."""
    root = Path(path)
    qrels_path = root / "qrels.trec"
    if not qrels_path.exists():
        qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.exists():
            raise ValueError(f"{root} is not in the BEIR layout: {needed.name} is missing")
    corpus = {
        str(d["_id"]): Passage(d.get("text") or "", title=d.get("title") or None, id=str(d["_id"]))
        for d in read_jsonl(root / "corpus.jsonl")
    }
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(root / "queries.jsonl")}
    return EvalData(
        name=root.name,
        corpus=corpus,
        queries=queries,
        qrels=read_qrels(qrels_path),
        run=read_trec_run(run) if run else None,
    )


DEMO_EXAMPLE = "dl19-264014.json"  # in reasonrank_plugins/data/demo/, with its SOURCE.md


def load_example(path: str | Path | None = None) -> EvalData:
    """A one-query example file: ``query`` (``id``, ``text``), ``candidates`` (``id``, ``title``,
    ``text``, first-stage ``rank`` and ``score``) and the query's ``qrels``. Without ``path``, the
    example bundled with the package (a TREC DL 2019 query and its BM25 top 20; see
    ``data/demo/SOURCE.md`` for its source and licence), which ``reasonrank demo`` reranks."""
    if path is None:
        text = resources.files("reasonrank_plugins").joinpath("data", "demo", DEMO_EXAMPLE).read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    example = json.loads(text)
    qid, candidates = str(example["query"]["id"]), example["candidates"]
    return EvalData(
        name=example.get("name", qid),
        corpus={
            str(c["id"]): Passage(c["text"], title=c.get("title") or None, id=str(c["id"])) for c in candidates
        },
        queries={qid: example["query"]["text"]},
        qrels={qid: {str(d): int(r) for d, r in example["qrels"].items()}},
        run={qid: {str(c["id"]): float(c["score"]) for c in candidates}},
        layout="example",
    )


def _records(folder: Path, task: str) -> list[dict[str, Any]]:
    """Records of ``task`` in a BRIGHT folder: ``<task>*.parquet`` (as on the hub) or ``.jsonl``."""
    files = sorted(folder.glob(f"{task}-*.parquet")) + sorted(folder.glob(f"{task}.parquet"))
    if files:
        import pyarrow.parquet as pq

        return [r for f in files for r in pq.read_table(f).to_pylist()]
    files = sorted(folder.glob(f"{task}-*.jsonl")) + sorted(folder.glob(f"{task}.jsonl"))
    if not files:
        raise ValueError(f"no {task}*.parquet or {task}*.jsonl in {folder}")
    return [r for f in files for r in read_jsonl(f)]


def load_bright(path: str | Path, task: str, long_documents: bool = False) -> EvalData:
    """BRIGHT's layout: ``examples/<task>*`` records (``id``, ``query``, ``gold_ids``,
    ``gold_ids_long``, ``excluded_ids``) and ``documents/<task>*`` (or ``long_documents/``)
    records (``id``, ``content``). ``"N/A"`` in ``excluded_ids`` means none."""
    root = Path(path)
    docs_dir = root / ("long_documents" if long_documents else "documents")
    if not (root / "examples").is_dir() or not docs_dir.is_dir():
        raise ValueError(f"{root} is not in BRIGHT's layout: needs examples/ and {docs_dir.name}/")
    corpus = {str(d["id"]): Passage(d["content"] or "", id=str(d["id"])) for d in _records(docs_dir, task)}
    queries, qrels, excluded = {}, {}, {}
    gold_key = "gold_ids_long" if long_documents else "gold_ids"
    for e in _records(root / "examples", task):
        qid = str(e["id"])
        queries[qid] = e["query"]
        qrels[qid] = {str(g): 1 for g in e[gold_key]}
        excluded[qid] = {str(x) for x in e.get("excluded_ids") or []} - {"N/A"}
    return EvalData(
        name=f"bright-{task}", corpus=corpus, queries=queries, qrels=qrels, excluded=excluded, layout="bright"
    )


def load_data(
    path: str | Path, *, task: str | None = None, run: str | Path | None = None, long_documents: bool = False
) -> EvalData:
    """Load a BRIGHT folder (it has ``examples/``; ``task`` needed) or a BEIR folder."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"data folder {root} does not exist")
    if (root / "examples").is_dir():
        if not task:
            raise ValueError(f"{root} is a BRIGHT folder: name the task (e.g. biology)")
        data = load_bright(root, task, long_documents)
        if run:
            data.run = read_trec_run(run)
        return data
    if task:
        raise ValueError(f"{root} is a BEIR folder; a task only applies to BRIGHT")
    return load_beir(root, run)


def drop_excluded(run: Run, excluded: dict[str, set[str]]) -> Run:
    """``run`` without each query's excluded documents (BRIGHT removes them before scoring)."""
    return {q: {d: s for d, s in docs.items() if d not in excluded.get(q, ())} for q, docs in run.items()}


def select_queries(qids: list[str], count: int | None = None, seed: int | None = None) -> list[str]:
    """The first ``count`` ids, or with ``seed`` a random sample of ``count`` kept in file order."""
    if count is None or count >= len(qids):
        return list(qids)
    if seed is None:
        return qids[:count]
    chosen = set(random.Random(seed).sample(qids, count))
    return [q for q in qids if q in chosen]
