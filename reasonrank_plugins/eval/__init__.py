"""Evaluation harness: data providers (BEIR, BRIGHT, TREC runs), bm25s first stage, ir-measures
metrics, a resumable eval runner with a JSON report and figure, and paired significance tests.

Needs the ``eval`` extra: ``pip install 'reasonrank-plugins[eval]'``.
"""

from .compare import PairedTest, compare_reports, paired_bootstrap, paired_test
from .data import EvalData, drop_excluded, load_beir, load_bright, load_data, read_trec_run, write_trec_run
from .metrics import MEASURE_NAMES, aggregate, per_query
from .retrieve import bm25_run
from .runner import evaluate

__all__ = [
    "MEASURE_NAMES",
    "EvalData",
    "PairedTest",
    "aggregate",
    "bm25_run",
    "compare_reports",
    "drop_excluded",
    "evaluate",
    "load_beir",
    "load_bright",
    "load_data",
    "paired_bootstrap",
    "paired_test",
    "per_query",
    "read_trec_run",
    "write_trec_run",
]
