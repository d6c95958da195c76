"""Micro-batching: concurrent ``generate`` calls are gathered and run as one batch in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .base import Generation, GenerationRequest

RunBatch = Callable[[list[GenerationRequest]], list[Generation]]


class MicroBatcher:
    """Queues requests; whenever the worker is free it takes up to ``max_batch`` waiting requests of
    the same kind (so a short forced answer never shares a batch with long reasoning)."""

    def __init__(self, run_batch: RunBatch, max_batch: int, thread_name: str = "batcher") -> None:
        if max_batch < 1:
            raise ValueError(f"batch size must be >= 1, got {max_batch}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []  # one entry per batch run, for inspection
        self._pending: list[tuple[GenerationRequest, asyncio.Future[Generation]]] = []
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    async def submit(self, request: GenerationRequest) -> Generation:
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[GenerationRequest, asyncio.Future[Generation]]]:
        forced = bool(self._pending[0][0].prefix)
        chosen = [i for i, item in enumerate(self._pending) if bool(item[0].prefix) == forced][: self.max_batch]
        batch = [self._pending[i] for i in chosen]
        self._pending = [item for i, item in enumerate(self._pending) if i not in set(chosen)]
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let callers scheduled in the same tick join the first batch
        while self._pending:
            batch = self._take()
            self.batch_sizes.append(len(batch))
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [r for r, _ in batch])
            except Exception as exc:  # the whole batch failed: every caller sees the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
