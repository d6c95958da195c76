"""Paired comparisons of two rankings of the same queries: scipy's paired t-test and a paired
bootstrap confidence interval of the mean difference (resampling queries)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class PairedTest:
    """``b - a`` on one measure over the queries both sides scored."""

    measure: str
    n: int
    a: float  # mean over the shared queries
    b: float
    delta: float
    t: float | None  # None when undefined (fewer than 2 queries, or every difference equal)
    p: float | None
    ci_low: float | None = None  # paired bootstrap 95% interval of delta (None: fewer than 2 queries)
    ci_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_test(measure: str, a: dict[str, float], b: dict[str, float]) -> PairedTest:
    """Two-sided paired t-test of per-query values ``b`` against ``a`` (``{qid: value}``), with
    the paired bootstrap interval of :func:`paired_bootstrap`."""
    from scipy.stats import ttest_rel

    qids = sorted(set(a) & set(b))
    xs, ys = [a[q] for q in qids], [b[q] for q in qids]
    n = len(qids)
    mean_a = sum(xs) / n if n else math.nan
    mean_b = sum(ys) / n if n else math.nan
    t = p = None
    if n >= 2 and len({y - x for x, y in zip(xs, ys)}) > 1:
        result = ttest_rel(ys, xs)
        t, p = float(result.statistic), float(result.pvalue)
    low, high = paired_bootstrap(a, b) if n >= 2 else (None, None)
    return PairedTest(measure, n, mean_a, mean_b, mean_b - mean_a, t, p, low, high)


def paired_bootstrap(
    a: dict[str, float],
    b: dict[str, float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of ``mean(b - a)`` over the shared queries, resampling
    queries with replacement (scipy's ``bootstrap``; fixed ``seed``, so it is repeatable)."""
    import numpy as np
    from scipy.stats import bootstrap

    qids = sorted(set(a) & set(b))
    if len(qids) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 shared queries, got {len(qids)}")
    diffs = np.array([b[q] - a[q] for q in qids], dtype=float)
    if np.all(diffs == diffs[0]):  # no spread: every resample has the same mean
        return float(diffs[0]), float(diffs[0])
    result = bootstrap(
        (diffs,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def per_query_values(report: dict[str, Any], measure: str, stage: str = "after") -> dict[str, float]:
    """``{qid: value}`` of ``measure`` at ``stage`` ("before" or "after") from an eval report."""
    return {row["qid"]: row[stage][measure] for row in report["per_query"] if measure in row[stage]}


def compare_reports(
    a: dict[str, Any], b: dict[str, Any], measures: list[str] | None = None
) -> list[PairedTest]:
    """Reranked ("after") metrics of report ``b`` against report ``a``, paired by query."""
    names = measures or [m for m in a["measures"] if m in b["measures"]]
    return [paired_test(m, per_query_values(a, m), per_query_values(b, m)) for m in names]
