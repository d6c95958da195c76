"""Fixtures shared by the core tests: the evaluation data, a tiny Qwen2 and the demo ranker."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reasonrank_plugins import Passage

DATA = Path(os.environ.get("REASONRANK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def dl19_top() -> Callable[[int, int], tuple[str, list[Passage]]]:
    """``dl19_top(i, depth)``: the i-th judged DL19 query and its BM25 top-``depth`` passages."""
    from reasonrank_plugins.eval.data import load_beir, ranked

    collection = load_beir(DATA / "dl19", run=DATA / "dl19" / "run.bm25.trec")
    qids = collection.query_ids(collection.run)

    def top(index: int, depth: int = 20) -> tuple[str, list[Passage]]:
        qid = qids[index]
        return collection.queries[qid], [collection.corpus[d] for d in ranked(collection.run[qid])[:depth]]

    return top


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reasonrank_plugins.testing import make_tiny_qwen2

    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def demo_ranker():
    """One demo-model ranker (llama.cpp) for the whole session, with a bounded reasoning budget."""
    from reasonrank_plugins import ReasonRanker

    with ReasonRanker("demo-0.5b", max_passage_tokens=100, reasoning_budget=512) as ranker:
        yield ranker
