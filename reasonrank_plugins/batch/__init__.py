"""``reasonrank batch``: rerank a first-stage TREC run offline, in-process or on Ray Data, resumably.

Importing this package is cheap; Ray is imported only by ``run_batch(..., use_ray=True)``.
"""

from __future__ import annotations

from .data import BatchItem, load_items
from .pipeline import BatchSummary, RerankWorker, done_qids, run_batch

__all__ = ["BatchItem", "BatchSummary", "RerankWorker", "done_qids", "load_items", "run_batch"]
