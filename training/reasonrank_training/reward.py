"""The multi-view ranking reward of ReasonRank's GRPO stage.

It follows the reference (``8421BCD/ReasonRank``, ``verl/verl/utils/reward_score/ranking.py``):
-1 without the ``<think>..</think> <answer>..</answer>`` format (found anywhere, ``re.search``), 0
when the answer's id count does not fit, else ``NDCG@10 + 0.2 * Recall@10 + 0.1 * RBO``. Where it
deliberately differs (training/README.md, "The GRPO reward"): ids are the bracketed ``[i]`` only,
an out-of-range id keeps its rank as a non-relevant slot, a complete permutation of the window also
fits when the teacher's gold list is shorter, and a window without relevant documents scores its
RBO only instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .metrics import average_overlap, ndcg_recall_at_10

FORMAT = re.compile(r"<think>.*?</think>\s*<answer>(.*?)</answer>", re.DOTALL)  # the reference's pattern
ID = re.compile(r"\[(\d+)\]")


def answer_ids(answer: str) -> list[int]:
    """The ``[i]`` identifiers of an answer in order, duplicates and out-of-range ids kept."""
    return [int(i) for i in ID.findall(answer)]


def ids_fit(ids: Sequence[int], gold: Sequence[int], window: int) -> bool:
    """As many ids and unique ids as the gold list (the reference's check), or every id of the
    window exactly once (a complete ranking is never wrong for its length)."""
    same_count = len(ids) == len(gold) and len(set(ids)) == len(set(gold))
    return same_count or sorted(ids) == list(range(1, window + 1))


def ranking_reward(
    response: str,
    *,
    initial_list: Sequence[str],
    relevant_docids: Sequence[str],
    gold_list: str | Sequence[int],
    ndcg_weight: float = 1.0,
    recall_weight: float = 0.2,
    rbo_weight: float = 0.1,
) -> float:
    """Reward one window's response.

    * -1 when no ``<think>.*?</think>\\s*<answer>(.*?)</answer>`` occurs in ``response``;
    * 0 when the answer's ids do not fit ``gold_list`` (:func:`ids_fit`);
    * else ``ndcg_weight * NDCG@10 + recall_weight * Recall@10 + rbo_weight * RBO(p=1)``, where
      ``[i]`` maps to ``initial_list[i - 1]``, ``relevant_docids`` are binary qrels (an id outside
      the window maps to no document and counts as non-relevant at its rank) and RBO compares the
      ids with the teacher's ``gold_list`` (such as ``"[2] > [4] > [1]"``) to its depth.
      ``recall_weight=rbo_weight=0`` is the NDCG-only ablation.
    """
    match = FORMAT.search(response)
    if match is None:
        return -1.0
    ids = answer_ids(match.group(1))
    gold = answer_ids(gold_list) if isinstance(gold_list, str) else [int(i) for i in gold_list]
    if not ids_fit(ids, gold, len(initial_list)):
        return 0.0
    ranked = [initial_list[i - 1] if 1 <= i <= len(initial_list) else f"<invalid id [{i}]>" for i in ids]
    ndcg, recall = ndcg_recall_at_10(ranked, dict.fromkeys(relevant_docids, 1))
    return ndcg_weight * ndcg + recall_weight * recall + rbo_weight * average_overlap(ids, gold)
