"""The resumable eval loop: rerank each query's first-stage top-k and append one record per query.

An output folder holds ``settings.json`` (what is being evaluated, and every command that worked
on it), ``first_stage.trec`` (each query's candidates, fixed when it is first planned), ``records.jsonl`` (one
line per finished query, flushed as it finishes), and at the end ``run.trec``, ``report.json``
and ``figure.png``. Running again on the same folder skips the queries already recorded; the query list may grow
(``--queries 10``, then all) as long as every other setting is the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..ranker import ReasonRanker
from ..types import RerankResult
from .data import EvalData, Run, drop_excluded, ranked, read_trec_run, write_trec_run
from .metrics import aggregate, per_query
from .report import SETTINGS, build_report, code_version, reranked_run

logger = logging.getLogger(__name__)

FIRST_STAGE, RECORDS = "first_stage.trec", "records.jsonl"


def spec_of(
    data: EvalData, ranker: ReasonRanker, qids: list[str], top_k: int, source: dict[str, Any]
) -> dict:
    """Everything that decides the results; a resumed run must match it exactly."""
    c = ranker.config
    return {
        "data": {"name": data.name, "layout": data.layout, "first_stage": source},
        "qids": qids,
        "top_k": top_k,
        "window_size": c.window_size,
        "step": c.step,
        "max_passage_tokens": c.max_passage_tokens,
        "reasoning_budget": c.reasoning_budget,
        "answer_budget": c.answer_budget,
        "strategy": c.strategy,
        "cutoff": c.cutoff,
        "depth": c.depth,
        "budget": c.budget,
        "model": ranker.model,
        "backend": ranker.backend.name,
    }


def load_records(path: Path) -> dict[str, dict[str, Any]]:
    """Finished records by qid; a torn last line (killed mid-write) is cut off the file."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    records = {}
    for line in raw.decode("utf-8").splitlines():
        record = json.loads(line)
        records[record["qid"]] = record
    return records


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def record_of(qid: str, candidates: list[str], result: RerankResult) -> dict[str, Any]:
    return {
        "qid": qid,
        "order": [candidates[i] for i in result.order],
        "seconds": result.seconds,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "forced": result.forced,
        "empty": len(result.empty),
        "strategy": result.strategy,
        "depth": result.depth,
        "windows": [
            {
                "start": w.start,
                "end": w.end,
                "round": w.round,
                "kind": w.kind,
                "status": str(w.status),
                "error": w.error,
                "forced": w.forced,
                "prompt_tokens": w.prompt_tokens,
                "completion_tokens": w.completion_tokens,
                "seconds": w.seconds,
                "reasoning": w.reasoning,
                "answer": w.answer,
                "output": w.output,
            }
            for w in result.windows
        ],
    }


def _open_folder(out: Path, spec: dict[str, Any], command: str, first_stage: Run) -> Run:
    """Start a new folder, or check that it holds the same evaluation (the query list may change:
    finished queries are reused, new ones get their candidates added); return the candidates."""
    settings_path = out / SETTINGS
    if settings_path.exists():
        settings = json.loads(settings_path.read_text())
        old = settings["spec"]
        diff = sorted(k for k in set(spec) | set(old) if k != "qids" and spec.get(k) != old.get(k))
        if diff:
            raise ValueError(
                f"{out} holds an evaluation with other settings ({', '.join(diff)}); use another --out"
            )
        candidates = read_trec_run(out / FIRST_STAGE)
        added = {q: first_stage[q] for q in spec["qids"] if q not in candidates}
        if added:
            write_trec_run({**candidates, **added}, out / FIRST_STAGE, tag="first-stage")
        settings["spec"]["qids"] = spec["qids"]
        settings["commands"].append(command)
        settings.setdefault("code", []).append(code_version())
        settings_path.write_text(json.dumps(settings, indent=1))
        return read_trec_run(out / FIRST_STAGE)
    out.mkdir(parents=True, exist_ok=True)
    write_trec_run({q: first_stage[q] for q in spec["qids"]}, out / FIRST_STAGE, tag="first-stage")
    settings = {"spec": spec, "commands": [command], "code": [code_version()]}
    settings_path.write_text(json.dumps(settings, indent=1))
    return read_trec_run(out / FIRST_STAGE)


