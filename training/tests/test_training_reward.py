"""The GRPO reward on hand-worked cases, one or more for every branch."""

import math
import random
import re

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
        "<answer>[2] > [1] > [3]</answer> <think>ok</think>",  # answer before reasoning
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


# Each documented difference from the reference's ranking.py (training/README.md, "The GRPO reward")


def test_tags_are_found_anywhere_as_the_reference_does():
    # re.search, as the reference: a preamble or a trailer does not change the reward
    clean = reward("<think>ok</think> <answer>[2] > [1] > [3]</answer>")
    assert (
        reward("Sure! <think>ok</think> <answer>[2] > [1] > [3]</answer> Done.")
        == clean
        == pytest.approx(1.3)
    )


def test_ids_outside_brackets_are_not_ids():
    # the reference keeps every digit run: "(3 passages)" adds an id there and the count check gives 0
    assert reward("<think>r</think> <answer>[2] > [1] > [3] (3 passages)</answer>") == pytest.approx(1.3)
    # and it reads a bare "2 > 1 > 3" as a ranking; the prompt asks for [] > []: the count check fails here
    assert reward("<think>r</think> <answer>2 > 1 > 3</answer>") == 0.0


def test_out_of_range_id_keeps_its_rank():
    # the reference drops [7] and so ranks nothing in its place; [0] would be initial_list[-1] there.
    # Here both hold their rank as non-relevant: d2 relevant at rank 3 in both replies
    for bad in ("[7]", "[0]"):
        got = reward(f"<think>r</think> <answer>{bad} > [1] > [2]</answer>")
        # nDCG 1/log2(4); Recall 1; AO vs [2,1,3]: (0/1 + 1/2 + 2/3) / 3
        assert got == pytest.approx(L2_4 + 0.2 + 0.1 * (0 + 1 / 2 + 2 / 3) / 3)


def test_gold_list_shorter_than_the_window():
    # the teacher listed 2 of 3 ids: a reply of that length fits (the reference's check) ...
    short = reward("<think>r</think> <answer>[2] > [1]</answer>", gold="[2] > [1]")
    assert short == pytest.approx(1 + 0.2 + 0.1)
    # ... and so does a complete ranking of the window, which the reference gives 0; RBO to the gold's depth
    full = reward("<think>r</think> <answer>[2] > [3] > [1]</answer>", gold="[2] > [1]")
    assert full == pytest.approx(1 + 0.2 + 0.1 * (1 + 1 / 2) / 2)
    # a reply of another length that is no complete ranking still gets 0
    assert reward("<think>r</think> <answer>[2]</answer>", gold="[2] > [1]") == 0.0


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
    # the reference's pytrec_eval returns no row for a query without judgments and it raises KeyError
    assert reward("<think>r</think> <answer>[2] > [1] > [3]</answer>", relevant=()) == pytest.approx(0.1)
    assert reward("<think>r</think> <answer>[3] > [1] > [2]</answer>", relevant=()) == pytest.approx(
        0.1 * (0 + 1 / 2 + 1) / 3
    )


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


# Differential test: ranking_reward against an independent implementation of the paper's formula.
#
# ReasonRank (Liu et al., arXiv 2508.07050), the RL stage's "multi-view ranking reward": a reply whose
# output does not follow <think>...</think><answer>...</answer> gets -1; one whose answer is not a
# valid ranking of the window gets 0; else R = NDCG@10 + phi1 * Recall@10 + phi2 * RBO against the
# teacher's gold list, with phi1 = 0.2 and phi2 = 0.1. The exact cases and weights are taken from the
# authors' code, the paper's own implementation (only the paper's abstract was readable here)
# (8421BCD/ReasonRank, verl/verl/utils/reward_score/ranking.py:
# `reward_score = ndcg10 + 0.2 * recall10 + 0.1 * rbo_score`, RBO from the `rbo` package at its
# default p = 1). "Valid" is this package's documented reading of the answer check (README, "The GRPO
# reward"): bracketed ids, as many (and as many unique) as the gold list, or every window id once.
# Below, NDCG and Recall are written out by hand (binary gains, log2 discount) and RBO follows the
# `rbo` package's running agreement, so no code is shared with reasonrank_training.metrics.

PAPER_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>(.*?)</answer>", re.DOTALL)


