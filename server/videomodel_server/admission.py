"""Admission control: a bounded number of requests in flight and a bounded queue before them.

Checked first, before a request's body is parsed and before any fetch or decode (SECURITY.md
item 8): a request that finds every slot busy and the queue full is refused at once with
:class:`~videomodel_server.errors.Overloaded` (503 + Retry-After); one that waits longer than
the queue timeout is refused the same way. Draining (SIGTERM) refuses new requests and lets the
admitted ones finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .errors import Overloaded, Unavailable

REJECT_QUEUE_FULL = "queue_full"
REJECT_QUEUE_TIMEOUT = "queue_timeout"
REJECT_DRAINING = "draining"


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

    async def drain(self, timeout: float) -> bool:
        """Stop admitting; wait up to ``timeout`` s for in-flight requests. True if all finished."""
        self._draining = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