def evaluate(
    data: EvalData,
    ranker: ReasonRanker,
    out: str | Path,
    *,
    first_stage: Run,
    source: dict[str, Any],
    qids: list[str] | None = None,
    top_k: int = 100,
    parallel: int = 1,
    command: str = "",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Rerank the first-stage top ``top_k`` of each query in ``qids`` (default: every judged query
    with candidates), append a record per finished query to ``out``, and write the reranked run,
    the JSON report and the figure. ``source`` describes the first stage; ``parallel`` is how many
    queries are in flight at once (more helps a backend that batches)."""
    if top_k < 1 or parallel < 1:
        raise ValueError(f"top_k and parallel must be >= 1, got {top_k} and {parallel}")
    out = Path(out)
    first_stage = drop_excluded(first_stage, data.excluded)
    all_qids = data.query_ids(first_stage)
    qids = all_qids if qids is None else qids
    missing = [q for q in qids if q not in all_qids]
    if missing:
        raise ValueError(f"queries without judgements or candidates: {missing[:5]}")
    spec = spec_of(data, ranker, qids, top_k, source)
    first_stage_all = aggregate({q: data.qrels[q] for q in all_qids}, first_stage)
    candidates_run = _open_folder(out, spec, command, first_stage)
    records = {q: r for q, r in load_records(out / RECORDS).items() if q in qids}
    pending = [q for q in qids if q not in records]
    logger.info("%s: %d of %d queries done, %d to go", out, len(records), len(qids), len(pending))
    if pending:
        asyncio.run(
            _rerank(data, ranker, out, candidates_run, pending, records, top_k, parallel, show_progress)
        )
    records = {q: r for q, r in load_records(out / RECORDS).items() if q in qids}
    return build_report(out, data.qrels, candidates_run, records, first_stage_all)


async def _rerank(
    data: EvalData,
    ranker: ReasonRanker,
    out: Path,
    first_stage: Run,
    pending: list[str],
    records: dict[str, dict[str, Any]],
    top_k: int,
    parallel: int,
    show_progress: bool,
) -> None:
    from tqdm.auto import tqdm

    queue: asyncio.Queue[str] = asyncio.Queue()
    for qid in pending:
        queue.put_nowait(qid)
    done_qids = [q for q in records if q in first_stage]
    sums = [0.0, 0.0]
    for qid in done_qids:
        _add_ndcg(sums, data, first_stage, qid, records[qid]["order"])
    bar = tqdm(
        total=len(pending) + len(done_qids),
        initial=len(done_qids),
        desc="eval",
        unit="query",
        disable=not show_progress,
    )

    async def worker() -> None:
        while not queue.empty():
            qid = queue.get_nowait()
            candidates = ranked(first_stage[qid])[:top_k]
            unknown = [d for d in candidates if d not in data.corpus]
            if unknown:
                raise ValueError(f"query {qid}: documents {unknown[:3]} are not in the corpus")
            result = await ranker.arerank(data.queries[qid], [data.corpus[d] for d in candidates])
            record = record_of(qid, candidates, result)
            _append(out / RECORDS, record)
            done_qids.append(qid)
            _add_ndcg(sums, data, first_stage, qid, record["order"])
            bar.set_postfix_str(f"nDCG@10 {sums[0] / len(done_qids):.3f} -> {sums[1] / len(done_qids):.3f}")
            bar.update()

    try:
        await asyncio.gather(*(worker() for _ in range(min(parallel, len(pending)))))
    finally:
        bar.close()


def _add_ndcg(sums: list[float], data: EvalData, first_stage: Run, qid: str, order: list[str]) -> None:
    """Add one query's nDCG@10 before and after to the running sums (for the progress bar)."""
    qrels = {qid: data.qrels[qid]}
    before = per_query(qrels, {qid: first_stage[qid]}, ["nDCG@10"]).get(qid, {}).get("nDCG@10", 0.0)
    after_run = reranked_run({qid: first_stage[qid]}, {qid: {"order": order}})
    after = per_query(qrels, after_run, ["nDCG@10"]).get(qid, {}).get("nDCG@10", 0.0)
    sums[0] += before
    sums[1] += after
