"""``reasonrank demo``: the bundled DL19 example, from an empty folder; ``--data`` for BEIR folders;
and readable reasoning."""

from __future__ import annotations

import fnmatch
import json
import math
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasonrank_plugins.cli import app
from reasonrank_plugins.cli.rerank import reasoning_text
from reasonrank_plugins.eval.data import load_beir, load_example, ranked

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("REASONRANK_DATA", ROOT.parent / "shared" / "data"))
PACKAGE = ROOT / "reasonrank_plugins"


def ndcg10(labels: list[int], judged: list[int]) -> float:
    """nDCG@10 as trec_eval's ``ndcg_cut.10``: the label is the gain, the ideal order is over every
    judgement of the query."""
    dcg = sum(g / math.log2(r + 2) for r, g in enumerate(labels[:10]))
    ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(judged, reverse=True)[:10]))
    return dcg / ideal


def test_the_bundled_example_is_a_valid_20_passage_query():
    example = load_example()
    (qid,) = example.queries
    docids = ranked(example.run[qid])
    assert (qid, example.queries[qid]) == ("264014", "how long is life cycle of flea")
    assert len(docids) == len(set(docids)) == len(example.corpus) == 20
    assert all(example.corpus[d].text.strip() and example.corpus[d].id == d for d in docids)
    labels = [example.qrels[qid].get(d, 0) for d in docids]
    assert set(labels) == {0, 1, 2, 3}  # a mix, so reranking can show
    raw = json.loads((PACKAGE / "data" / "demo" / "dl19-264014.json").read_text())
    assert [c["rank"] for c in raw["candidates"]] == list(range(1, 21))
    assert [c["id"] for c in raw["candidates"]] == docids


def test_the_bundled_example_is_dl19_as_shared():
    """The same query, passages, BM25 order and judgements as the DL19 folder it was cut from."""
    example, dl19 = load_example(), load_beir(DATA / "dl19", run=DATA / "dl19" / "run.bm25.trec")
    (qid,) = example.queries
    assert example.queries[qid] == dl19.queries[qid]
    assert ranked(example.run[qid]) == ranked(dl19.run[qid])[:20]
    assert example.run[qid] == {d: dl19.run[qid][d] for d in ranked(dl19.run[qid])[:20]}
    assert all(example.corpus[d] == dl19.corpus[d] for d in example.corpus)
    assert example.qrels[qid] == dl19.qrels[qid]


def test_the_wheel_carries_the_example_and_its_source_note():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = [p.name for p in (PACKAGE / "data" / "demo").iterdir()]
    assert sorted(shipped) == ["SOURCE.md", "dl19-264014.json"]
    assert all(any(fnmatch.fnmatch(f, g) for g in globs["reasonrank_plugins"]) for f in
               ["data/demo/" + f for f in shipped])
    source = (PACKAGE / "data" / "demo" / "SOURCE.md").read_text()
    assert "non-commercial research use" in source and "qrels" in source and "rank_llm" in source


def demo(*args: str):
    return CliRunner().invoke(app, ["demo", "--backend", "scripted", "--model", "overlap", *args],
                              env={"COLUMNS": "400"})  # error boxes unwrapped


