"""One engine loop per backend: every ranker that shares a backend submits its windows on the same
event loop, so the backend's batcher, replica pool and clients live on one loop only."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    """A private event loop in a daemon thread; sync callers, other threads and other event loops
    all hand their coroutines to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reasonrank-engine", daemon=True)
        self.thread.start()
        self.users = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            raise RuntimeError("a sync rerank was called from the engine loop itself; await arerank instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        if asyncio.get_running_loop() is self.loop:
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # the caller gave up: stop the windows on the engine loop too
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


_loops: dict[int, tuple[object, EngineLoop]] = {}
_lock = threading.Lock()


def acquire(backend: object) -> EngineLoop:
    """The engine loop of ``backend``, started on first use; pair every call with :func:`release`."""
    with _lock:
        entry = _loops.get(id(backend))
        if entry is None or entry[0] is not backend:
            entry = (backend, EngineLoop())
            _loops[id(backend)] = entry
        entry[1].users += 1
        return entry[1]


def release(backend: object) -> None:
    """Drop one user of ``backend``'s loop; the last one stops it."""
    with _lock:
        entry = _loops.get(id(backend))
        if entry is None or entry[0] is not backend:
            return
        loop = entry[1]
        loop.users -= 1
        if loop.users > 0:
            return
        del _loops[id(backend)]
    loop.stop()
