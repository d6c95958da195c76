"""Dispatch over several inference servers: least-outstanding-requests routing, health probes, failover.

The pool is generic over the client type: ``connect(url)`` builds a client, ``probe(client)`` checks
that the server is alive, and errors listed in ``retryable`` mean "this replica failed" (the request
then moves to another replica). Any other error is the request's own fault and is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")


class NoHealthyReplica(RuntimeError):
    """No replica answered within ``failover_timeout`` seconds."""


@dataclass
class Replica:
    """One server and what the pool knows about it."""

    url: str
    healthy: bool = True
    outstanding: int = 0  # requests routed here and not finished (waiting for a slot included)
    assigned: int = 0  # requests routed here so far
    served: int = 0  # requests that succeeded here
    failures: int = 0  # requests that failed here with a replica-level error
    last_error: str | None = None
    checked: float = float("-inf")  # time.monotonic() of the last health probe


class ReplicaPool(Generic[C]):
    """Routes each call to the healthy replica with the fewest outstanding requests (ties go to the
    one used least), at most ``max_concurrency`` at a time per replica.

    A call that fails with a ``retryable`` error marks its replica unhealthy and moves to another
    healthy replica. Unhealthy replicas are probed again every ``probe_interval`` seconds and
    rejoin when a probe succeeds. When no replica is healthy, calls wait for one to come back for
    up to ``failover_timeout`` seconds, then raise :class:`NoHealthyReplica`. The first call probes
    every replica once, so windows are not sent to a server that is down from the start.
    """

    def __init__(
        self,
        urls: Sequence[str],
        connect: Callable[[str], C],
        probe: Callable[[C], Awaitable[bool]],
        *,
        retryable: tuple[type[BaseException], ...],
        max_concurrency: int = 16,
        probe_interval: float = 3.0,
        failover_timeout: float = 120.0,
    ) -> None:
        if not urls:
            raise ValueError("give at least one server URL")
        if len(set(urls)) != len(urls):
            raise ValueError(f"server URLs must be distinct, got {list(urls)}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.replicas = [Replica(url) for url in urls]
        self.connect = connect
        self.probe = probe
        self.retryable = retryable
        self.max_concurrency = max_concurrency
        self.probe_interval = probe_interval
        self.failover_timeout = failover_timeout
        self.max_attempts = 2 * len(urls) + 1  # per call: bounds failovers for a request that kills servers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: list[C] = []
        self._slots: list[asyncio.Semaphore] = []
        self._probes: dict[int, asyncio.Task[None]] = {}
        self._first_check: asyncio.Task[None] | None = None

    # -- public -----------------------------------------------------------------------------
    async def run(self, call: Callable[[C], Awaitable[T]]) -> T:
        """Run ``call(client)`` on a replica chosen by least outstanding requests, failing over."""
        self._bind()
        if self._first_check is None:
            self._first_check = asyncio.ensure_future(self._check_all())
        await asyncio.shield(self._first_check)
        error: BaseException | None = None
        for _ in range(self.max_attempts):
            i = await self._pick(error)
            replica = self.replicas[i]
            replica.outstanding += 1
            replica.assigned += 1
            try:
                async with self._slots[i]:
                    if not replica.healthy:  # it died while this call waited for a slot
                        continue
                    result = await call(self._clients[i])
            except self.retryable as exc:
                error = exc
                self._mark_down(replica, exc)
                continue
            finally:
                replica.outstanding -= 1
            replica.served += 1
            return result
        raise NoHealthyReplica(f"gave up after {self.max_attempts} attempts: {error!r}") from error

    def status(self) -> list[dict[str, Any]]:
        """Per-replica health and counters, for logs and metrics."""
        return [vars(r).copy() for r in self.replicas]

    def close(self, aclose: Callable[[C], Awaitable[None]]) -> None:
        """Close the clients with ``aclose`` on their event loop when that loop can still run."""
        loop, clients = self._loop, self._clients
        self._loop, self._clients, self._slots, self._probes, self._first_check = None, [], [], {}, None
        if loop is None or loop.is_closed() or not clients:
            return  # the loop is gone: the connections go with it
        async def closing() -> None:  # gathered on the clients' own loop
            await asyncio.gather(*(aclose(c) for c in clients), return_exceptions=True)

        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(closing(), loop).result(timeout=10)
            else:
                loop.run_until_complete(closing())
        except Exception as exc:  # noqa: BLE001 - closing is best effort: a dead loop must not break close()
            logger.debug("closing clients failed: %r", exc)

    # -- internals --------------------------------------------------------------------------
    def _bind(self) -> None:
        """Clients and semaphores belong to one event loop; a new loop gets fresh ones."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        self._clients = [self.connect(r.url) for r in self.replicas]
        self._slots = [asyncio.Semaphore(self.max_concurrency) for _ in self.replicas]
        self._probes = {}
        self._first_check = None

    async def _check_all(self) -> None:
        await asyncio.gather(*(self._probe(i) for i in range(len(self.replicas))))
        down = [r.url for r in self.replicas if not r.healthy]
        if down:
            logger.warning("replicas not answering at start: %s", ", ".join(down))

    async def _pick(self, error: BaseException | None) -> int:
        deadline = time.monotonic() + self.failover_timeout  # the wait starts now, not with the call
        while True:
            self._reprobe()
            healthy = [i for i, r in enumerate(self.replicas) if r.healthy]
            if healthy:
                return min(healthy, key=lambda i: (self.replicas[i].outstanding, self.replicas[i].assigned))
            left = deadline - time.monotonic()
            if left <= 0:
                urls = ", ".join(r.url for r in self.replicas)
                raise NoHealthyReplica(
                    f"no healthy replica among {urls} for {self.failover_timeout:g} s"
                ) from error
            await asyncio.sleep(min(0.1, left))

    def _reprobe(self) -> None:
        now = time.monotonic()
        for i, replica in enumerate(self.replicas):
            due = now - replica.checked >= self.probe_interval
            if not replica.healthy and due and (i not in self._probes or self._probes[i].done()):
                self._probes[i] = asyncio.ensure_future(self._probe(i))

    async def _probe(self, i: int) -> None:
        replica = self.replicas[i]
        try:
            alive = await self.probe(self._clients[i])
        except Exception as exc:  # noqa: BLE001 - any probe failure means not alive
            alive, replica.last_error = False, repr(exc)
        replica.checked = time.monotonic()
        if alive and not replica.healthy:
            logger.info("replica %s is healthy again", replica.url)
        elif not alive and replica.healthy:
            logger.warning("replica %s failed its health check: marked unhealthy", replica.url)
        replica.healthy = alive

    def _mark_down(self, replica: Replica, exc: BaseException) -> None:
        replica.failures += 1
        replica.last_error = repr(exc)
        if replica.healthy:
            logger.warning("replica %s failed (%r): marked unhealthy, failing over", replica.url, exc)
        replica.healthy = False
        replica.checked = time.monotonic()

