"""``POST /v1/chat/completions``: a thin route over admission, the conversation checks and the service.

Order matters (SECURITY.md 8, 4, 11): the admission slot is taken before the body is read; the
body is read with a byte cap and a deadline; only then parsed, checked, rendered; media is
loaded and the engine run while a watcher listens for the client going away, which cancels
whatever is running (fetch, decode, or the engine request, which vLLM then aborts). A stream
keeps its slot until its last byte.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, aclosing, suppress
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from .. import conversation
from ..errors import DeadlineExceeded, InvalidRequest, PayloadTooLarge, ServerError, Unavailable
from ..metrics import ABORT_CLIENT_DISCONNECT, ABORT_DEADLINE
from ..responses import SSE_DONE, Accumulator, chunk, delta_choice, role_choices, sse
from ..serving import PreparedChat, Trace, report
from .auth import require_api_key
from .errors import error_body, from_pydantic
from .protocol import ChatCompletionRequest
from .state import AppState, app_state

log = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")

CLIENT_CLOSED = 499
"""Logged and counted (never sent: nobody is listening) when the client went away."""


class ClientDisconnected(Exception):
    pass


@router.post(
    "/v1/chat/completions",
    dependencies=[Depends(require_api_key)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
        }
    },
    response_model=None,
)
async def chat_completions(request: Request) -> Response:
    state = app_state(request)
    trace = Trace(request_id=request.state.request_id)
    deadline = asyncio.get_running_loop().time() + state.settings.admission.request_timeout
    stack = AsyncExitStack()
    handed_off = False
    try:
        if not state.engine.ready:
            raise Unavailable("the model is not ready to serve", code="not_ready", retry_after=5)
        try:
            ticket = await stack.enter_async_context(state.admission.slot())
        except Unavailable as exc:
            state.metrics.admission_rejections.labels(exc.code).inc()
            raise
        trace.add("queue", ticket.queued_seconds)
        trace.stage = "body"
        body = await _read_body(request, state.settings.body_limit(), deadline)
        job = await _parse(body, state)
        prepared = await _until_disconnect(request, _with_deadline(deadline, trace, state.service.prepare(job, trace)))
        headers = _headers(trace, prepared)
        if prepared.clamped:
            state.metrics.clamps.inc()
        completion_id = f"chatcmpl-{trace.request_id}"
        created = int(time.time())
        model = state.settings.model_name
        if job.stream:
            stream = _stream(state, prepared, trace, completion_id, created, model, deadline)
            handed_off = True
            return ManagedStream(stream, cleanup=stack.aclose, media_type="text/event-stream", headers=headers)
        response = await _until_disconnect(
            request, _with_deadline(deadline, trace, _complete(state, prepared, trace, completion_id, created, model))
        )
        return JSONResponse(response, headers=headers)
    except ClientDisconnected:
        _cancelled(state, trace, ABORT_CLIENT_DISCONNECT)
        return Response(status_code=CLIENT_CLOSED)
    except ServerError as exc:
        state.metrics.errors.labels(exc.code).inc()
        _log_done(trace, exc.status, code=exc.code)
        raise
    finally:
        if not handed_off:
            await stack.aclose()


async def _read_body(request: Request, limit: int, deadline: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; this server accepts at most {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise PayloadTooLarge(f"request body is over {limit} bytes, the most this server accepts")
                chunks.append(part)
    except TimeoutError:
        raise DeadlineExceeded("the request body did not arrive before the deadline") from None
    return b"".join(chunks)


async def _parse(body: bytes, state: AppState) -> conversation.ChatJob:
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON chat completion request")
    try:
        # A body full of data URLs can take a while to validate: off the event loop when large.
        if len(body) > 1024**2:
            request = await asyncio.to_thread(ChatCompletionRequest.model_validate_json, body)
        else:
            request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_pydantic(exc) from None
    return conversation.build(request, state.limits)


async def _with_deadline(deadline: float, trace: Trace, work: Awaitable[T]) -> T:
    try:
        async with asyncio.timeout_at(deadline) as timeout:
            trace.deadline = timeout
            return await work
    except TimeoutError:
        raise DeadlineExceeded(f"the request did not finish within its deadline (stage: {trace.stage})") from None


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _until_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; cancel it (fetch, decode, engine) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with suppress(BaseException):
                await task
        watcher.cancel()
        with suppress(BaseException):
            await watcher
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()


async def _complete(
    state: AppState, prepared: PreparedChat, trace: Trace, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    acc = Accumulator(n=prepared.job.sampling.n)
    async with aclosing(state.service.steps(prepared, trace)) as steps:
        async for step in steps:
            acc.add(step)
    trace.timings["total"] = trace.elapsed()
    _finished(state, trace, acc)
    return acc.response(completion_id, created, model, report(trace, prepared)).model_dump(exclude_none=True)


async def _stream(
    state: AppState,
    prepared: PreparedChat,
    trace: Trace,
    completion_id: str,
    created: int,
    model: str,
    deadline: float,
) -> AsyncIterator[bytes]:
    n = prepared.job.sampling.n
    acc = Accumulator(n=n)
    ended = False
    try:
        async with asyncio.timeout_at(deadline) as timeout:
            trace.deadline = timeout
            yield sse(chunk(completion_id, created, model, role_choices(n)))
            async with aclosing(state.service.steps(prepared, trace)) as steps:
                async for step in steps:
                    acc.add(step)
                    choices = [delta_choice(d) for d in step.choices if d.text or d.finish_reason or d.logprobs]
                    if choices:
                        yield sse(chunk(completion_id, created, model, choices))
        trace.timings["total"] = trace.elapsed()
        if prepared.job.include_usage:
            yield sse(chunk(completion_id, created, model, [], usage=acc.usage(), report=report(trace, prepared)))
        ended = True
        _finished(state, trace, acc)
    except TimeoutError:
        ended = True
        err: ServerError = DeadlineExceeded("the request did not finish within its deadline (stage: engine)")
        state.metrics.errors.labels(err.code).inc()
        _log_done(trace, err.status, code=err.code)
        yield sse(json.dumps(error_body(err)))
    except ServerError as exc:
        ended = True
        state.metrics.errors.labels(exc.code).inc()
        _log_done(trace, exc.status, code=exc.code)
        yield sse(json.dumps(error_body(exc)))
    finally:
        if not ended:
            # Closed by the client (or the server stopping) before the end.
            _cancelled(state, trace, ABORT_CLIENT_DISCONNECT)
    yield SSE_DONE


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


def _headers(trace: Trace, prepared: PreparedChat) -> dict[str, str]:
    headers = {"x-request-id": trace.request_id}
    if prepared.clamped:
        headers["x-videomodel-clamped"] = ", ".join(prepared.clamped)
    return headers


def _finished(state: AppState, trace: Trace, acc: Accumulator) -> None:
    state.metrics.observe_stages(trace.timings)
    state.metrics.prompt_tokens.inc(acc.prompt_tokens)
    state.metrics.completion_tokens.inc(acc.completion_tokens)
    _log_done(trace, 200, prompt_tokens=acc.prompt_tokens, completion_tokens=acc.completion_tokens)


def _cancelled(state: AppState, trace: Trace, reason: str) -> None:
    if trace.deadline is not None and trace.deadline.expired():
        reason = ABORT_DEADLINE
    state.metrics.cancelled.labels(trace.stage, reason).inc()
    _log_done(trace, CLIENT_CLOSED, code=reason)


def _log_done(trace: Trace, status: int, **fields: Any) -> None:
    log.info(
        "chat completion",
        extra={
            "request_id": trace.request_id,
            "status": status,
            "stage": trace.stage,
            "timings_ms": {k: round(v * 1000, 1) for k, v in trace.timings.items()},
            **fields,
        },
    )


def new_request_id() -> str:
    return uuid.uuid4().hex
