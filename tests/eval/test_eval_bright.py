"""BRIGHT's own layout: the loader, and excluded ids removed before reranking and scoring."""

from __future__ import annotations

import pytest
from eval_bright_fixture import BRIGHT_DOCUMENTS, BRIGHT_EXAMPLES

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends import load_backend
from reasonrank_plugins.eval import aggregate, bm25_run, evaluate, load_data
from reasonrank_plugins.eval.data import read_trec_run
from reasonrank_plugins.testing import parse_window


def test_bright_fixture_loads(bright_dir):
    data = load_data(bright_dir, task="biology")
    assert data.layout == "bright" and data.name == "bright-biology"
    assert list(data.queries) == ["0", "1"]
    assert data.queries["1"] == "How do bees find their way back to the hive?"
    assert data.qrels == {"0": {"d1": 1}, "1": {"d3": 1, "d4": 1}}
    assert data.excluded == {"0": {"d0"}, "1": set()}  # "N/A" means none
    assert sorted(data.corpus) == ["d0", "d1", "d2", "d3", "d4", "d5"]
    assert data.corpus["d3"].text.startswith("Honey bees use the sun")
    assert data.run is None


def test_bright_long_documents_use_gold_ids_long(bright_dir):
    data = load_data(bright_dir, task="biology", long_documents=True)
    assert sorted(data.corpus) == ["long-d1", "long-d3"]
    assert data.qrels == {"0": {"long-d1": 1}, "1": {"long-d3": 1}}


def test_bright_parquet_as_on_the_hub(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    for folder, records in (("examples", BRIGHT_EXAMPLES), ("documents", BRIGHT_DOCUMENTS)):
        (tmp_path / folder).mkdir()
        pq.write_table(pa.Table.from_pylist(records), tmp_path / folder / "biology-00000-of-00001.parquet")
    data = load_data(tmp_path, task="biology")
    assert data.qrels == {"0": {"d1": 1}, "1": {"d3": 1, "d4": 1}}
    assert data.excluded == {"0": {"d0"}, "1": set()}


def test_bright_needs_a_known_task(bright_dir):
    with pytest.raises(ValueError, match="name the task"):
        load_data(bright_dir)
    with pytest.raises(ValueError, match="no chemistry"):
        load_data(bright_dir, task="chemistry")


def test_bm25_drops_excluded_documents(bright_dir):
    data = load_data(bright_dir, task="biology")
    plain = bm25_run(data.corpus, data.queries, depth=3)
    assert next(iter(plain["0"])) == "d0"  # the near copy of the question wins without exclusion
    run = bm25_run(data.corpus, data.queries, depth=3, excluded=data.excluded)
    assert "d0" not in run["0"] and len(run["0"]) == 3
    assert list(run["0"])[:2] == [d for d in plain["0"] if d != "d0"]  # refilled to depth from below


def test_excluded_ids_are_removed_before_reranking_and_scoring(bright_dir, tmp_path):
    data = load_data(bright_dir, task="biology")
    # the excluded d0 sits first for query 0; the gold d1 is second
    run = {"0": {"d0": 3.0, "d1": 2.0, "d2": 1.0}, "1": {"d5": 3.0, "d3": 2.0, "d4": 1.0}}
    assert aggregate(data.qrels, run)["RR@10"] == pytest.approx((0.5 + 0.5) / 2)
    backend = load_backend("identity", "scripted")
    with ReasonRanker(backend=backend, window_size=3, step=1) as ranker:
        report = evaluate(
            data,
            ranker,
            tmp_path / "out",
            first_stage=run,
            source={"kind": "test"},
            top_k=3,
            show_progress=False,
        )
    shown = [parse_window(r.messages) for r in backend.requests]
    assert [len(contents) for _, contents in shown] == [2, 3]
    assert all(BRIGHT_DOCUMENTS[0]["content"] not in contents for _, contents in shown)  # d0 never shown
    reranked = read_trec_run(tmp_path / "out" / "run.trec")
    assert list(reranked["0"]) == ["d1", "d2"] and list(reranked["1"]) == ["d5", "d3", "d4"]
    assert report["metrics"]["before"]["RR@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert report["metrics"]["after"]["RR@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert report["first_stage_all_queries"]["RR@10"] == pytest.approx(0.75)
    assert [len(r["windows"]) for r in report["per_query"]] == [1, 1]  # 2 candidates, then 3
