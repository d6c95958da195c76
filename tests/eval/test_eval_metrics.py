"""Metrics (ir-measures) and the paired t-test on hand-made runs, against values worked by hand."""

from __future__ import annotations

import math

import pytest

from reasonrank_plugins.eval import aggregate, drop_excluded, paired_test, per_query
from reasonrank_plugins.eval.data import read_trec_run, select_queries, write_trec_run

# trec_eval's nDCG uses the relevance grade itself as the gain, discounted by log2(rank + 1).
QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0},
    "q2": {"a": 1, "b": 1, "c": 3},
}
RUN = {
    "q1": {"d3": 4.0, "d1": 3.0, "d4": 2.0, "d2": 1.0},  # ranks: d3 (0), d1 (2), d4 (unjudged), d2 (1)
    "q2": {"x": 9.0, "a": 8.0, "y": 7.0},  # a at rank 2; b and c never retrieved
}
LOG2_3, LOG2_5 = math.log2(3), math.log2(5)
HAND = {
    "q1": {
        "nDCG@10": (2 / LOG2_3 + 1 / LOG2_5) / (2 + 1 / LOG2_3),  # ideal: d1 (2), d2 (1)
        "nDCG@5": (2 / LOG2_3 + 1 / LOG2_5) / (2 + 1 / LOG2_3),
        "R@10": 1.0,
        "R@20": 1.0,
        "RR@10": 0.5,  # first relevant (d1) at rank 2
    },
    "q2": {
        "nDCG@10": (1 / LOG2_3) / (3 + 1 / LOG2_3 + 1 / 2),  # ideal: c (3), a (1), b (1)
        "nDCG@5": (1 / LOG2_3) / (3 + 1 / LOG2_3 + 1 / 2),
        "R@10": 1 / 3,
        "R@20": 1 / 3,
        "RR@10": 0.5,
    },
}


def test_per_query_metrics_equal_hand_computed_values():
    got = per_query(QRELS, RUN)
    assert set(got) == {"q1", "q2"}
    for qid, values in HAND.items():
        assert got[qid] == pytest.approx(values, abs=1e-9)
    assert HAND["q1"]["nDCG@10"] == pytest.approx(0.643322, abs=1e-6)  # 1.692536 / 2.630930
    assert HAND["q2"]["nDCG@10"] == pytest.approx(0.152733, abs=1e-6)  # 0.630930 / 4.130930


def test_aggregate_is_the_mean_over_queries():
    got = aggregate(QRELS, RUN)
    assert got == pytest.approx({m: (HAND["q1"][m] + HAND["q2"][m]) / 2 for m in HAND["q1"]}, abs=1e-9)


def test_cutoffs_bite():
    """A relevant document at rank 11 counts for R@20 but not for RR@10, nDCG@10 or R@10."""
    run = {"q": {f"n{i}": 100.0 - i for i in range(10)} | {"rel": 50.0}}
    got = per_query({"q": {"rel": 1}}, run)["q"]
    assert got == pytest.approx({"nDCG@10": 0.0, "nDCG@5": 0.0, "R@10": 0.0, "R@20": 1.0, "RR@10": 0.0})


def test_drop_excluded_changes_the_score():
    run = {"q": {"excluded": 3.0, "gold": 2.0, "other": 1.0}}
    qrels = {"q": {"gold": 1}}
    assert aggregate(qrels, run)["RR@10"] == 0.5
    kept = drop_excluded(run, {"q": {"excluded"}})
    assert kept == {"q": {"gold": 2.0, "other": 1.0}}
    assert aggregate(qrels, kept)["RR@10"] == 1.0


def test_paired_t_test_matches_the_closed_form():
    a = {"1": 0.5, "2": 0.4, "3": 0.2, "only-a": 0.9}
    b = {"1": 0.6, "2": 0.6, "3": 0.5}
    test = paired_test("nDCG@10", a, b)
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3); for 2 degrees of
    # freedom the two-sided p is 1 - t / sqrt(2 + t^2)
    t = 0.2 / (0.1 / math.sqrt(3))
    assert test.n == 3
    assert (test.a, test.b, test.delta) == pytest.approx((1.1 / 3, 1.7 / 3, 0.2))
    assert test.t == pytest.approx(t)
    assert test.p == pytest.approx(1 - t / math.sqrt(2 + t * t))


def test_paired_t_test_is_undefined_without_variance():
    same = {"1": 0.3, "2": 0.7}
    test = paired_test("RR@10", same, same)
    assert (test.n, test.delta, test.t, test.p) == (2, 0.0, None, None)


def test_trec_run_round_trip_keeps_order_and_scores(tmp_path):
    run = {"q1": {"d2": 1.0 / 3, "d1": 15.780599594116211}, "q2": {"x": -1.5}}
    write_trec_run(run, tmp_path / "r.trec", tag="t")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d1 1 15.780599594116211 t"
    assert read_trec_run(tmp_path / "r.trec") == run


def test_select_queries():
    qids = [str(i) for i in range(10)]
    assert select_queries(qids, 3) == ["0", "1", "2"]
    assert select_queries(qids, None) == qids
    sample = select_queries(qids, 4, seed=7)
    assert len(sample) == 4 and sample == sorted(sample, key=int)  # kept in file order
    assert sample == select_queries(qids, 4, seed=7) != select_queries(qids, 4, seed=8)
