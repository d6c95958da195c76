"""A stand-in for the paper's R1 teacher that ranks with the judgements, and the split it is
measured on.

- :func:`split_windows`: one window a query (the first-stage top ``depth``), the queries split into
  train and held-out parts fixed by a seed, and each window's passages **shuffled** with that seed.
  Shuffled, an identity or template answer scores the random-order nDCG, so a gain must come from
  reading the passages.
- :func:`qrels_records`: synth records whose ranking is the gold list (relevant passages first, by
  grade, then the rest in first-stage order) and whose reasoning is a short template naming the
  relevant passages. They are labelled ``teacher="qrels-template"``: this is not R1's reasoning.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .data import QueryItem, Window
from .examples import ranking_text

TEACHER = "qrels-template"
QUOTE_WORDS = 8  # words of a relevant passage the rationale quotes


@dataclass
class Split:
    train: list[QueryItem]
    heldout: list[QueryItem]
    skipped: int  # queries without a relevant passage in their window (when required)

    def summary(self, seed: int, depth: int, shuffle: bool) -> dict[str, Any]:
        return {
            "seed": seed,
            "depth": depth,
            "shuffled": shuffle,
            "train": [i.qid for i in self.train],
            "heldout": [i.qid for i in self.heldout],
            "skipped_without_relevant": self.skipped,
        }


def split_windows(
    queries: dict[str, str],
    corpus: dict[str, Any],
    run: dict[str, dict[str, float]],
    qrels: dict[str, dict[str, int]],
    *,
    depth: int = 8,
    heldout: int = 100,
    train: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
    require_relevant: bool = True,
    dataset: str = "default",
) -> Split:
    """Each judged query's first-stage top ``depth`` (``corpus`` holds core ``Passage`` objects),
    its queries drawn into ``heldout`` and ``train`` (default: the rest) with ``random.Random(seed)``,
    and, with ``shuffle``, each window's passages in an order fixed by ``seed`` and the query id.
    Every candidate keeps its first-stage ``rank`` (1-based). ``require_relevant`` drops queries
    whose window holds no relevant passage: every ranking of such a window scores 0."""
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    if heldout < 1:
        raise ValueError(f"heldout must be >= 1, got {heldout}")
    items, skipped = [], 0
    for qid, query in queries.items():
        if qid not in qrels or not run.get(qid):
            continue
        top = sorted(run[qid].items(), key=lambda x: (-x[1], x[0]))[:depth]
        candidates = []
        for rank, (docid, _) in enumerate(top, start=1):
            passage = corpus[docid]
            candidates.append({"docid": docid, "text": passage.text, "title": passage.title or "", "rank": rank})
        if require_relevant and not any(qrels[qid].get(c["docid"], 0) > 0 for c in candidates):
            skipped += 1
            continue
        if shuffle:
            random.Random(f"{seed}:{qid}").shuffle(candidates)
        items.append(QueryItem(qid, query, candidates, dataset=dataset))
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    wanted = heldout + (train if train is not None else len(items))
    if heldout >= len(items) or (train is not None and wanted > len(items)):
        raise ValueError(f"{len(items)} usable queries cannot give {heldout} held out and {train} to train")
    held = sorted(order[:heldout])
    rest = sorted(order[heldout:wanted])
    return Split([items[i] for i in rest], [items[i] for i in held], skipped)


def gold_order(candidates: Sequence[dict[str, Any]], judged: dict[str, int]) -> list[int]:
    """Window positions (0-based): relevant passages first, highest grade first, then every other
    passage; ties and the rest in first-stage order (``rank``, else window position)."""

    def key(i: int) -> tuple[int, int]:
        return (-max(judged.get(candidates[i]["docid"], 0), 0), int(candidates[i].get("rank", i + 1)))

    return sorted(range(len(candidates)), key=key)


def rationale(candidates: Sequence[dict[str, Any]], order: Sequence[int], judged: dict[str, int]) -> str:
    """A short templated rationale naming the relevant passages and quoting their opening words."""
    relevant = [i for i in order if judged.get(candidates[i]["docid"], 0) > 0]
    if not relevant:
        return "No passage addresses the query directly, so the passages keep their first-stage order."
    parts = []
    for i in relevant:
        c = candidates[i]
        words = (c.get("title") or c.get("text") or "").split()[:QUOTE_WORDS]
        parts.append(f"Passage [{i + 1}] (\"{' '.join(words)}\") addresses the query directly.")
    return " ".join(parts) + " The other passages are less related, so they follow."


def qrels_records(items: Sequence[QueryItem], qrels: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """One synth record a query (its whole candidate list is the window) in ``synth``'s format,
    so ``filter``, ``sft`` and ``grpo`` take them unchanged."""
    records = []
    for item in items:
        judged = qrels.get(item.qid, {})
        order = gold_order(item.candidates, judged)
        window = Window(item, 0, len(item.candidates), item.candidates)
        records.append(
            {
                "id": f"{window.key}#0",
                **window.record(TEACHER),
                "sample": 0,
                "relevant_docids": [c["docid"] for c in item.candidates if judged.get(c["docid"], 0) > 0],
                "relevant_source": "qrels",
                "pointwise": None,
                "reasoning": rationale(item.candidates, order, judged),
                "final_list": ranking_text(order),
                "finish_reason": "stop",
                "truncated": False,
                "forced": False,
            }
        )
    return records
