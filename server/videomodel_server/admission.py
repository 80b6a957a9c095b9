"""Admission control: a bounded number of requests in flight and a bounded queue before them.

Checked first, before a request's body is parsed and before any fetch or decode
(docs/security.md#admission-before-work): a request that finds every slot busy and the queue
full is refused at once with :class:`~videomodel_server.errors.Overloaded` (503 + Retry-After);
one that waits longer than the queue timeout is refused the same way.

Shutdown (SIGTERM) is in two steps. :meth:`Admission.stop_admitting` (safe in a signal handler)
refuses every new request with 503 + Retry-After (``draining``) and turns ``/health`` 503; the
admitted requests go on. :meth:`Admission.begin_drain` also arms the grace period: when it runs
out, every request still holding a slot is stopped (:meth:`Admission.on_abort` callbacks), so a
stream ends with an error event and a non-streaming request with a 503, instead of the
connection being cut when the process exits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .errors import Overloaded, Unavailable

REJECT_QUEUE_FULL = "queue_full"
REJECT_QUEUE_TIMEOUT = "queue_timeout"
REJECT_DRAINING = "draining"
STOPPED_AT_SHUTDOWN = "shutdown"
"""The code of a request that was still running when the shutdown grace period ran out."""
ABORT_UNWIND_SECONDS = 2.0
"""How long requests stopped at the end of the grace period get to release their slots."""


@dataclass
class Ticket:
    """A granted slot; ``queued_seconds`` is how long the request waited for it."""

    queued_seconds: float


class Admission:
    def __init__(self, max_in_flight: int, max_queued: int, queue_timeout: float, retry_after: int) -> None:
        if max_in_flight < 1 or max_queued < 0:
            raise ValueError("max_in_flight must be >= 1 and max_queued >= 0")
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.retry_after = retry_after
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._queued = 0
        self._draining = False
        self._aborting = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._on_abort: dict[int, Callable[[], None]] = {}
        self._abort_ids = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def draining(self) -> bool:
        return self._draining

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Ticket]:
        """Hold one in-flight slot for the body of the ``async with``; raise if none can be had."""
        if self._draining:
            raise Unavailable("server is shutting down", code=REJECT_DRAINING, retry_after=self.retry_after)
        start = time.monotonic()
        if self._slots.locked():
            if self._queued >= self.max_queued:
                raise Overloaded(
                    f"server is at capacity: {self._in_flight} requests in flight (limit {self.max_in_flight}) "
                    f"and {self._queued} queued (limit {self.max_queued})",
                    code=REJECT_QUEUE_FULL,
                    retry_after=self.retry_after,
                )
            self._queued += 1
            try:
                async with asyncio.timeout(self.queue_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise Overloaded(
                    f"request waited {self.queue_timeout:g} s for a free slot (the queue timeout)",
                    code=REJECT_QUEUE_TIMEOUT,
                    retry_after=self.retry_after,
                ) from None
            finally:
                self._queued -= 1
            if self._draining:  # shutdown began while it waited: it never started, so refuse it
                self._slots.release()
                raise Unavailable("server is shutting down", code=REJECT_DRAINING, retry_after=self.retry_after)
        else:
            await self._slots.acquire()
        self._in_flight += 1
        self._idle.clear()
        try:
            yield Ticket(queued_seconds=time.monotonic() - start)
        finally:
            self._in_flight -= 1
            self._slots.release()
            if self._in_flight == 0:
                self._idle.set()

    @property
    def aborting(self) -> bool:
        """The grace period ran out: requests still in flight are being stopped."""
        return self._aborting

    def stop_admitting(self) -> None:
        """Refuse every new request from now on (503 ``draining``). Only sets a flag: signal-safe."""
        self._draining = True

    def begin_drain(self, grace: float) -> None:
        """Stop admitting, and stop what is still in flight ``grace`` s from now (idempotent)."""
        self._draining = True
        if self._abort_timer is None and not self._aborting:
            self._abort_timer = asyncio.get_running_loop().call_later(max(0.0, grace), self.abort_in_flight)

    def abort_in_flight(self) -> None:
        """Stop every request holding a slot now (their :meth:`on_abort` callbacks run)."""
        self._draining = True
        self._aborting = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        for callback in list(self._on_abort.values()):
            callback()

    def on_abort(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when in-flight work is stopped (now, if it already was); returns the
        function that unregisters it."""
        if self._aborting:
            asyncio.get_running_loop().call_soon(callback)
            return lambda: None
        self._abort_ids += 1
        key = self._abort_ids
        self._on_abort[key] = callback
        return lambda: self._on_abort.pop(key, None) and None

    async def drain(self, timeout: float) -> bool:
        """Stop admitting; wait up to ``timeout`` s for in-flight requests. True if all finished.

        If some are still running then, they are stopped and get a moment to unwind."""
        self.begin_drain(timeout)
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            self.abort_in_flight()
            try:
                async with asyncio.timeout(ABORT_UNWIND_SECONDS):
                    await self._idle.wait()
            except TimeoutError:
                pass
            return False
        return True
