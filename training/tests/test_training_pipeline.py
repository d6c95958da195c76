"""Every stage on 8 DL19 queries through the CLI: a real teacher (llama.cpp's OpenAI-compatible
server on the demo GGUF), the tiny random Qwen2 as student, and the core engine on the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reasonrank_training.cli import app
from reasonrank_training.data import read_jsonl
from safetensors.torch import load_file
from typer.testing import CliRunner

pytestmark = pytest.mark.slow
QUERIES, DEPTH = 8, 3


def run(*args: object) -> dict:
    """Invoke the CLI; return the JSON summary it prints last (progress bars go before it)."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line[line.find('{"') :] for line in result.output.splitlines() if '{"' in line]
    return json.loads(lines[-1]) if lines else {}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def synthesized(work: Path, dl19: Path, teacher_url: str) -> dict:
    """Two teacher calls a query: pointwise (no qrels given) and RankGPT listwise."""
    out = work / "synth.jsonl"
    args = [
        "synth",
        "-i",
        dl19,
        "-o",
        out,
        "--base-url",
        teacher_url,
        "--model",
        "demo",
        "--limit",
        QUERIES,
        "--depth",
        DEPTH,
        "--window-size",
        DEPTH,
        "--max-passage-words",
        16,
        "--max-tokens",
        40,
        "--pointwise-max-tokens",
        16,
        "--concurrency",
        2,
        "--price-prompt",
        1.0,
        "--price-completion",
        2.0,
    ]
    usage = run(*args)
    return {"args": args, "usage": usage, "records": read_jsonl(out), "out": out}


def test_synth_calls_the_teacher_twice_a_query(synthesized):
    records, usage = synthesized["records"], synthesized["usage"]
    assert len(records) == QUERIES and len({r["qid"] for r in records}) == QUERIES
    assert usage["calls"] == 2 * QUERIES and usage["cached"] == 0
    assert usage["cost_usd"] == pytest.approx((usage["prompt_tokens"] + 2 * usage["completion_tokens"]) / 1e6)
    for r in records:
        assert len(r["initial_list"]) == DEPTH and r["relevant_source"] == "teacher"
        assert set(r["relevant_docids"]) <= set(r["initial_list"])
        assert r["pointwise"]["content"] or r["pointwise"]["reasoning"]
        assert r["final_list"] or r["reasoning"]
        assert r["usage"]["calls"] == 2 and r["usage"]["prompt_tokens"] > 0


def test_synth_resumes_and_caches(synthesized):
    out: Path = synthesized["out"]
    assert run(*synthesized["args"])["calls"] == 0  # every record is there: nothing to do
    first = out.read_text()
    out.unlink()
    again = run(*synthesized["args"])  # the request cache answers every call
    assert (again["calls"], again["cached"]) == (0, 2 * QUERIES)
    key = lambda rows: sorted((r["id"], r["final_list"], r["reasoning"]) for r in rows)
    assert key(read_jsonl(out)) == key(json.loads(line) for line in first.splitlines())


@pytest.fixture(scope="module")
def filtered(work: Path, synthesized: dict, dl19: Path) -> Path:
    out = work / "filtered.jsonl"
    # the 40-token teacher budget truncates on purpose: keep those; failed parses are still dropped
    args = ["filter", "-i", synthesized["out"], "-o", out, "--alpha", 0.0, "--qrels", dl19 / "qrels.trec"]
    report = run(*args, "--keep-truncated")
    assert report["datasets"]["dl19"]["total"] == QUERIES and report["kept"] == QUERIES - report["failed"] > 0
    assert report["truncated"] == 0 and len(read_jsonl(out)) == report["kept"]
    return out


@pytest.fixture(scope="module")
def sft_model(work: Path, filtered: Path, tiny_student: Path) -> tuple[Path, dict]:
    out = work / "sft"
    result = run(
        "sft",
        "-i",
        filtered,
        "--model",
        tiny_student,
        "-o",
        out,
        "--max-passage-tokens",
        16,
        "--learning-rate",
        1e-2,
        "--epochs",
        20,
        "--batch-size",
        1,
    )
    return out, result


def test_sft_lowers_the_training_loss(sft_model):
    out, result = sft_model
    kept = len(read_jsonl(out.parent / "filtered.jsonl"))
    assert result["examples"] == kept and len(result["losses"]) == 20 * kept
    assert result["loss_after"] < 0.5 * result["loss_before"]
    assert result["losses"][-1] < result["losses"][0]
    assert json.loads((out / "training_summary.json").read_text())["stage"] == "sft"


@pytest.fixture(scope="module")
def grpo_model(work: Path, filtered: Path, sft_model: tuple[Path, dict]) -> tuple[Path, dict]:
    out = work / "grpo"
    result = run(
        "grpo",
        "-i",
        filtered,
        "--model",
        sft_model[0],
        "-o",
        out,
        "--max-passage-tokens",
        16,
        "--max-steps",
        1,
        "--num-generations",
        4,
        "--batch-size",
        8,
        "--max-completion-length",
        24,
        # the SFT student is sharp: at 1.0 all 8 rollouts were the same perfect answer (no
        # advantage, no update); at 1.3 they differ, at 1.6 none keeps the format
        "--temperature",
        1.3,
    )
    return out, result


def test_a_grpo_step_changes_the_weights(grpo_model, sft_model):
    out, result = grpo_model
    assert result["steps"] == 1 and result["reward_stds"][0] > 0  # rewards differed within a group
    before, after = load_file(sft_model[0] / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert max((before[k] - after[k]).abs().max().item() for k in before) > 0


def test_a_stopped_grpo_run_resumes_from_its_checkpoint(work, filtered, sft_model):
    out = work / "grpo-resumed"
    args = ["grpo", "-i", filtered, "--model", sft_model[0], "-o", out, "--max-passage-tokens", 16]
    args += ["--num-generations", 4, "--batch-size", 4, "--max-completion-length", 8, "--save-steps", 1]
    run(*args, "--max-steps", 1)
    state_file = out / "checkpoint-1" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    [logged] = [h for h in state["log_history"] if "reward" in h]
    logged["reward"] = 123.0  # a marker: only a run that resumed from checkpoint-1 reports it
    state_file.write_text(json.dumps(state))
    result = run(*args, "--max-steps", 2)
    assert result["steps"] == 2 and result["rewards"][0] == 123.0 and len(result["rewards"]) == 2
    assert (out / "checkpoint-2").is_dir()


def test_exported_model_reranks_through_the_core_engine(work, grpo_model, filtered):
    from reasonrank_plugins import ReasonRanker

    folder = work / "exported"
    run(
        "export",
        "--model",
        grpo_model[0],
        "-o",
        folder,
        "--summary",
        work / "sft" / "training_summary.json",
        "--summary",
        filtered.with_suffix(".report.json"),
    )
    card = (folder / "README.md").read_text()
    assert "### sft" in card and "### grpo" in card and "### filter" in card
    trained, exported = (
        load_file(grpo_model[0] / "model.safetensors"),
        load_file(folder / "model.safetensors"),
    )
    assert all((trained[k] == exported[k]).all() for k in trained)

    record = read_jsonl(filtered)[0]
    with ReasonRanker(
        model=str(folder), backend="transformers", max_passage_tokens=16, reasoning_budget=24
    ) as ranker:
        result = ranker.rerank(record["query"], [c["text"] for c in record["candidates"]])
    assert sorted(result.order) == list(range(DEPTH))
    assert result.windows and result.completion_tokens > 0
    assert result.windows[0].status != "failed", result.windows[0].output  # it learned the answer format
