"""``reasonrank-train import`` on small fixtures in the published layouts (tests/fixtures/published)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reasonrank_training.cli import app
from reasonrank_training.data import read_jsonl
from reasonrank_training.examples import grpo_example, prompt_messages, sft_example, target_text
from reasonrank_training.importing import import_published, parse_prompt, split_key
from typer.testing import CliRunner

from reasonrank_plugins.prompt import render_messages
from reasonrank_plugins.testing import make_qwen25_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "published"


def cli(*args: object, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert (result.exit_code == 0) is ok, result.output
    return json.loads(result.output.strip().splitlines()[-1]) if ok else result.output


def imported(tmp_path: Path, fmt: str, *extra: object) -> tuple[list[dict], dict]:
    out = tmp_path / f"{fmt}.jsonl"
    report = cli("import", "--format", fmt, FIXTURES / fmt, "-o", out, *extra)
    return read_jsonl(out), report


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(make_qwen25_tokenizer(tmp_path_factory.mktemp("tok")))


def test_13k_joins_queries_and_passages_and_filter_runs_on_it(tmp_path):
    records, report = imported(tmp_path, "13k")
    assert report["rows"] == report["imported"] == 4 and report["skipped"] == {}
    by_qid = {r["qid"]: r for r in records}
    q1 = by_qid["q1"]
    assert q1["query"] == "What is the derivative of x^2?" and q1["dataset"] == "math-qa"
    assert q1["initial_list"] == ["m1", "m2", "m3", "m4"]
    assert q1["candidates"][2] == {
        "docid": "m3",
        "text": "d/dx x^n = n x^(n-1), see [3].",
        "title": "Calculus",
    }
    assert by_qid["q3"]["candidates"][0]["text"] == "Cats sleep 12 to 16 hours a day."  # an {id: text} file
    # ids are per data set: msmarco.json has an m1 too, and q1 (math-qa) gets math-qa's
    assert q1["candidates"][0]["text"] == "The power rule gives 2x."
    assert q1["final_list"] == "[1] > [3] > [2] > [4]"  # docids as positions in initial_list
    assert q1["relevant_docids"] == ["m1", "m3"] and q1["reasoning"] == "Reasoning about q1."
    kept = tmp_path / "kept.jsonl"
    summary = cli("filter", "-i", tmp_path / "13k.jsonl", "-o", kept, "--alpha", 0.4)
    assert summary["total"] == 4 and summary["kept"] == 4
    assert {r["qid"]: r["order"] for r in read_jsonl(kept)}["q2"] == [1, 0, 2, 3]


def test_13k_reads_other_store_layouts_across_files(tmp_path):
    """Stores not named after the data sets (JSON lines, TSV) are looked up across all their files."""
    import shutil

    root = tmp_path / "13k"
    shutil.copytree(FIXTURES / "13k", root)
    for kind in ("id_query", "id_doc"):
        files = sorted((root / kind).glob("*.json"))
        stored = (item for f in files for item in json.loads(f.read_text()).items())
        texts = {k: v for k, v in stored if "MS MARCO" not in str(v)}
        shutil.rmtree(root / kind)
        (root / kind).mkdir()
        rows = [{"id": k, **(v if isinstance(v, dict) else {"text": v})} for k, v in texts.items()]
        half = len(rows) // 2
        (root / kind / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:half]))
        (root / kind / "b.tsv").write_text("".join(f"{r['id']}\t{r['text']}\n" for r in rows[half:]))
    out = tmp_path / "flat.jsonl"
    report = cli("import", "--format", "13k", root, "-o", out)
    assert report["imported"] == 4 and report["skipped"] == {}, report
    by_qid = {r["qid"]: r for r in read_jsonl(out)}
    assert by_qid["q1"]["candidates"][0]["text"] == "The power rule gives 2x."
    assert by_qid["q4"]["query"] == "boiling point of water"


def test_sft_rows_become_the_same_training_examples(tmp_path, tokenizer):
    records, report = imported(tmp_path, "sft")
    rows = json.loads((FIXTURES / "sft" / "reasonrank_sft-data.json").read_text())
    assert report["imported"] == len(rows) == 2
    for record, row in zip(records, rows, strict=True):
        assert prompt_messages(record, tokenizer, 512) == [
            {"role": "system", "content": row["system"]},
            {"role": "user", "content": row["instruction"]},
        ]
        assert target_text(record) == row["output"]
        assert sft_example(record, tokenizer, 512)["completion"][0]["content"] == row["output"]
    assert records[1]["query"] == "Which organelle (1) makes ATP?"  # as the prompt shows it
    assert records[1]["candidates"][1] == {
        "docid": f"{records[1]['qid']}#2",
        "text": "They make ATP.",
        "title": "Mitochondria",
    }
    assert records[0]["relevant_docids"] == [] and records[0]["relevant_source"] == "unpublished"
    summary = cli("filter", "-i", tmp_path / "sft.jsonl", "-o", tmp_path / "kept.jsonl", "--alpha", 0)
    assert summary["kept"] == 2  # no published labels: the set was filtered upstream


def test_sft_joined_with_13k_gets_qids_docids_and_labels(tmp_path):
    records, report = imported(tmp_path, "sft", "--join-13k", FIXTURES / "13k")
    assert report["joined"] == 2
    assert [r["qid"] for r in records] == ["q1", "q2"]
    assert records[0]["initial_list"] == ["m1", "m2", "m3", "m4"] and records[0]["relevant_docids"] == [
        "m1",
        "m3",
    ]
    summary = cli("filter", "-i", tmp_path / "sft.jsonl", "-o", tmp_path / "kept.jsonl", "--alpha", 0.4)
    assert summary["kept"] == 2 and summary["datasets"]["math-qa"]["mean_ndcg"] == pytest.approx(1.0)


def test_rl_parquet_gives_the_same_grpo_inputs(tmp_path, tokenizer):
    records, report = imported(tmp_path, "rl")
    assert report["imported"] == 2 and [r["split"] for r in records] == ["train", "val"]
    rows = (
        pq.read_table(FIXTURES / "rl" / "train.parquet").to_pylist()
        + pq.read_table(FIXTURES / "rl" / "val.parquet").to_pylist()
    )
    for record, row in zip(records, rows, strict=True):
        example = grpo_example(record, tokenizer, 512)
        assert example["prompt"] == row["prompt"]
        assert example["gold_list"] == row["reward_model"]["ground_truth"] == row["label"]
        assert example["initial_list"] == row["extra_info"]["initial_list"]
        assert example["relevant_docids"] == row["extra_info"]["relevant_docids"]
    val, _ = imported(tmp_path, "rl", "--split", "val")
    assert [r["query"] for r in val] == ["boiling point of water"]


def test_sft_and_rl_stay_disjoint_by_query(tmp_path):
    imported(tmp_path, "rl")
    imported(tmp_path, "sft")
    rl, sft = tmp_path / "rl.jsonl", tmp_path / "sft.jsonl"
    # the published halves share no query
    assert not {split_key(r["query"]) for r in read_jsonl(rl)} & {
        split_key(r["query"]) for r in read_jsonl(sft)
    }
    out = tmp_path / "sft_from_13k.jsonl"
    report = cli("import", "--format", "13k", FIXTURES / "13k", "-o", out, "--disjoint-from", rl)
    assert report["overlap_dropped"] == 2 and sorted(r["qid"] for r in read_jsonl(out)) == ["q1", "q2"]
    report = cli(
        "import", "-f", "13k", FIXTURES / "13k", "-o", out, "--disjoint-from", rl, "--disjoint-from", sft
    )
    assert report["overlap_dropped"] == 4 and report["imported"] == 0
    message = cli(
        "import",
        "-f",
        "13k",
        FIXTURES / "13k",
        "-o",
        out,
        "--disjoint-from",
        rl,
        "--overlap",
        "error",
        ok=False,
    )
    assert "disjoint" in message


def test_parse_prompt_inverts_the_core_prompt_and_refuses_other_text():
    user = render_messages("q. with [x]", ["a\nb", "", "Title: t Content: c"])[1]["content"]
    assert parse_prompt(user) == ("q. with [x]", ["a\nb", "", "Title: t Content: c"])
    with pytest.raises(ValueError, match="not a ReasonRank prompt"):
        parse_prompt("Rank these passages please.")
    with pytest.raises(ValueError, match=r"passage \[2\] of 2 is missing"):
        parse_prompt(user.replace("[2] \n", "").replace("3 passages", "2 passages"))


def test_bad_sources_are_refused(tmp_path):
    with pytest.raises(ValueError, match="neither a local path nor a hub dataset id"):
        import_published("sft", tmp_path / "missing" / "deeper")
    with pytest.raises(ValueError, match="unknown format"):
        import_published("12k", FIXTURES / "sft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id_query"):
        import_published("13k", FIXTURES / "sft" / "reasonrank_sft-data.json")


def test_a_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    """The hub path is taken for an id that is no local path; offline (as in every test) it says why."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(ValueError, match="cannot download the dataset 'liuwenhan/reasonrank_data_rl'"):
        import_published("rl", "liuwenhan/reasonrank_data_rl")


def test_rl_joined_with_13k_keeps_its_own_docids_and_gets_the_qid(tmp_path):
    records, report = imported(tmp_path, "rl", "--join-13k", FIXTURES / "13k")
    assert report["joined"] == 2 and [r["qid"] for r in records] == ["q3", "q4"]
    assert records[0]["initial_list"] == ["c1", "c2", "c3", "c4"] and records[0]["relevant_docids"] == [
        "c1",
        "c3",
    ]


def test_sft_rows_in_the_chat_form_read_as_the_alpaca_ones(tmp_path):
    rows = json.loads((FIXTURES / "sft" / "reasonrank_sft-data.json").read_text())
    chat = [
        {
            "messages": [
                {"role": "system", "content": r["system"]},
                {"role": "user", "content": r["instruction"]},
                {"role": "assistant", "content": r["output"]},
            ]
        }
        for r in rows
    ]
    (tmp_path / "chat.json").write_text(json.dumps(chat))
    alpaca, _ = import_published("sft", FIXTURES / "sft")
    assert import_published("sft", tmp_path / "chat.json")[0] == alpaca
