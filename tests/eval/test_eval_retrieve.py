"""Where the first stage comes from: a given run cut to depth, the folder's run.bm25.trec, or bm25s."""

from __future__ import annotations

import pytest
from reasonrank_plugins.eval import load_data
from reasonrank_plugins.eval.data import read_trec_run, write_trec_run
from reasonrank_plugins.eval.retrieve import bm25_run, first_stage


def test_a_given_run_is_cut_to_depth_by_score(bright_dir, tmp_path):
    data = load_data(bright_dir, task="biology")
    run = {q: {d: float(n) for n, d in enumerate(data.corpus)} for q in data.queries}
    write_trec_run(run, tmp_path / "mine.trec", "test")
    cut, origin = first_stage(data, 2, run=tmp_path / "mine.trec", root=bright_dir)
    last_two = list(data.corpus)[-1:-3:-1]
    assert all(list(docs) == last_two for docs in cut.values()) and set(cut) == set(data.queries)
    assert origin == {"kind": "run", "path": str((tmp_path / "mine.trec").resolve()), "depth": 2}


def test_the_folders_run_is_the_default_and_bm25s_the_fallback(bright_dir):
    data = load_data(bright_dir, task="biology")
    found, origin = first_stage(data, 3, root=bright_dir)  # no run.bm25.trec there yet
    assert origin["kind"] == "bm25s" and origin["depth"] == 3
    assert found == bm25_run(data.corpus, data.queries, 3, excluded=data.excluded)
    saved = {q: {d: -float(n) for n, d in enumerate(docs)} for q, docs in found.items()}
    write_trec_run(saved, bright_dir / "run.bm25.trec", "bm25s")
    again, origin = first_stage(data, 3, root=bright_dir)
    assert origin["kind"] == "run" and again == read_trec_run(bright_dir / "run.bm25.trec")
    assert first_stage(data, 3)[1]["kind"] == "bm25s"  # no root: the folder's run is not looked for


def test_a_missing_run_is_a_value_error(bright_dir, tmp_path):
    data = load_data(bright_dir, task="biology")
    with pytest.raises(ValueError, match="does not exist"):
        first_stage(data, 3, run=tmp_path / "absent.trec")
