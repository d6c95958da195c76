"""The eval report (JSON), the reranked TREC run and the figure, built from an output folder."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from .compare import paired_test
from .data import Qrels, Run, ranked, write_trec_run
from .metrics import MEASURE_NAMES, aggregate, per_query

SETTINGS = "settings.json"


def reranked_run(first_stage: Run, records: dict[str, dict[str, Any]]) -> Run:
    """Each record's order, then the rest of its first-stage list; scores fall with the rank."""
    run: Run = {}
    for qid, record in records.items():
        head = record["order"]
        seen = set(head)
        docs = head + [d for d in ranked(first_stage[qid]) if d not in seen]
        run[qid] = {d: float(len(docs) - r) for r, d in enumerate(docs)}
    return run


def hardware() -> dict[str, Any]:
    """The machine this process runs on (a remote server's hardware is not visible from here)."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    if hasattr(os, "sysconf"):
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if shutil.which("nvidia-smi"):
        gpus = subprocess.run(
            ["nvidia-smi", "-L"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
        info["gpus"] = gpus.strip().splitlines()
    return info


def code_version() -> dict[str, Any]:
    """This package's version, and its git commit (``+dirty`` with local edits) when run from a checkout."""
    from .. import __version__

    root = Path(__file__).resolve().parents[2]
    info: dict[str, Any] = {"version": __version__, "git": None}
    if (root / ".git").exists() and shutil.which("git"):
        git = ["git", "-C", str(root)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "reasonrank_plugins"],
            check=False,
            capture_output=True,
            text=True,
        )
        if head.returncode == 0:
            info["git"] = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    return info


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _spread(values: list[int]) -> dict[str, float | int | None]:
    """Per-query mean and maximum of a count."""
    return {"per_query_mean": _mean(values), "per_query_max": max(values, default=None)}


def _window_row(w: dict[str, Any]) -> dict[str, Any]:
    keys = ("start", "end", "round", "kind", "status", "forced", "prompt_tokens", "completion_tokens",
            "seconds")
    return {**{k: w[k] for k in keys}, "reasoning_words": len(w["reasoning"].split())}


def build_report(
    out: Path,
    qrels: Qrels,
    first_stage: Run,
    records: dict[str, dict[str, Any]],
    first_stage_all: dict[str, float] | None = None,
    *,
    figure: bool = True,
) -> dict[str, Any]:
    """Write ``run.trec``, ``report.json`` and (with ``figure``) ``figure.png``; return the report."""
    settings = json.loads((out / SETTINGS).read_text())
    spec = settings["spec"]
    qids = [q for q in spec["qids"] if q in records]
    after_run = reranked_run(first_stage, {q: records[q] for q in qids})
    write_trec_run(after_run, out / "run.trec", tag=f"reasonrank-{spec['backend']}")
    judged = {q: qrels[q] for q in qids}
    before_run = {q: first_stage[q] for q in qids}
    before, after = per_query(judged, before_run), per_query(judged, after_run)
    zero = dict.fromkeys(MEASURE_NAMES, 0.0)  # a query without relevant documents scores 0
    rows = []
    for q in qids:
        b, a, r = before.get(q, zero), after.get(q, zero), records[q]
        rows.append(
            {
                "qid": q,
                "before": b,
                "after": a,
                "delta": {m: a[m] - b[m] for m in MEASURE_NAMES},
                "seconds": r["seconds"],
                "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"],
                "forced": r["forced"],
                "depth": r["depth"],
                "windows": [_window_row(w) for w in r["windows"]],
            }
        )
    windows = [w for row in rows for w in row["windows"]]
    seconds = [row["seconds"] for row in rows]
    metrics_before, metrics_after = aggregate(judged, before_run), aggregate(judged, after_run)
    report = {
        "command": settings["commands"][-1],
        "commands": settings["commands"],
        "code": settings.get("code", []),  # per command: package version and git commit
        "data": spec["data"],
        "queries": {"evaluated": len(qids), "planned": len(spec["qids"])},
        "settings": {
            k: spec[k]
            for k in (
                "top_k",
                "window_size",
                "step",
                "max_passage_tokens",
                "reasoning_budget",
                "answer_budget",
                "strategy",
                "cutoff",
                "depth",
                "budget",
            )
        },
        "strategy": spec["strategy"],
        "model": spec["model"],
        "backend": spec["backend"],
        "hardware": hardware(),
        "measures": list(MEASURE_NAMES),
        "metrics": {
            "before": metrics_before,
            "after": metrics_after,
            "delta": {m: metrics_after[m] - metrics_before[m] for m in MEASURE_NAMES},
        },
        "first_stage_all_queries": first_stage_all,
        "significance": {
            m: paired_test(
                m, {r["qid"]: r["before"][m] for r in rows}, {r["qid"]: r["after"][m] for r in rows}
            ).as_dict()
            for m in MEASURE_NAMES
        },
        "seconds": {
            "total": sum(seconds),
            "per_query_mean": _mean(seconds),
            "per_query_median": statistics.median(seconds) if seconds else None,
        },
        "tokens": {
            "windows": len(windows),
            "prompt_total": sum(w["prompt_tokens"] for w in windows),
            "completion_total": sum(w["completion_tokens"] for w in windows),
            "prompt_per_query": _mean([row["prompt_tokens"] for row in rows]),
            "completion_per_query": _mean([row["completion_tokens"] for row in rows]),
            "prompt_per_window": _mean([w["prompt_tokens"] for w in windows]),
            "completion_per_window": _mean([w["completion_tokens"] for w in windows]),
        },
        "windows": _spread([len(row["windows"]) for row in rows]),
        "depth": _spread([row["depth"] for row in rows]),  # dependent rounds of windows per query
        "statuses": dict(sorted(Counter(w["status"] for w in windows).items())),
        "forced": sum(w["forced"] for w in windows),
        "per_query": rows,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    if figure:
        plot(report, out / "figure.png")
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    """Per-query nDCG@10 before against after, and a histogram of reasoning length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["per_query"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    left.scatter([r["before"]["nDCG@10"] for r in rows], [r["after"]["nDCG@10"] for r in rows], alpha=0.7)
    left.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    left.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="nDCG@10 first stage", ylabel="nDCG@10 reranked")
    m = report["metrics"]
    left.set_title(
        f"{report['data']['name']}: {m['before']['nDCG@10']:.3f} -> {m['after']['nDCG@10']:.3f} "
        f"({len(rows)} queries)"
    )
    lengths = [w["reasoning_words"] for r in rows for w in r["windows"]]
    right.hist(lengths, bins=min(30, max(1, len(set(lengths)))))
    right.set(xlabel="reasoning length (words) per window", ylabel="windows")
    right.set_title(
        f"{report['model']} on {report['backend']} ({report['strategy']})\n{len(lengths)} windows, "
        f"{report['forced']} forced answers",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
