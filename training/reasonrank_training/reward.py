"""The multi-view ranking reward of ReasonRank's GRPO stage."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .metrics import average_overlap, ndcg_recall_at_10

FORMAT = re.compile(r"<think>.*?</think>\s*<answer>(.*?)</answer>", re.DOTALL)
ID = re.compile(r"\[(\d+)\]")


def answer_ids(answer: str) -> list[int]:
    """The ``[i]`` identifiers of an answer in order, duplicates and out-of-range ids kept."""
    return [int(i) for i in ID.findall(answer)]


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

    * -1 when ``response`` does not match ``<think>.*?</think>\\s*<answer>(.*?)</answer>``;
    * 0 when the answer's id count, or its count of unique ids, differs from ``gold_list``'s;
    * else ``ndcg_weight * NDCG@10 + recall_weight * Recall@10 + rbo_weight * RBO(p=1)``, where
      ``[i]`` maps to ``initial_list[i - 1]``, ``relevant_docids`` are binary qrels (an id outside
      the window maps to no document and counts as non-relevant) and RBO compares the ids with the
      teacher's ``gold_list`` (such as ``"[2] > [4] > [1]"``). ``recall_weight=rbo_weight=0`` is
      the NDCG-only ablation.
    """
    match = FORMAT.match(response.strip())
    if match is None:
        return -1.0
    ids = answer_ids(match.group(1))
    gold = answer_ids(gold_list) if isinstance(gold_list, str) else [int(i) for i in gold_list]
    if len(ids) != len(gold) or len(set(ids)) != len(set(gold)):
        return 0.0
    ranked = [initial_list[i - 1] if 1 <= i <= len(initial_list) else f"<invalid id [{i}]>" for i in ids]
    ndcg, recall = ndcg_recall_at_10(ranked, dict.fromkeys(relevant_docids, 1))
    return ndcg_weight * ndcg + recall_weight * recall + rbo_weight * average_overlap(ids, gold)
