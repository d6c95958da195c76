"""Measure a model on windows through the core engine: complete answers, parse status, nDCG@10."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reasonrank_plugins.engine import REFERENCE_BUDGET
from reasonrank_plugins.parse import ParsedAnswer, ParseStatus, parse_answer

from .data import QueryItem, to_passage, windows
from .filtering import lists_every_id
from .metrics import ndcg_recall_at_10
from .qrels_teacher import gold_order

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    model: str
    windows: int
    complete: float  # share of answers that list every id of the window exactly once
    statuses: dict[str, int]
    ndcg: float  # mean nDCG@10 of the reranked windows
    ndcg_initial: float  # ... of the windows in their given order (the identity bound)
    ndcg_oracle: float  # ... of the windows in qrels order (the oracle bound)
    forced: int  # windows whose reasoning budget ran out
    per_window: list[dict[str, Any]] = field(default_factory=list)


def ids_listed(answer: str, n: int) -> int:
    """How many distinct valid ids (1..n) the answer block ``answer`` names; 0 when it names none."""
    return _listed(parse_answer(f"<answer>{answer}</answer>", n), n)


def _listed(parsed: ParsedAnswer, n: int) -> int:
    return 0 if parsed.status is ParseStatus.FAILED else n - len(parsed.missing)


def evaluate_model(
    model: str,
    items: list[QueryItem],
    qrels: dict[str, dict[str, int]],
    *,
    backend: str = "transformers",
    window_size: int = 20,
    max_passage_tokens: int = 512,
    reasoning_budget: int = REFERENCE_BUDGET,
    show_progress: bool = True,
    **backend_options: Any,
) -> EvalResult:
    """Rerank each query's top window (``window_size`` candidates) once and score it."""
    from reasonrank_plugins import ReasonRanker

    jobs = [w for w in windows(items, window_size, window_size - 1) if w.start == 0]
    with ReasonRanker(
        model,
        backend,
        window_size=window_size,
        step=window_size - 1,
        max_passage_tokens=max_passage_tokens,
        reasoning_budget=reasoning_budget,
        **backend_options,
    ) as ranker:
        results = ranker.rerank_many(
            [(w.item.query, [to_passage(c) for c in w.candidates]) for w in jobs], show_progress=show_progress
        )
    per_window = []
    for window, result in zip(jobs, results, strict=True):
        record = result.windows[0]
        size = len(record.indices)
        parsed = parse_answer(f"<answer>{record.answer}</answer>", size)
        listed = _listed(parsed, size)
        judged = qrels.get(window.item.qid, {})
        ndcg, _ = ndcg_recall_at_10([window.initial_list[i] for i in result.order], judged)
        initial, _ = ndcg_recall_at_10(window.initial_list, judged)
        best = [window.initial_list[i] for i in gold_order(window.candidates, judged)]
        oracle, _ = ndcg_recall_at_10(best, judged)
        per_window.append(
            {
                "qid": window.item.qid,
                "status": str(record.status),
                "complete": lists_every_id(parsed),
                "listed": listed,
                "ndcg@10": ndcg,
                "ndcg@10_initial": initial,
                "ndcg@10_oracle": oracle,
                "forced": record.forced,
                "completion_tokens": record.completion_tokens,
            }
        )
    n = max(len(per_window), 1)
    return EvalResult(
        model=model,
        windows=len(per_window),
        complete=sum(w["complete"] for w in per_window) / n,
        statuses=dict(Counter(w["status"] for w in per_window)),
        ndcg=sum(w["ndcg@10"] for w in per_window) / n,
        ndcg_initial=sum(w["ndcg@10_initial"] for w in per_window) / n,
        ndcg_oracle=sum(w["ndcg@10_oracle"] for w in per_window) / n,
        forced=sum(w["forced"] for w in per_window),
        per_window=per_window,
    )