def paper_rbo(s: list[int], t: list[int]) -> float:
    """RBO with p = 1 as the `rbo` package computes it: running agreement A_d, averaged over d <= k."""
    k = min(len(s), len(t))
    if k == 0:
        return 0.0
    seen_s, seen_t, agreement, total = set(), set(), 0.0, 0.0
    for d in range(k):
        new = (s[d] in seen_t) + (t[d] in seen_s) + (s[d] == t[d])
        agreement = (agreement * d + new) / (d + 1)
        total += agreement
        seen_s.add(s[d])
        seen_t.add(t[d])
    return total / k


def paper_reward(reply: str, initial: list[str], relevant: list[str], gold: list[int]) -> float:
    match = PAPER_FORMAT.search(reply)
    if match is None:
        return -1.0
    ids = [int(t) for t in re.findall(r"\[(\d+)\]", match.group(1))]
    n = len(initial)
    complete = len(ids) == n and set(ids) == set(range(1, n + 1))
    if not complete and not (len(ids) == len(gold) and len(set(ids)) == len(set(gold))):
        return 0.0
    rel = set(relevant)
    top = [initial[i - 1] if 1 <= i <= n else None for i in ids][:10]
    dcg = sum(1 / math.log2(rank + 2) for rank, doc in enumerate(top) if doc in rel)
    idcg = sum(1 / math.log2(rank + 2) for rank in range(min(len(rel), 10)))
    ndcg = dcg / idcg if idcg else 0.0
    recall = len(rel & set(top)) / len(rel) if rel else 0.0
    return ndcg + 0.2 * recall + 0.1 * paper_rbo(ids, gold)


def random_case(rng: random.Random) -> tuple[str, list[str], list[str], list[int]]:
    """One window, its qrels, a teacher gold list and a well-formed or malformed reply."""
    n = rng.randint(1, 20)
    initial = [f"doc{rng.randrange(10**6)}-{i}" for i in range(n)]
    relevant = rng.sample(initial, rng.randint(0, min(n, 6))) + (["outside"] if rng.random() < 0.1 else [])
    gold = rng.sample(range(1, n + 1), n if rng.random() < 0.8 else rng.randint(1, n))
    perm = rng.sample(range(1, n + 1), n)
    kind = rng.choice(
        ["full", "gold-length", "duplicate", "out-of-range", "missing", "bare", "prose", "empty"]
        + ["no-think", "unclosed", "reversed", "preamble", "two-answers"]
    )
    ids = {
        "full": perm,
        "gold-length": rng.sample(range(1, n + 1), len(gold)),
        "duplicate": perm[:-1] + [perm[0]],
        "out-of-range": perm[:-1] + [rng.choice([0, n + 1, n + rng.randint(2, 9)])],
        "missing": perm[:-1],
    }.get(kind, perm)
    answer = " > ".join(f"[{i}]" for i in ids)
    if kind == "bare":
        answer = " > ".join(map(str, ids))
    elif kind == "prose":
        answer += f" ({n} passages, top {rng.randint(1, 3)})"
    elif kind == "empty":
        answer = rng.choice(["", "none", "[] > []"])
    think = rng.choice(["", "short", "line one\nline two [3] > [1]", "passage [2] is off-topic"])
    gap = rng.choice(["", " ", "\n\n", "\t"])
    reply = f"<think>{think}</think>{gap}<answer>{answer}</answer>"
    if kind == "no-think":
        reply = f"<answer>{answer}</answer>"
    elif kind == "unclosed":
        reply = rng.choice(
            [f"<think>{think}<answer>{answer}</answer>", f"<think>{think}</think><answer>{answer}"]
        )
    elif kind == "reversed":
        reply = f"<answer>{answer}</answer><think>{think}</think>"
    elif kind == "preamble":
        reply = f"Sure. {reply} Hope this helps [1]."
    elif kind == "two-answers":
        reply += f" <think>again</think> <answer>{' > '.join(f'[{i}]' for i in reversed(ids))}</answer>"
    return reply, initial, relevant, gold


def test_reward_agrees_with_the_papers_formula_on_generated_replies():
    rng = random.Random(2508_07050)
    outcomes = {-1: 0, 0: 0, 1: 0}
    for _ in range(2000):
        reply, initial, relevant, gold = random_case(rng)
        expected = paper_reward(reply, initial, relevant, gold)
        got = reward(reply, relevant=relevant, gold=" > ".join(f"[{i}]" for i in gold), initial=initial)
        assert got == pytest.approx(expected, abs=1e-9), (reply, initial, relevant, gold)
        outcomes[-1 if expected == -1 else 0 if expected == 0 else 1] += 1
    assert min(outcomes.values()) >= 200, outcomes  # every branch is exercised, not only one
