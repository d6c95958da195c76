"""Resuming: a `reasonrank eval` process killed after one query continues from its output folder,
ends with a complete run, and redoes nothing that had finished."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.eval import evaluate, load_data, read_trec_run
from reasonrank_plugins.eval.runner import load_records

# window 10, step 5 over 20 candidates: windows (10, 20), (5, 15), (0, 10) per query
WINDOWS_PER_QUERY = 3


def eval_cmd(data: Path, out: Path, latency: float, log: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reasonrank_plugins",
        "eval",
        "--data",
        str(data),
        "--backend",
        "scripted",
        "--model",
        "overlap",
        "--top-k",
        "20",
        "--window",
        "10",
        "--step",
        "5",
        "--out",
        str(out),
        "--no-progress",
        "-o",
        f"latency={latency}",
        "-o",
        f"log={log}",
    ]


def logged_queries(log: Path) -> Counter[str]:
    return Counter(json.loads(line) for line in log.read_text().splitlines()) if log.exists() else Counter()


@pytest.mark.timeout(300)
def test_killed_eval_resumes_without_redoing_finished_queries(noveleval_dir, tmp_path):
    out, log1, log2 = tmp_path / "out", tmp_path / "first.log", tmp_path / "second.log"
    records = out / "records.jsonl"
    first = subprocess.Popen(
        eval_cmd(noveleval_dir, out, 0.3, log1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_text().count("\n") >= 1):
        assert first.poll() is None, first.stdout.read().decode()
        assert time.monotonic() < deadline, "no query finished in time"
        time.sleep(0.05)
    first.kill()
    first.wait()
    done_first = list(load_records(records))
    assert 1 <= len(done_first) < 21 and not (out / "report.json").exists()

    second = subprocess.run(
        eval_cmd(noveleval_dir, out, 0.0, log2), check=False, capture_output=True, text=True, timeout=200
    )
    assert second.returncode == 0, second.stdout + second.stderr

    data = load_data(noveleval_dir)
    lines = records.read_text().splitlines()
    qids = [json.loads(line)["qid"] for line in lines]
    assert sorted(qids, key=int) == [str(q) for q in range(21)]  # every query, each recorded once
    assert qids[: len(done_first)] == done_first  # the first process's records were kept as they were
    redone = logged_queries(log2)
    finished_text = {data.queries[q] for q in done_first}
    assert not finished_text & set(redone)  # no finished query reached the backend again
    assert redone == Counter({data.queries[q]: WINDOWS_PER_QUERY for q in qids[len(done_first) :]})
    assert set(logged_queries(log1)) >= finished_text  # the first process really did them

    run = read_trec_run(out / "run.trec")
    assert sorted(run, key=int) == [str(q) for q in range(21)] and all(len(d) == 20 for d in run.values())
    report = json.loads((out / "report.json").read_text())
    assert report["queries"] == {"evaluated": 21, "planned": 21}
    assert report["tokens"]["windows"] == 21 * WINDOWS_PER_QUERY
    assert len(report["commands"]) == 2 and "latency=0.0" in report["command"]

    # the resumed run equals one uninterrupted run
    with ReasonRanker("overlap", "scripted", window_size=10, step=5) as ranker:
        evaluate(
            data,
            ranker,
            tmp_path / "straight",
            first_stage=read_trec_run(noveleval_dir / "run.bm25.trec"),
            source=report["data"]["first_stage"],
            top_k=20,
            show_progress=False,
        )
    assert read_trec_run(tmp_path / "straight" / "run.trec") == run


def test_resume_refuses_other_settings(noveleval_dir, tmp_path):
    data = load_data(noveleval_dir)
    run = read_trec_run(noveleval_dir / "run.bm25.trec")
    with ReasonRanker("identity", "scripted") as ranker:
        evaluate(
            data, ranker, tmp_path, first_stage=run, source={}, qids=["0"], top_k=20, show_progress=False
        )
        with pytest.raises(ValueError, match="other settings \\(top_k\\)"):
            evaluate(
                data, ranker, tmp_path, first_stage=run, source={}, qids=["0"], top_k=10, show_progress=False
            )


def test_more_queries_reuse_the_finished_ones(noveleval_dir, tmp_path):
    data = load_data(noveleval_dir)
    run = read_trec_run(noveleval_dir / "run.bm25.trec")
    with ReasonRanker("reverse", "scripted") as ranker:
        small = evaluate(
            data, ranker, tmp_path, first_stage=run, source={}, qids=["0"], top_k=20, show_progress=False
        )
        assert len(ranker.backend.requests) == 1
        big = evaluate(
            data, ranker, tmp_path, first_stage=run, source={}, qids=["0", "1"], top_k=20, show_progress=False
        )
        assert len(ranker.backend.requests) == 2  # only query 1 was reranked
    assert big["queries"] == {"evaluated": 2, "planned": 2}
    assert big["per_query"][0]["after"] == small["per_query"][0]["after"]
    assert sorted(read_trec_run(tmp_path / "first_stage.trec")) == ["0", "1"]


def test_a_torn_last_record_is_cut_off(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"qid": "1", "order": []}\n{"qid": "2", "ord')
    assert list(load_records(path)) == ["1"]
    assert path.read_text() == '{"qid": "1", "order": []}\n'
