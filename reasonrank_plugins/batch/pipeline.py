"""Batch reranking: workers that each hold one ``ReasonRanker`` write one part file per batch;
a run skips the queries its output folder already has, then merges all parts into ``run.trec``.

Layout of ``out``: ``parts/part-*.jsonl`` (one JSON record a query, written atomically) and
``run.trec`` (the reranked run, queries in input order). On a cluster ``out`` must be a folder
every node can write (a shared file system).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..options import RankerOptions
from ..types import Passage, RerankResult
from .data import BatchItem

logger = logging.getLogger(__name__)
RUN_TAG = "reasonrank"


def record(qid: str, docids: Sequence[str], result: RerankResult) -> dict[str, Any]:
    """The output line of one query (no timings, so equal inputs give equal bytes)."""
    return {
        "qid": qid,
        "docids": [docids[i] for i in result.order],
        "scores": result.scores,
        "strategy": result.strategy,
        "windows": len(result.windows),
        "depth": result.depth,  # dependent rounds of windows
        "statuses": dict(sorted(result.statuses.items())),
        "forced": result.forced,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "reasoning": [w.reasoning for w in result.windows],
    }


def write_part(parts: Path, records: list[dict[str, Any]]) -> Path:
    """Write records to a new part file; the rename makes it appear whole or not at all."""
    parts.mkdir(parents=True, exist_ok=True)
    path = parts / f"part-{uuid.uuid4().hex}.jsonl"
    tmp = parts / f".tmp-{path.name}"
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)
    return path


class RerankWorker:
    """A ``map_batches`` callable: builds its ranker once, reranks a batch of serialized items
    (windows of all its queries batched together) and writes them as one part file."""

    def __init__(self, spec: RankerOptions, out: str) -> None:
        self.ranker = spec.build()
        self.parts = Path(out) / "parts"
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        items = [BatchItem.from_json(str(p)) for p in batch["payload"]]
        results = self.ranker.rerank_many(
            [
                (
                    it.query,
                    [Passage(t, title or None, d) for d, t, title in zip(it.docids, it.texts, it.titles)],
                )
                for it in items
            ]
        )
        part = write_part(self.parts, [record(it.qid, it.docids, r) for it, r in zip(items, results)])
        return {
            "qid": [it.qid for it in items],
            "part": [part.name] * len(items),
            "worker": [self.name] * len(items),
        }


def iter_records(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every record in ``out/parts``, part files in name order; unreadable lines are skipped."""
    for path in sorted((Path(out) / "parts").glob("part-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                logger.warning("skipping a broken line in %s", path)


def done_qids(out: str | Path) -> set[str]:
    return {r["qid"] for r in iter_records(out)}


@dataclass
class BatchSummary:
    total: int  # queries in the input
    skipped: int  # already in the output
    computed: list[str] = field(default_factory=list)  # qids reranked by this run
    workers: int = 0  # distinct workers (processes) that reranked them
    seconds: float = 0.0
    run_path: Path | None = None


def write_run(out: str | Path, items: Sequence[BatchItem]) -> Path:
    """Merge the parts into ``out/run.trec`` in input order (the first record of a qid wins)."""
    records: dict[str, dict[str, Any]] = {}
    for r in iter_records(out):
        records.setdefault(r["qid"], r)
    path = Path(out) / "run.trec"
    lines = []
    for it in items:
        r = records.get(it.qid)
        if r is None:
            continue
        for rank, (docid, score) in enumerate(zip(r["docids"], r["scores"]), start=1):
            lines.append(f"{it.qid} Q0 {docid} {rank} {score:.6f} {RUN_TAG}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _batches(items: Sequence[BatchItem], size: int) -> Iterator[Sequence[BatchItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


Done = list[tuple[str, str]]  # (qid, worker) of every query a run reranked


def _run_local(items: Sequence[BatchItem], spec: RankerOptions, out: Path, batch_size: int) -> Done:
    from tqdm.auto import tqdm

    worker = RerankWorker(spec, str(out))
    done: Done = []
    try:
        with tqdm(total=len(items), desc="rerank", unit="query") as bar:
            for batch in _batches(items, batch_size):
                rows = worker({"payload": [it.to_json() for it in batch]})
                done += zip(rows["qid"], rows["worker"])
                bar.update(len(batch))
    finally:
        worker.ranker.close()
    return done


def _run_ray(
    items: Sequence[BatchItem],
    spec: RankerOptions,
    out: Path,
    batch_size: int,
    num_replicas: int,
    num_cpus: float,
    num_gpus: float,
    address: str | None,
) -> Done:
    import ray

    if not ray.is_initialized():
        ray.init(address=address)  # None: $RAY_ADDRESS or a new local instance
    ds = ray.data.from_items([{"qid": it.qid, "payload": it.to_json()} for it in items])
    ds = ds.map_batches(
        RerankWorker,
        fn_constructor_kwargs={"spec": spec, "out": str(out.resolve())},
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=num_replicas,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    return [(str(row["qid"]), str(row["worker"])) for row in ds.iter_rows()]


def run_batch(
    items: Sequence[BatchItem],
    spec: RankerOptions,
    out: str | Path,
    *,
    batch_size: int = 8,
    use_ray: bool = False,
    num_replicas: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    ray_address: str | None = None,
) -> BatchSummary:
    """Rerank the ``items`` not yet in ``out`` and write ``out/run.trec``. With ``use_ray`` the work
    runs on Ray Data: ``map_batches`` over an actor pool of ``num_replicas`` workers, each holding
    one ranker (``num_gpus`` per worker on a GPU cluster)."""
    if batch_size < 1 or num_replicas < 1:
        raise ValueError(f"batch_size and num_replicas must be >= 1, got {batch_size}, {num_replicas}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = done_qids(out)
    pending = [it for it in items if it.qid not in done]
    logger.info(
        "%d of %d queries already in %s; reranking %d",
        len(items) - len(pending),
        len(items),
        out,
        len(pending),
    )
    began = time.perf_counter()
    done: Done = []
    if pending and use_ray:
        done = _run_ray(pending, spec, out, batch_size, num_replicas, num_cpus, num_gpus, ray_address)
    elif pending:
        done = _run_local(pending, spec, out, batch_size)
    return BatchSummary(
        total=len(items),
        skipped=len(items) - len(pending),
        computed=[qid for qid, _ in done],
        workers=len({worker for _, worker in done}),
        seconds=time.perf_counter() - began,
        run_path=write_run(out, items),
    )