def test_the_demo_runs_from_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = demo()
    assert result.exit_code == 0, result.output
    example = load_example()
    qrels = example.qrels["264014"]
    docids = ranked(example.run["264014"])
    lines = result.output.splitlines()
    assert lines[0].startswith("query 264014: how long is life cycle of flea  (20 BM25 candidates")
    order = [line.split(".", 1)[1].split()[0] for line in lines if line[:4].strip().rstrip(".").isdigit()]
    assert sorted(order) == sorted(docids) and order != docids  # the overlap script moved something
    bm25 = " ".join(str(qrels.get(d, 0)) for d in docids)
    after = " ".join(str(qrels.get(d, 0)) for d in order)
    assert f"relevance labels (0-3), BM25 order:     {bm25}" in lines
    assert f"relevance labels (0-3), reranked order: {after}" in lines
    judged = list(qrels.values())
    before_ndcg = ndcg10([qrels.get(d, 0) for d in docids], judged)
    after_ndcg = ndcg10([qrels.get(d, 0) for d in order], judged)
    assert f"nDCG@10: BM25 {before_ndcg:.4f} -> reranked {after_ndcg:.4f}" in lines
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_the_demo_json_has_the_labels_the_ndcg_and_the_full_reasoning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = demo("--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    example = load_example()
    qrels, docids = example.qrels["264014"], ranked(example.run["264014"])
    assert sorted(out["order"]) == list(range(20))
    assert out["labels"]["first_stage"] == [qrels.get(d, 0) for d in docids]
    assert out["labels"]["reranked"] == [qrels.get(docids[i], 0) for i in out["order"]]
    assert out["ndcg@10"]["first_stage"] == pytest.approx(ndcg10(out["labels"]["first_stage"], list(qrels.values())))
    assert out["ndcg@10"]["reranked"] == pytest.approx(ndcg10(out["labels"]["reranked"], list(qrels.values())))
    assert out["windows"][0]["reasoning"] == "ranked 20 passages by score"  # the overlap script's


def write_beir(root: Path, with_run: bool = True) -> Path:
    root.mkdir()
    docs = {"d1": "cats purr", "d2": "flea life cycle is weeks long", "d3": "the flea"}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                               for k, v in docs.items()))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "flea life cycle"}) + "\n")
    (root / "qrels.trec").write_text("q1 0 d2 2\nq1 0 d3 1\nq1 0 d1 0\n")
    if with_run:
        (root / "run.bm25.trec").write_text("q1 Q0 d1 1 3.0 bm25\nq1 Q0 d3 2 2.0 bm25\nq1 Q0 d2 3 1.0 bm25\n")
    return root


def test_the_demo_reads_a_beir_folder_with_data(tmp_path):
    result = demo("--data", str(write_beir(tmp_path / "tiny")), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["qid"], out["data"], out["labels"]["first_stage"]) == ("q1", "tiny", [0, 1, 2])
    assert out["labels"]["reranked"] == [2, 1, 0]  # overlap: d2 has all three words, d3 one, d1 none
    assert out["ndcg@10"]["reranked"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "NOWHERE"], "NOWHERE has no run.bm25.trec"),
        (["--query", "5"], "--query must be in [0, 1)"),
        (["--depth", "0"], "--depth must be at least 1"),
    ],
)
def test_bad_demo_arguments_are_usage_errors(tmp_path, args, message):
    result = demo(*args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_beir_folder_without_its_run_is_a_usage_error(tmp_path):
    result = demo("--data", str(write_beir(tmp_path / "tiny", with_run=False)))
    assert result.exit_code == 2 and "has no run.bm25.trec" in result.output


def test_reasoning_is_wrapped_and_cut_with_a_note():
    text = "word " * 400
    shown = reasoning_text(text, limit=300, width=80)
    assert all(len(line) <= 80 and line.startswith("  ") for line in shown.splitlines())
    assert shown.endswith("[cut: 1999 characters in all; --json has them]")
    assert shown.count("word") == 60
    assert reasoning_text(text, limit=None).count("word") == 400
    assert reasoning_text("first\nsecond", limit=None) == "  first\n  second"
    assert reasoning_text("  ") == "  (none)"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_readme_main_job_on_the_default_embedded_model(tmp_path, monkeypatch):
    """``reasonrank demo`` as the README runs it: the default model ("demo", the 1.5B on llama.cpp with
    its own budget), from an empty folder, one window of the bundled query; the full reasoning is in
    ``--json`` and the order is a permutation. No quality is asserted: the model ranks weakly."""
    from reasonrank_plugins.demo_model import DEFAULT_MODEL, MODELS
    from reasonrank_plugins.engine import default_answer_budget
    from reasonrank_plugins.prompt import generation_budget

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert sorted(out["order"]) == list(range(20))
    (window,) = out["windows"]
    assert window["prompt_tokens"] > 1000 and window["completion_tokens"] > 0
    # the budget is the model's own: the first call decodes at most that plus room for the answer
    budget = MODELS[DEFAULT_MODEL].reasoning_budget
    assert window["completion_tokens"] <= generation_budget(budget) + default_answer_budget(20)
    assert window["status"] in ("ok", "repaired", "failed") and isinstance(window["reasoning"], str)
    assert list(tmp_path.iterdir()) == []
