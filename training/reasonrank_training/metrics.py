"""NDCG@10 and Recall@10 through ir-measures (pytrec_eval underneath), one ranking at a time.

One call costs about 0.1-0.5 ms after the first (measured here), small next to a rollout, so the
GRPO reward uses it directly instead of a hand-written nDCG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

_QID = "q"


@lru_cache(maxsize=1)
def _measures():  # type: ignore[no-untyped-def]
    from ir_measures import R, nDCG

    return nDCG @ 10, R @ 10


def ndcg_recall_at_10(ranked: Sequence[str], qrels: Mapping[str, int]) -> tuple[float, float]:
    """(nDCG@10, Recall@10) of ``ranked`` docids against ``{docid: relevance}``.

    Both are 0.0 when no docid is relevant. Ties cannot happen: rank r gets score ``-r``.
    """
    import ir_measures

    if not any(rel > 0 for rel in qrels.values()):
        return 0.0, 0.0
    ndcg, recall = _measures()
    judged = [ir_measures.Qrel(_QID, d, int(rel)) for d, rel in qrels.items()]
    run = [ir_measures.ScoredDoc(_QID, d, -float(r)) for r, d in enumerate(ranked)]
    values = {m.measure: m.value for m in ir_measures.iter_calc([ndcg, recall], judged, run)}
    return float(values.get(ndcg, 0.0)), float(values.get(recall, 0.0))


def average_overlap(predicted: Sequence[object], reference: Sequence[object]) -> float:
    """Rank-biased overlap with p = 1, i.e. average overlap to depth ``len(reference)``:
    ``1/k * sum_{d=1..k} |P[:d] & R[:d]| / d``.

    Hand-written because the ``rbo`` package pins numpy<2; it is one line.
    """
    k = len(reference)
    if k == 0:
        return 0.0
    return sum(len(set(predicted[:d]) & set(reference[:d])) / d for d in range(1, k + 1)) / k
