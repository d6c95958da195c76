"""Stage 2: keep a sample when its teacher ranking reaches NDCG@10 >= alpha (self-consistency).

A failed parse (an empty or unreadable ``final_list``) and a truncated reply (``finish_reason ==
"length"``: the teacher's chain of thought was cut) are dropped before ``alpha`` is applied and
counted: a failed parse would otherwise become the first-stage order, which passes ``alpha``
whenever the first stage is good, and SFT would pair it with reasoning that never produced it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from reasonrank_plugins.parse import ParsedAnswer, ParseStatus, parse_answer

from .metrics import ndcg_recall_at_10

logger = logging.getLogger(__name__)


@dataclass
class DatasetCount:
    total: int = 0
    kept: int = 0
    complete: int = 0  # teacher answers listing every id exactly once (lists_every_id)
    failed: int = 0  # dropped: no id could be read from final_list
    truncated: int = 0  # dropped: the teacher's reply hit its token limit (unless keep_truncated)
    ndcg_sum: float = 0.0

    @property
    def mean_ndcg(self) -> float:
        return self.ndcg_sum / self.total if self.total else 0.0


@dataclass
class FilterReport:
    alpha: float
    require_complete: bool
    keep_truncated: bool = False
    datasets: dict[str, DatasetCount] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": "filter",
            "alpha": self.alpha,
            "require_complete": self.require_complete,
            "keep_truncated": self.keep_truncated,
            "datasets": {k: {**asdict(v), "mean_ndcg": v.mean_ndcg} for k, v in self.datasets.items()},
            "total": sum(v.total for v in self.datasets.values()),
            "kept": sum(v.kept for v in self.datasets.values()),
            "failed": sum(v.failed for v in self.datasets.values()),
            "truncated": sum(v.truncated for v in self.datasets.values()),
        }


def lists_every_id(parsed: ParsedAnswer) -> bool:
    """The answer names every id of the window exactly once. Bracketed non-ids such as ``[]`` make
    the parse ``repaired`` but are no ids, so they neither add nor remove one."""
    return parsed.status is not ParseStatus.FAILED and not parsed.missing and not parsed.duplicates


def parse_final_list(record: dict[str, Any]) -> ParsedAnswer:
    """The teacher's ``final_list`` read by the core parser."""
    return parse_answer(f"<answer>{record.get('final_list') or ''}</answer>", len(record["initial_list"]))


def teacher_order(record: dict[str, Any]) -> tuple[list[int], ParseStatus]:
    """The teacher's ``final_list`` as a 0-based permutation of the window (core parser)."""
    parsed = parse_final_list(record)
    return parsed.order, parsed.status


def is_truncated(record: dict[str, Any]) -> bool:
    """The teacher's listwise reply stopped at its token limit (``synth`` writes ``truncated``;
    older records carry only ``finish_reason``)."""
    return bool(record.get("truncated", record.get("finish_reason") == "length"))


def score(record: dict[str, Any], qrels: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """Add ``order``, ``parse_status``, ``complete`` and ``ndcg@10`` to a synth record.

    Judged against the real ``qrels`` of its query when given, else its ``relevant_docids``.
    """
    parsed = parse_final_list(record)
    ranked = [record["initial_list"][i] for i in parsed.order]
    judged = (qrels or {}).get(record["qid"])
    if judged is None:
        judged = dict.fromkeys(record.get("relevant_docids") or [], 1)
    ndcg, _ = ndcg_recall_at_10(ranked, judged)
    return {
        **record,
        "order": parsed.order,
        "parse_status": str(parsed.status),
        "complete": lists_every_id(parsed),
        "ndcg@10": ndcg,
    }


def filter_records(
    records: list[dict[str, Any]],
    *,
    alpha: float = 0.4,
    qrels: dict[str, dict[str, int]] | None = None,
    require_complete: bool = False,
    keep_truncated: bool = False,
) -> tuple[list[dict[str, Any]], FilterReport]:
    """The kept (scored) records and per-dataset counts. ``keep_truncated`` is for smoke runs whose
    teacher budget is deliberately tiny; a real run drops truncated replies."""
    report = FilterReport(alpha, require_complete, keep_truncated)
    kept = []
    counts: dict[str, DatasetCount] = defaultdict(DatasetCount)
    for record in records:
        scored = score(record, qrels)
        count = counts[record.get("dataset", "default")]
        count.total += 1
        count.complete += scored["complete"]
        count.ndcg_sum += scored["ndcg@10"]
        if scored["parse_status"] == str(ParseStatus.FAILED):
            count.failed += 1
        elif is_truncated(record) and not keep_truncated:
            count.truncated += 1
        elif scored["ndcg@10"] >= alpha and (scored["complete"] or not require_complete):
            count.kept += 1
            kept.append(scored)
    report.datasets = dict(counts)
    for name, count in report.datasets.items():
        logger.info(
            "filter: %s kept %d of %d (alpha %.2f; %d failed parses, %d truncated dropped)",
            name, count.kept, count.total, alpha, count.failed, count.truncated,
        )  # fmt: skip
    return kept, report
