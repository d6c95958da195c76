"""The qrels teacher and its seeded, shuffled train/held-out split (issue 16, section 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasonrank_plugins import Passage
from reasonrank_training.cli import app
from reasonrank_training.data import load_records, read_jsonl
from reasonrank_training.examples import target_text
from reasonrank_training.filtering import filter_records
from reasonrank_training.qrels_teacher import TEACHER, gold_order, qrels_records, rationale, split_windows

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifact"


def collection(n_queries: int = 30, depth: int = 6):
    """``n_queries`` queries with ``depth`` ranked documents each; query k's relevant document
    sits at rank k % depth + 1, and every fifth query has none in its top ``depth``."""
    corpus, queries, run, qrels = {}, {}, {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        queries[qid] = f"question {q}"
        run[qid] = {}
        for r in range(depth + 2):
            docid = f"d{q}-{r}"
            corpus[docid] = Passage(f"text of {docid}", title=f"title {docid}", id=docid)
            run[qid][docid] = 100.0 - r
        relevant = f"d{q}-{depth + 1}" if q % 5 == 4 else f"d{q}-{q % depth}"
        qrels[qid] = {relevant: 2, f"d{q}-{depth + 1}": 0}
    return queries, corpus, run, qrels


def test_the_split_is_fixed_by_its_seed_disjoint_and_sized():
    queries, corpus, run, qrels = collection()
    a = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, train=10, seed=3)
    b = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, train=10, seed=3)
    c = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, train=10, seed=4)
    ids = lambda items: [i.qid for i in items]  # noqa: E731
    assert (ids(a.train), ids(a.heldout)) == (ids(b.train), ids(b.heldout))
    assert [i.candidates for i in a.heldout] == [i.candidates for i in b.heldout]
    assert ids(a.heldout) != ids(c.heldout)
    assert len(a.train) == 10 and len(a.heldout) == 8 and not set(ids(a.train)) & set(ids(a.heldout))
    assert a.skipped == 6  # queries 4, 9, ..., 29 hold no relevant passage in their top 6
    rest = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, seed=3)
    assert len(rest.train) == 24 - 8 and ids(rest.heldout) == ids(a.heldout)


def test_windows_are_shuffled_and_keep_their_first_stage_rank():
    queries, corpus, run, qrels = collection()
    split = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, seed=0)
    items = split.train + split.heldout
    moved = 0
    for item in items:
        ranks = [c["rank"] for c in item.candidates]
        assert sorted(ranks) == list(range(1, 7))
        assert all(c["docid"] == f"d{item.qid[1:]}-{c['rank'] - 1}" for c in item.candidates)
        moved += ranks != sorted(ranks)
    assert moved >= len(items) - 1  # a 6-passage shuffle keeps the order 1 time in 720
    plain = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, seed=0, shuffle=False)
    assert all([c["rank"] for c in i.candidates] == list(range(1, 7)) for i in plain.train)


def test_bad_split_requests_are_refused():
    queries, corpus, run, qrels = collection()
    with pytest.raises(ValueError, match="usable queries"):
        split_windows(queries, corpus, run, qrels, depth=6, heldout=20, train=10)
    with pytest.raises(ValueError, match="depth"):
        split_windows(queries, corpus, run, qrels, depth=1)


def test_the_gold_order_puts_relevant_passages_first_by_grade_then_first_stage_rank():
    candidates = [{"docid": d, "rank": r, "title": "", "text": f"words of {d} here"} for d, r in
                  [("a", 4), ("b", 1), ("c", 3), ("d", 2), ("e", 5)]]  # fmt: skip
    judged = {"c": 1, "e": 2, "b": 0}
    order = gold_order(candidates, judged)
    assert [candidates[i]["docid"] for i in order] == ["e", "c", "b", "d", "a"]
    text = rationale(candidates, order, judged)
    assert text.startswith('Passage [5] ("words of e here") addresses') and "Passage [3]" in text
    assert "[2]" not in text and "[4]" not in text
    assert "No passage" in rationale(candidates, gold_order(candidates, {}), {})


def test_qrels_records_are_synth_records_that_filter_and_sft_take():
    queries, corpus, run, qrels = collection()
    split = split_windows(queries, corpus, run, qrels, depth=6, heldout=8, seed=0)
    records = qrels_records(split.train, qrels)
    assert all(r["teacher"] == TEACHER and r["relevant_source"] == "qrels" for r in records)
    kept, report = filter_records(records, alpha=0.99, qrels=qrels, require_complete=True)
    assert len(kept) == len(records)  # the gold list is complete and scores the window's best
    record = kept[0]
    best = [i for i, c in enumerate(record["candidates"]) if qrels[record["qid"]].get(c["docid"], 0) > 0]
    assert record["order"][0] == best[0]
    assert target_text(record) == f"<think>{record['reasoning']}</think> <answer>{record['final_list']}</answer>"
    assert record["final_list"].startswith(f"[{best[0] + 1}] > ")


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/data/scifact")
def test_split_and_teach_on_scifact_through_the_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "split"
    result = runner.invoke(app, ["split", "-i", str(SCIFACT), "-o", str(out), "--heldout", "20", "--train", "30",
                                 "--depth", "8", "--seed", "7"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "split.json").read_text())
    assert len(summary["train"]) == 30 and len(summary["heldout"]) == 20 and summary["skipped_without_relevant"] > 0
    assert (out / "run.bm25.trec").exists()  # SciFact has no run: bm25s made one
    heldout = load_records(out / "heldout.jsonl")
    assert all(len(i.candidates) == 8 for i in heldout)
    result = runner.invoke(app, ["teach", "-i", str(out / "train.jsonl"), "--qrels", str(SCIFACT / "qrels.trec"),
                                 "-o", str(tmp_path / "teacher.jsonl")])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "teacher.jsonl")
    assert len(records) == 30 and {r["qid"] for r in records} == set(summary["train"])


def test_compare_reports_identity_oracle_and_paired_intervals(tmp_path):
    def report(model: str, values: list[float]) -> Path:
        rows = [{"qid": f"q{i}", "ndcg@10": v, "ndcg@10_initial": 0.3, "ndcg@10_oracle": 1.0}
                for i, v in enumerate(values)]  # fmt: skip
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({"model": model, "per_window": rows}))
        return path

    base = report("base", [0.3, 0.4, 0.2, 0.35, 0.3, 0.25])
    better = report("sft", [0.7, 0.9, 0.8, 0.85, 0.95, 0.6])
    long_name = report("a-very-long-model-folder-name-for-the-grpo-run-at-grpo-step-40", [0.3] * 6)
    result = CliRunner().invoke(app, ["compare", str(base), str(better), str(long_name)])
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0]: line for line in result.output.splitlines()}
    assert "+0.7000" in lines["oracle (qrels order)"]
    sft = next(line for line in result.output.splitlines() if line.startswith("sft"))
    low, high = (float(x) for x in sft.split("[")[1].split("]")[0].split(","))
    assert 0 < low < 0.5 < high  # mean difference 0.5, all six positive
    long_row = next(line for line in result.output.splitlines() if "a-very-long" in line)
    assert "grpo-step-40 (" in long_row and " 0.3000 " in long_row  # the whole name, then the columns


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/data/scifact")
def test_the_cpu_qrels_recipe_end_to_end_on_the_tiny_student(tmp_path, tiny_student):
    """The recipe's stages (training/recipes/cpu-qrels/run.sh) at toy scale: split, teach, LoRA SFT,
    export, evaluate on the shuffled held-out windows, compare."""
    qrels = SCIFACT / "qrels.trec"

    def cli(*args: object) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli("split", "-i", SCIFACT, "-o", tmp_path / "split", "--depth", 4, "--heldout", 4, "--train", 6)
    cli("teach", "-i", tmp_path / "split" / "train.jsonl", "--qrels", qrels, "-o", tmp_path / "teacher.jsonl")
    summary = json.loads(cli("sft", "-i", tmp_path / "teacher.jsonl", "--model", tiny_student, "-o", tmp_path / "sft",
                             "--lora", "--learning-rate", 1e-2, "--epochs", 4, "--batch-size", 1,
                             "--max-passage-tokens", 16, "--no-measure-loss", "--bf16").strip().splitlines()[-1])  # fmt: skip
    assert summary["examples"] == 6
    cli("export", "--model", tmp_path / "sft", "-o", tmp_path / "exported")
    reports = []
    for name, model in (("base", tiny_student), ("sft", tmp_path / "exported")):
        out = tmp_path / f"eval_{name}.json"
        cli("evaluate", "--model", model, "-i", tmp_path / "split" / "heldout.jsonl", "--qrels", qrels,
            "--window-size", 4, "--max-passage-tokens", 16, "--reasoning-budget", 8, "--batch-size", 4, "-o", out)  # fmt: skip
        report = json.loads(out.read_text())
        assert report["windows"] == 4 and all(w["ndcg@10_oracle"] >= w["ndcg@10"] for w in report["per_window"])
        reports.append(out)
    printed = cli("compare", *reports)
    assert "identity (window order)" in printed and "oracle (qrels order)" in printed and "95% CI" in printed
