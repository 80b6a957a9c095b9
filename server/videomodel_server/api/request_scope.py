"""The lifetime of one admitted request: its deadline, its admission slot and a watch on its client.

A route opens a :class:`RequestScope` (``async with``) and does its work through it:

- :meth:`RequestScope.admit` takes an admission slot (docs/security.md#admission-before-work): before the body is read;
- :meth:`RequestScope.read_body` reads the body with a byte cap and the deadline;
- :meth:`RequestScope.run` runs a stage under the deadline while a watcher listens for the client
  going away, and cancels the stage (fetch, decode, or the engine request, which vLLM then
  aborts) if it does;
- :meth:`RequestScope.stream` hands the slot to a streaming response, which keeps it until its
  last byte; otherwise leaving the ``async with`` releases it.

When the server stops (SIGTERM) and its grace period runs out while the request still holds its
slot, the admission stops it: the stage under way ends as if its deadline had passed, but with
:class:`~videomodel_server.errors.Unavailable` (``shutdown``, 503 + Retry-After), so a stream ends
with an error event and ``[DONE]`` rather than a cut connection.

Leaving the scope also accounts for how the request ended (error code, cancellation) in the
metrics and the log, so a route does not repeat that bookkeeping. Nothing here is specific to
chat: any endpoint that admits work can use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from types import TracebackType
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..admission import STOPPED_AT_SHUTDOWN, Admission
from ..errors import DeadlineExceeded, PayloadTooLarge, ServerError, Unavailable
from ..metrics import Metrics
from ..tracing import Trace

log = logging.getLogger(__name__)
T = TypeVar("T")

CLIENT_CLOSED = 499
"""Logged and counted (never sent: nobody is listening) when the client went away."""


class ClientDisconnected(Exception):
    """The client went away while its request was running; the work was cancelled."""


class RequestScope:
    """One request's deadline, admission slot and disconnect watch; see the module docstring.

    ``name`` is the log message of the request's outcome (``"chat completion"``).
    """

    def __init__(self, request: Request, trace: Trace, metrics: Metrics, timeout: float, name: str) -> None:
        self.request = request
        self.trace = trace
        self.metrics = metrics
        self.name = name
        self.deadline = asyncio.get_running_loop().time() + timeout
        """Event-loop time by which the request must have finished, streaming included."""
        self._resources = AsyncExitStack()
        self._handed_off = False
        self._timeouts: set[asyncio.Timeout] = set()
        self._stopped_retry_after: int | None = None
        """Set when the server stopped this request at the end of its shutdown grace period."""

    async def __aenter__(self) -> RequestScope:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if isinstance(exc, ClientDisconnected):
                self.cancelled()
            elif isinstance(exc, ServerError):
                self.failed(exc)
        finally:
            if not self._handed_off:
                await self._resources.aclose()

    async def admit(self, admission: Admission) -> None:
        """Hold an admission slot until the scope (or the stream it hands off to) ends."""
        try:
            ticket = await self._resources.enter_async_context(admission.slot())
        except Unavailable as exc:
            self.metrics.admission_rejections.labels(exc.code).inc()
            raise
        self.trace.add("queue", ticket.queued_seconds)
        self._resources.callback(admission.on_abort(lambda: self._stop(admission.retry_after)))

    def _stop(self, retry_after: int) -> None:
        """The server is stopping: end the stage under way now (its deadline, moved to now)."""
        self._stopped_retry_after = retry_after
        self.trace.stopped_at_shutdown = True
        now = asyncio.get_running_loop().time()
        for timeout in self._timeouts:
            timeout.reschedule(now)

    @asynccontextmanager
    async def _deadline(self) -> AsyncIterator[asyncio.Timeout]:
        """``asyncio.timeout_at(deadline)`` that :meth:`_stop` can bring forward; past it, TimeoutError."""
        async with asyncio.timeout_at(self.deadline) as timeout:
            if self._stopped_retry_after is not None:
                timeout.reschedule(asyncio.get_running_loop().time())
            self._timeouts.add(timeout)
            try:
                yield timeout
            finally:
                self._timeouts.discard(timeout)

    def _stopped(self) -> Unavailable | None:
        if self._stopped_retry_after is None:
            return None
        return Unavailable(
            f"the server is shutting down and stopped this request at the end of its grace period "
            f"(stage: {self.trace.stage}); send it again",
            code=STOPPED_AT_SHUTDOWN,
            retry_after=self._stopped_retry_after,
        )

    async def read_body(self, limit: int) -> bytearray:
        """The request body, refused with a 413 past ``limit`` bytes (declared or as it arrives)."""
        self.trace.stage = "body"
        declared = self.request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body is {int(declared)} bytes; this server accepts at most {limit}")
        body = bytearray()
        try:
            async with self._deadline():
                async for part in self.request.stream():
                    if len(body) + len(part) > limit:
                        raise PayloadTooLarge(f"request body is over {limit} bytes, the most this server accepts")
                    body += part
        except TimeoutError:
            raise self._stopped() or DeadlineExceeded("the request body did not arrive before the deadline") from None
        return body

    @asynccontextmanager
    async def within_deadline(self) -> AsyncIterator[None]:
        """The block under the request's deadline; past it, :class:`DeadlineExceeded` naming the stage."""
        try:
            async with self._deadline() as timeout:
                self.trace.deadline = timeout
                yield
        except TimeoutError:
            raise self._stopped() or DeadlineExceeded(
                f"the request did not finish within its deadline (stage: {self.trace.stage})"
            ) from None

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` under the deadline; cancel it and raise :class:`ClientDisconnected` if the client goes."""

        async def bounded() -> T:
            async with self.within_deadline():
                return await work

        task = asyncio.ensure_future(bounded())
        watcher = asyncio.ensure_future(_disconnected(self.request.receive))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, watcher):
                if not pending.done():
                    pending.cancel()
                    with suppress(BaseException):
                        await pending
        if task.cancelled():
            raise ClientDisconnected()
        return task.result()

    def stream(self, content: AsyncIterator[bytes], **kwargs: Any) -> StreamingResponse:
        """A streaming response that takes over this scope's slot and releases it however it ends."""
        self._handed_off = True
        return ManagedStream(content, cleanup=self._resources.pop_all().aclose, **kwargs)

    # -- how the request ended: metrics and one log line --------------------------------------------

    def finished(self, **fields: Any) -> None:
        self.metrics.observe_stages(self.trace.timings)
        self.log_outcome(200, **fields)

    def failed(self, err: ServerError) -> None:
        self.metrics.errors.labels(err.code).inc()
        self.log_outcome(err.status, code=err.code)

    def cancelled(self) -> None:
        reason = self.trace.abort_reason
        self.metrics.cancelled.labels(self.trace.stage, reason).inc()
        self.log_outcome(CLIENT_CLOSED, code=reason)

    def log_outcome(self, status: int, **fields: Any) -> None:
        trace = self.trace
        log.info(
            self.name,
            extra={
                "request_id": trace.request_id,
                "status": status,
                "stage": trace.stage,
                "timings_ms": {k: round(v * 1000, 1) for k, v in trace.timings.items()},
                **fields,
            },
        )


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ManagedStream(StreamingResponse):
    """A stream that always closes its iterator and releases its resources, however it ends.

    Starlette cancels a stream whose client disconnected, possibly before the iterator ever
    started; closing the iterator here runs its ``finally`` blocks (the engine abort), and
    ``cleanup`` releases the admission slot.
    """

    def __init__(self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[Any]], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._content = content
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._content, "aclose", None)
            try:
                if close is not None:
                    await close()
            finally:
                await self._cleanup()
