"""The GRPO reward on hand-worked cases, one or more for every branch."""

import math

import ir_measures
import pytest
from ir_measures import R, nDCG
from reasonrank_training.metrics import average_overlap, ndcg_recall_at_10
from reasonrank_training.reward import ranking_reward

L2_3 = 1 / math.log2(3)  # discount of rank 2
L2_4 = 1 / math.log2(4)  # discount of rank 3
DOCS = ["d1", "d2", "d3"]
GOLD = "[2] > [1] > [3]"


def reward(response: str, relevant=("d2",), gold=GOLD, initial=DOCS, **weights) -> float:
    return ranking_reward(
        response, initial_list=list(initial), relevant_docids=list(relevant), gold_list=gold, **weights
    )


@pytest.mark.parametrize(
    "response",
    [
        "[2] > [1] > [3]",  # no tags
        "<answer>[2] > [1] > [3]</answer>",  # no reasoning block
        "<think>ok</think> [2] > [1] > [3]",  # no answer block
        "<think>ok <answer>[2] > [1] > [3]</answer>",  # think never closed
        "<think>ok</think> <answer>[2] > [1] > [3]",  # answer never closed
        "Sure! <think>ok</think> <answer>[2] > [1] > [3]</answer>",  # text before <think>
        "",
    ],
)
def test_format_failures_get_minus_one(response):
    assert reward(response) == -1.0


@pytest.mark.parametrize(
    "answer",
    [
        "[2] > [1]",  # too few ids
        "[2] > [1] > [3] > [1]",  # too many ids
        "[2] > [2] > [1]",  # right count, two unique
        "",  # no ids at all
        "2 > 1 > 3",  # bare numbers are not ids
    ],
)
def test_count_mismatch_gets_zero(answer):
    assert reward(f"<think>r</think> <answer>{answer}</answer>") == 0.0


def test_perfect_answer():
    # d2 first: nDCG 1, Recall 1; same list as the teacher: average overlap 1
    assert reward("<think>d2 answers it</think> <answer>[2] > [1] > [3]</answer>") == pytest.approx(1.3)


def test_relevant_passage_second():
    # nDCG = (1/log2 3) / 1; Recall@10 = 1; AO vs [2,1,3]: (0/1 + 2/2 + 3/3) / 3 = 2/3
    got = reward("<think>r</think>\n\n<answer>[1] > [2] > [3]</answer>")
    assert got == pytest.approx(L2_3 + 0.2 + 0.1 * 2 / 3)


def test_two_relevant_and_multiline_reasoning():
    # relevant d1, d3; ranked d2, d1, d3: DCG = 1/log2 3 + 1/log2 4, IDCG = 1 + 1/log2 3
    got = reward("<think>line one\nline two</think><answer>[2] > [1] > [3]</answer>", relevant=("d1", "d3"))
    assert got == pytest.approx((L2_3 + L2_4) / (1 + L2_3) + 0.2 + 0.1)


def test_recall_at_10_counts_only_the_top_ten():
    docs = [f"d{i}" for i in range(1, 13)]
    ids = " > ".join(f"[{i}]" for i in range(1, 13))
    # relevant d1 (rank 1) and d12 (rank 12): DCG@10 = 1, IDCG@10 = 1 + 1/log2 3; Recall@10 = 1/2
    got = reward(f"<think>r</think> <answer>{ids}</answer>", relevant=("d1", "d12"), gold=ids, initial=docs)
    assert got == pytest.approx(1 / (1 + L2_3) + 0.2 * 0.5 + 0.1)


def test_out_of_window_id_counts_as_non_relevant():
    # [7] maps to no document; AO vs [2,1,3]: (1 + 1 + 2/3) / 3
    got = reward("<think>r</think> <answer>[2] > [1] > [7]</answer>")
    assert got == pytest.approx(1 + 0.2 + 0.1 * (8 / 9))


def test_no_relevant_documents_leaves_only_rbo():
    assert reward("<think>r</think> <answer>[2] > [1] > [3]</answer>", relevant=()) == pytest.approx(0.1)


def test_weights_and_ndcg_only_ablation():
    response = "<think>r</think> <answer>[1] > [2] > [3]</answer>"
    assert reward(response, recall_weight=0.0, rbo_weight=0.0) == pytest.approx(L2_3)
    assert reward(response, ndcg_weight=2.0, recall_weight=1.0, rbo_weight=0.0) == pytest.approx(2 * L2_3 + 1)


def test_gold_list_as_ints_equals_string():
    response = "<think>r</think> <answer>[1] > [2] > [3]</answer>"
    assert reward(response, gold=[2, 1, 3]) == reward(response, gold=GOLD)


def test_average_overlap_by_hand():
    assert average_overlap([1, 2, 3], [1, 2, 3]) == 1.0
    assert average_overlap([3, 2, 1], [1, 2, 3]) == pytest.approx((0 + 1 / 2 + 1) / 3)
    assert average_overlap([4, 5], [1, 2]) == 0.0
    assert average_overlap([], []) == 0.0


def test_metrics_agree_with_ir_measures_aggregate():
    ranked = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
    qrels = {"c": 2, "k": 1, "z": 1, "a": 0}
    expected = ir_measures.calc_aggregate(
        [nDCG @ 10, R @ 10],
        [ir_measures.Qrel("1", d, r) for d, r in qrels.items()],
        [ir_measures.ScoredDoc("1", d, 100.0 - i) for i, d in enumerate(ranked)],
    )
    ndcg, recall = ndcg_recall_at_10(ranked, qrels)
    assert ndcg == pytest.approx(expected[nDCG @ 10]) and 0 < ndcg < 1
    assert recall == pytest.approx(1 / 3)  # c of {c, k, z}
