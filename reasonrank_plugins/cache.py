"""The exact-result caches of a ranker. Decoding is greedy, so a rerank is a function of the model,
the engine configuration, the query and the passages: :func:`result_key` hashes these.
:class:`ResultCache` keeps the last ``size`` results in process and the computations in flight, so
that concurrent identical requests compute once; :class:`DiskCache` keeps results in a directory
across runs. A ranker with both asks the LRU first, then the disk, then the model."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .engine import EngineConfig, Job
from .parse import ParseStatus
from .types import Passage, RerankResult

Compute = Callable[[list[Job]], Awaitable[list[RerankResult]]]


def result_key(model: Any, config: EngineConfig, query: str, passages: Sequence[Passage]) -> str:
    """A hash of what a greedy rerank depends on: ``model`` (any JSON-able identity of the model
    and backend), every engine option, the query and each passage's text and title (not its id
    or metadata, which the model never sees)."""
    payload = {
        "model": model,
        "config": dataclasses.asdict(config),
        "query": query,
        "passages": [[p.text, p.title] for p in passages],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def cacheable(result: RerankResult) -> bool:
    """Only complete results are stored: not one cut by a deadline or holding a failed call."""
    return not result.timed_out and not any(
        w.status in (ParseStatus.ERROR, ParseStatus.TIMEOUT) for w in result.windows
    )


class ResultCache:
    """An LRU of ``size`` complete results plus the computations in flight. It lives on one event
    loop (its ranker's engine loop), so it needs no lock. A call that finds its key stored, or
    being computed by another call, gets that result with ``cached=True``; a computation goes on
    when the call that started it is cancelled, and its result is stored."""

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"cache size must be an int >= 1, got {size!r}")
        self.size = size
        self._done: OrderedDict[str, RerankResult] = OrderedDict()
        self._running: dict[str, tuple[asyncio.Future[list[RerankResult]], int]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._done)

    async def rank(self, jobs: Sequence[Job], keys: Sequence[str], compute: Compute) -> list[RerankResult]:
        """The results of ``jobs`` (one ``keys`` entry each): stored, joined or computed by one
        call of ``compute`` on the jobs that are neither."""
        stored = {key: self._done[key] for key in keys if key in self._done}
        for key in stored:
            self._done.move_to_end(key)
        fresh: dict[str, int] = {}  # key -> its job's position in this call's computation
        todo: list[Job] = []
        for job, key in zip(jobs, keys):
            if key not in stored and key not in self._running and key not in fresh:
                fresh[key] = len(todo)
                todo.append(job)
        if todo:
            task = asyncio.ensure_future(compute(todo))
            for key, n in fresh.items():
                self._running[key] = (task, n)
            task.add_done_callback(lambda t: self._finish(t, list(fresh)))
        plan = [stored.get(key) or self._running[key] for key in keys]  # before anything is awaited
        owned = set()
        results = []
        for job, key, entry in zip(jobs, keys, plan):
            if isinstance(entry, RerankResult):
                self.hits += 1
                results.append(_hit(entry, job))
                continue
            future, n = entry
            result = (await asyncio.shield(future))[n]
            if key in fresh and key not in owned:  # this call computed it
                owned.add(key)
                self.misses += 1
                results.append(result)
            else:
                self.hits += 1
                results.append(_hit(result, job))
        return results

    def _finish(self, task: asyncio.Future[list[RerankResult]], keys: list[str]) -> None:
        for key in keys:
            self._running.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        for key, result in zip(keys, task.result()):
            if cacheable(result):
                self._done[key] = result
                self._done.move_to_end(key)
        while len(self._done) > self.size:
            self._done.popitem(last=False)


def check_cache_dir(directory: str | os.PathLike[str]) -> str:
    """``directory`` as a string, or a ``ValueError`` when it cannot be a cache directory."""
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ValueError(f"cache_dir must be a directory path, got {directory!r}")
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cache_dir must be a directory, {str(path)!r} is a file")
    return os.fspath(directory)


class DiskCache:
    """Complete results kept in ``directory`` across runs, with ``diskcache`` (SQLite; processes
    may share one directory, such as Ray workers): a call whose key is stored gets that result with
    ``cached=True`` and no model call. A key is a call's :func:`result_key` under this package's version (a
    new version may prompt differently), values the pickled results without their passages (a hit
    gets its own call's). Only point it at a directory you trust: reading unpickles."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        from . import __version__

        directory = check_cache_dir(directory)
        try:
            import diskcache
        except ImportError as exc:
            raise ImportError("cache_dir needs diskcache: pip install 'reasonrank-plugins[cache]'") from exc
        try:
            self._cache = diskcache.Cache(directory)
        except OSError as exc:
            raise ValueError(f"cache_dir {directory!r} cannot be opened: {exc}") from exc
        self.directory = directory
        self._prefix = f"{__version__}:"
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    async def rank(self, jobs: Sequence[Job], keys: Sequence[str], compute: Compute) -> list[RerankResult]:
        """The results of ``jobs`` (one ``keys`` entry each): stored ones from the directory, the
        others from one call of ``compute``, stored when complete."""
        stored = await asyncio.to_thread(lambda: [self._cache.get(self._prefix + key) for key in keys])
        results = [None if entry is None else _hit(entry, job) for entry, job in zip(stored, jobs)]
        todo = [n for n, result in enumerate(results) if result is None]
        self.hits += len(jobs) - len(todo)
        self.misses += len(todo)
        if todo:
            computed = await compute([jobs[n] for n in todo])
            for n, result in zip(todo, computed):
                results[n] = result
            fresh = {keys[n]: _bare(result) for n, result in zip(todo, computed) if cacheable(result)}
            await asyncio.to_thread(lambda: [self._cache.set(self._prefix + k, v) for k, v in fresh.items()])
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._cache.close()


def _bare(result: RerankResult) -> RerankResult:
    """What :class:`DiskCache` stores: the result without its call's query, passages and ``top_k``."""
    return dataclasses.replace(result, query="", passages=[], top_k=None)


def _hit(stored: RerankResult, job: Job) -> RerankResult:
    """``stored`` for this call: its passages (ids and metadata included), its ``top_k``."""
    return dataclasses.replace(stored, query=job.query, passages=job.passages, top_k=job.top_k, cached=True)
