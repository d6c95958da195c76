"""Fixtures shared by the core tests: the evaluation data, a tiny Qwen2 and the demo ranker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_dl19_top(qid_index: int = 0, depth: int = 20) -> tuple[str, list[tuple[str, str]]]:
    """The ``qid_index``-th DL19 query and its BM25 top-``depth`` as (docid, text) pairs."""
    root = DATA / "dl19"
    queries = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
    query = queries[qid_index]
    docids = [
        line.split()[2]
        for line in (root / "run.bm25.trec").read_text().splitlines()
        if line.split()[0] == query["_id"]
    ][:depth]
    wanted = set(docids)
    corpus = {}
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in wanted:
                corpus[record["_id"]] = record["text"]
    return query["text"], [(d, corpus[d]) for d in docids]


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reasonrank_plugins.testing import make_tiny_qwen2

    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def demo_ranker():
    """One demo-model ranker (llama.cpp) for the whole session, with a bounded reasoning budget."""
    from reasonrank_plugins import ReasonRanker

    with ReasonRanker("demo", max_passage_tokens=100, reasoning_budget=512) as ranker:
        yield ranker
