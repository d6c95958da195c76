"""`reasonrank eval` on 2 NovelEval queries with a scripted engine gives exactly the expected report,
and `reasonrank compare` tests two reports against each other."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasonrank_plugins.cli import app
from reasonrank_plugins.eval import aggregate, compare_reports, paired_test, read_trec_run
from reasonrank_plugins.eval.data import read_qrels
from reasonrank_plugins.eval.report import code_version
from reasonrank_plugins.prompt import build_messages
from reasonrank_plugins.types import Passage

MEASURES = ["nDCG@10", "nDCG@5", "R@10", "R@20", "RR@10"]


def L(rank: int) -> float:
    return math.log2(rank)


# Worked by hand from qrels.trec: the first stage ranks "0-0" ... "0-19" (and "1-0" ... "1-19") in
# that order; the "reverse" script answers [20] > [19] > ... > [1], so "k-j" ends at rank 20 - j.
# Query 0: relevant 0-3, 0-4, 0-6 (grade 2) at ranks 4, 5, 7 before; 17, 16, 14 after.
# Query 1: grade 2: 1-0, 1-3, 1-6, 1-7, 1-13; grade 1: 1-1, 1-8, 1-9.
IDCG0 = 2 / L(2) + 2 / L(3) + 2 / L(4)
IDCG1_5 = 2 / L(2) + 2 / L(3) + 2 / L(4) + 2 / L(5) + 2 / L(6)
IDCG1_10 = IDCG1_5 + 1 / L(7) + 1 / L(8) + 1 / L(9)
HAND = {
    "0": {
        "before": {
            "nDCG@10": (2 / L(5) + 2 / L(6) + 2 / L(8)) / IDCG0,
            "nDCG@5": (2 / L(5) + 2 / L(6)) / IDCG0,
            "R@10": 1.0,
            "R@20": 1.0,
            "RR@10": 1 / 4,
        },
        "after": {"nDCG@10": 0.0, "nDCG@5": 0.0, "R@10": 0.0, "R@20": 1.0, "RR@10": 0.0},
    },
    "1": {
        "before": {  # relevant at ranks 1 (2), 2 (1), 4 (2), 7 (2), 8 (2), 9 (1), 10 (1), 14 (2)
            "nDCG@10": (2 / L(2) + 1 / L(3) + 2 / L(5) + 2 / L(8) + 2 / L(9) + 1 / L(10) + 1 / L(11))
            / IDCG1_10,
            "nDCG@5": (2 / L(2) + 1 / L(3) + 2 / L(5)) / IDCG1_5,
            "R@10": 7 / 8,
            "R@20": 1.0,
            "RR@10": 1.0,
        },
        "after": {  # 1-13 (2) at rank 7 is the only relevant one in the top 10
            "nDCG@10": (2 / L(8)) / IDCG1_10,
            "nDCG@5": 0.0,
            "R@10": 1 / 8,
            "R@20": 1.0,
            "RR@10": 1 / 7,
        },
    },
}
# "<think>ranked 20 passages</think> <answer>[20] > [19] > ... > [1]</answer>": 4 + 19 * 2 words
COMPLETION_TOKENS = 42


def noveleval_window_words(data: Path, qid: str) -> int:
    """The scripted backend counts whitespace-separated words of the two messages."""
    query = next(
        json.loads(l)["text"] for l in (data / "queries.jsonl").open() if json.loads(l)["_id"] == qid
    )
    docs = {d["_id"]: d for d in map(json.loads, (data / "corpus.jsonl").open())}
    passages = [Passage(docs[f"{qid}-{j}"]["text"]) for j in range(20)]
    messages = build_messages(query, passages, max_passage_tokens=512, truncate=lambda t, n: t)
    return sum(len(m["content"].split()) for m in messages)


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys, "argv", ["reasonrank", *args])  # what the console script sees
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def eval_args(data: Path, out: Path, script: str) -> list[str]:
    return [
        "eval",
        "--data",
        str(data),
        "--backend",
        "scripted",
        "--model",
        script,
        "--top-k",
        "20",
        "--queries",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]


def test_two_noveleval_queries_give_the_expected_report(noveleval_dir, tmp_path, monkeypatch):
    out = tmp_path / "reverse"
    args = eval_args(noveleval_dir, out, "reverse")
    printed = run_cli(args, monkeypatch)
    report = json.loads((out / "report.json").read_text())

    first_stage = [line.split() for line in (noveleval_dir / "run.bm25.trec").read_text().splitlines()]
    for qid in ("0", "1"):  # the premise of the hand-worked values
        assert [r[2] for r in first_stage if r[0] == qid] == [f"{qid}-{j}" for j in range(20)]

    prompt = {q: noveleval_window_words(noveleval_dir, q) for q in ("0", "1")}
    rows = []
    for qid in ("0", "1"):
        seconds = report["per_query"][len(rows)]["seconds"]
        window_seconds = report["per_query"][len(rows)]["windows"][0]["seconds"]
        assert 0 <= window_seconds <= seconds < 5
        rows.append(
            {
                "qid": qid,
                "before": pytest.approx(HAND[qid]["before"], abs=1e-12),
                "after": pytest.approx(HAND[qid]["after"], abs=1e-12),
                "delta": pytest.approx(
                    {m: HAND[qid]["after"][m] - HAND[qid]["before"][m] for m in MEASURES}, abs=1e-12
                ),
                "seconds": seconds,
                "prompt_tokens": prompt[qid],
                "completion_tokens": COMPLETION_TOKENS,
                "forced": 0,
                "depth": 1,
                "windows": [
                    {
                        "start": 0,
                        "end": 20,
                        "round": 0,
                        "kind": "slide",
                        "status": "ok",
                        "forced": False,
                        "prompt_tokens": prompt[qid],
                        "completion_tokens": COMPLETION_TOKENS,
                        "seconds": window_seconds,
                        "reasoning_words": 3,
                    }
                ],
            }
        )
    mean = {s: {m: (HAND["0"][s][m] + HAND["1"][s][m]) / 2 for m in MEASURES} for s in ("before", "after")}
    command = "reasonrank " + " ".join(args)
    expected = {
        "command": command,
        "commands": [command],
        "code": [code_version()],
        "data": {
            "name": "noveleval",
            "layout": "beir",
            "first_stage": {"kind": "run", "path": str(noveleval_dir / "run.bm25.trec"), "depth": 100},
        },
        "queries": {"evaluated": 2, "planned": 2},
        "settings": {
            "top_k": 20,
            "window_size": 20,
            "step": 10,
            "max_passage_tokens": 512,
            "reasoning_budget": 3072,
            "answer_budget": None,
            "strategy": "sliding",
            "cutoff": 10,
            "depth": None,
            "budget": None,
        },
        "strategy": "sliding",
        "model": "scripted-reverse",
        "backend": "scripted",
        "hardware": report["hardware"],
        "measures": MEASURES,
        "metrics": {
            "before": pytest.approx(mean["before"], abs=1e-12),
            "after": pytest.approx(mean["after"], abs=1e-12),
            "delta": pytest.approx({m: mean["after"][m] - mean["before"][m] for m in MEASURES}, abs=1e-12),
        },
        "first_stage_all_queries": report["first_stage_all_queries"],
        "significance": report["significance"],
        "seconds": {
            "total": pytest.approx(rows[0]["seconds"] + rows[1]["seconds"]),
            "per_query_mean": pytest.approx((rows[0]["seconds"] + rows[1]["seconds"]) / 2),
            "per_query_median": pytest.approx((rows[0]["seconds"] + rows[1]["seconds"]) / 2),
        },
        "tokens": {
            "windows": 2,
            "prompt_total": prompt["0"] + prompt["1"],
            "completion_total": 2 * COMPLETION_TOKENS,
            "prompt_per_query": (prompt["0"] + prompt["1"]) / 2,
            "completion_per_query": COMPLETION_TOKENS,
            "prompt_per_window": (prompt["0"] + prompt["1"]) / 2,
            "completion_per_window": COMPLETION_TOKENS,
        },
        "windows": {"per_query_mean": 1, "per_query_max": 1},  # 20 candidates, window 20
        "depth": {"per_query_mean": 1, "per_query_max": 1},
        "statuses": {"ok": 2},
        "forced": 0,
        "per_query": rows,
    }
    assert report == expected
    assert report["hardware"]["cpu_count"] >= 1 and report["hardware"]["python"].count(".") == 2
    everything = aggregate(
        read_qrels(noveleval_dir / "qrels.trec"), read_trec_run(noveleval_dir / "run.bm25.trec")
    )
    assert report["first_stage_all_queries"] == pytest.approx(everything)  # all 21 queries' first stage
    for m in MEASURES:
        before, after = ({q: HAND[q][s][m] for q in HAND} for s in ("before", "after"))
        assert report["significance"][m] == pytest.approx(paired_test(m, before, after).as_dict())

    reranked = [line.split() for line in (out / "run.trec").read_text().splitlines()]
    assert [(r[0], r[2], r[3]) for r in reranked] == [
        (q, f"{q}-{19 - i}", str(i + 1)) for q in ("0", "1") for i in range(20)
    ]
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        "nDCG@10" in printed
        and f"{mean['before']['nDCG@10']:.4f} -> {mean['after']['nDCG@10']:.4f}" in printed
    )


def test_a_rerun_with_a_cache_dir_makes_no_model_call(noveleval_dir, tmp_path, monkeypatch):
    pytest.importorskip("diskcache")
    log = tmp_path / "windows.log"  # the scripted model writes a line a window
    reports = []
    for n in (1, 2):
        out = tmp_path / f"run{n}"
        args = [*eval_args(noveleval_dir, out, "reverse"), "--cache-dir", str(tmp_path / "cache"), "-o", f"log={log}"]
        run_cli(args, monkeypatch)
        assert len(log.read_text().splitlines()) == 2  # one window a query, in the first run only
        reports.append(json.loads((out / "report.json").read_text()))
    assert reports[1]["metrics"] == reports[0]["metrics"]
    assert (tmp_path / "run2" / "run.trec").read_bytes() == (tmp_path / "run1" / "run.trec").read_bytes()


def test_compare_prints_both_reports_with_a_paired_test(noveleval_dir, tmp_path, monkeypatch):
    for script in ("identity", "reverse"):
        run_cli(eval_args(noveleval_dir, tmp_path / script, script), monkeypatch)
    a, b = (json.loads((tmp_path / s / "report.json").read_text()) for s in ("identity", "reverse"))
    assert a["metrics"]["after"] == a["metrics"]["before"]  # identity keeps the first stage
    tests = {t.measure: t for t in compare_reports(a, b)}
    assert tests["RR@10"].n == 2
    assert tests["RR@10"].delta == pytest.approx(((0 - 1 / 4) + (1 / 7 - 1)) / 2)
    assert tests["R@20"].delta == 0 and tests["R@20"].p is None  # no difference, no test
    printed = run_cli(
        ["compare", str(tmp_path / "identity" / "report.json"), str(tmp_path / "reverse" / "report.json")],
        monkeypatch,
    )
    assert "scripted-identity" in printed and "scripted-reverse" in printed
    rr = next(line for line in printed.splitlines() if line.startswith("RR@10"))
    assert rr.split() == [
        "RR@10",
        f"{a['metrics']['before']['RR@10']:.4f}",
        f"{a['metrics']['after']['RR@10']:.4f}",
        f"{b['metrics']['before']['RR@10']:.4f}",
        f"{b['metrics']['after']['RR@10']:.4f}",
        f"{tests['RR@10'].delta:+.4f}",
        f"[{tests['RR@10'].ci_low:+.4f},",  # the paired bootstrap interval of the two queries
        f"{tests['RR@10'].ci_high:+.4f}]",
        "2",
        f"{tests['RR@10'].t:.2f}",
        f"{tests['RR@10'].p:.3f}",
    ]


def test_reports_carry_the_strategy_windows_and_depth_and_compare_shows_them(
    noveleval_dir, tmp_path, monkeypatch
):
    """20 candidates, window 10, step 2: sliding takes 6 windows in 6 rounds. tdpart (cutoff 5) ranks
    the top 10 (pivot), compares the other 10 with the pivot in windows of 9 + 1 and 1 + 1 at once
    (partition), then ranks what beat it (final): 4 windows in 3 rounds, whatever the script."""
    reports = {}
    for strategy in ("sliding", "tdpart"):
        args = [*eval_args(noveleval_dir, tmp_path / strategy, "reverse"), "--window", "10", "--step", "2"]
        printed = run_cli([*args, "--strategy", strategy, "--cutoff", "5"], monkeypatch)
        reports[strategy] = json.loads((tmp_path / strategy / "report.json").read_text())
    sliding, tdpart = reports["sliding"], reports["tdpart"]
    assert (sliding["strategy"], tdpart["strategy"]) == ("sliding", "tdpart")
    assert tdpart["settings"] | {"strategy": "sliding"} == sliding["settings"]
    assert sliding["windows"] == sliding["depth"] == {"per_query_mean": 6, "per_query_max": 6}
    assert tdpart["windows"] == {"per_query_mean": 4, "per_query_max": 4}
    assert tdpart["depth"] == {"per_query_mean": 3, "per_query_max": 3}
    for row in tdpart["per_query"]:
        assert row["depth"] == 3
        assert [(w["round"], w["kind"]) for w in row["windows"]] == [
            (0, "pivot"), (1, "partition"), (1, "partition"), (2, "final")
        ]
    assert "tdpart: 4.0 windows/query (max 4), depth 3.0 rounds/query (max 3)" in printed

    printed = run_cli(
        ["compare", str(tmp_path / "sliding" / "report.json"), str(tmp_path / "tdpart" / "report.json")],
        monkeypatch,
    )
    rows = {line[:24].strip(): line[24:].split() for line in printed.splitlines() if line.strip()}
    assert rows["strategy"] == ["sliding", "tdpart"]
    assert rows["windows / query"] == ["6.0", "(max", "6)", "4.0", "(max", "4)"]
    assert rows["depth (rounds) / query"] == ["6.0", "(max", "6)", "3.0", "(max", "3)"]


def test_paired_bootstrap_intervals():
    from reasonrank_plugins.eval import paired_bootstrap

    a = {f"q{i}": 0.5 for i in range(40)}
    shifted = {q: v + 0.1 + (0.02 if i % 2 else -0.02) for i, (q, v) in enumerate(a.items())}
    low, high = paired_bootstrap(a, shifted)
    assert 0.09 < low < 0.1 < high < 0.11
    assert paired_bootstrap(a, shifted) == (low, high)  # seeded: repeatable
    noise = {q: v + (0.1 if i % 2 else -0.1) for i, (q, v) in enumerate(a.items())}
    low, high = paired_bootstrap(a, noise)
    assert low < 0 < high
    assert paired_bootstrap(a, {q: v + 0.2 for q, v in a.items()}) == pytest.approx((0.2, 0.2))
    with pytest.raises(ValueError, match="at least 2"):
        paired_bootstrap({"q": 1.0}, {"q": 2.0})
    test = paired_test("ndcg@10", a, shifted)
    assert test.ci_low is not None and test.ci_low > 0
