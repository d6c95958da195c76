"""Metrics, computed with ir-measures: nDCG@10, nDCG@5, R@10, R@20 and RR@10 (MRR@10)."""

from __future__ import annotations

from collections.abc import Iterable

from .data import Qrels, Run

MEASURE_NAMES = ("nDCG@10", "nDCG@5", "R@10", "R@20", "RR@10")


def _measures(names: Iterable[str]) -> list:
    import ir_measures

    return [ir_measures.parse_measure(n) for n in names]


def aggregate(qrels: Qrels, run: Run, names: Iterable[str] = MEASURE_NAMES) -> dict[str, float]:
    """Mean of each measure over the queries that ``run`` and ``qrels`` share."""
    import ir_measures

    names = list(names)
    values = ir_measures.calc_aggregate(_measures(names), qrels, run)
    return {n: float(values[m]) for n, m in zip(names, _measures(names))}


def per_query(qrels: Qrels, run: Run, names: Iterable[str] = MEASURE_NAMES) -> dict[str, dict[str, float]]:
    """``{qid: {measure: value}}`` for every query in both ``run`` and ``qrels``."""
    import ir_measures

    names = list(names)
    by_measure = {str(m): n for n, m in zip(names, _measures(names))}
    out: dict[str, dict[str, float]] = {}
    for metric in ir_measures.iter_calc(_measures(names), qrels, run):
        out.setdefault(metric.query_id, {})[by_measure[str(metric.measure)]] = float(metric.value)
    return out
