"""``POST /v1/chat/completions``: admit, read, parse, prepare, respond.

Order matters (docs/security.md#requests): the admission slot is taken before the body is read; the
body is read with a byte cap and a deadline; only then parsed and checked (:mod:`.translation`,
text bounded by length before anything tokenizes it), then prepared (:mod:`.service`: prompt
rendered and counted, media loaded) and run. The deadline, the disconnect watch that cancels
whatever is running, and the slot's lifetime (a stream keeps it until its last byte) belong to
the :class:`~videomodel_server.api.request_scope.RequestScope`; this module only says what
happens in which order and how the result is shaped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ...errors import InvalidRequest, NotReady, OverBudget, ServerError
from ...jobs import ChatJob, RequestLimits
from ...tracing import Trace
from ..auth import require_api_key
from ..errors import error_body, from_pydantic
from ..request_scope import CLIENT_CLOSED, ClientDisconnected, RequestScope
from ..state import AppState, app_state
from . import translation
from .protocol import ChatCompletionRequest, EstimateResponse, ServerReport
from .responses import (
    SSE_DONE,
    Accumulator,
    chunk,
    delta_choice,
    estimate_response,
    refused_estimate,
    report,
    role_choices,
    sse,
)
from .service import PreparedChat

router = APIRouter()


def _request_body(path: str) -> dict[str, Any]:
    """The request body schema of a POST route, its ``$defs`` kept inline.

    The references must point where the definitions end up in the OpenAPI document: pydantic's
    default ``#/$defs/...`` resolves against the document root, where there are none, and
    schema-driven clients and fuzzers then see no body at all.
    """
    pointer = "/post/requestBody/content/application~1json/schema/$defs/{model}"
    where = "#/paths/" + path.replace("~", "~0").replace("/", "~1") + pointer
    schema = ChatCompletionRequest.model_json_schema(ref_template=where)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_PARSE_OFF_LOOP_BYTES = 1024**2
"""A body full of data URLs can take a while to validate: parsed off the event loop past this."""


Handler = Callable[[Request], Awaitable[Response]]
Admitted = Callable[[AppState, RequestScope, bytearray], Awaitable[Response]]
"""What a route does once :func:`_admitted` has admitted the request and read its body."""


def _post(path: str, **route: Any) -> Callable[[Handler], Handler]:
    """A POST route of a chat completion body: the API key required, the body's schema published."""
    return router.post(path, dependencies=[Depends(require_api_key)], openapi_extra=_request_body(path), **route)


async def _admitted(request: Request, name: str, handle: Admitted) -> Response:
    """The prelude both routes share, then ``handle``: a :class:`RequestScope` (its log message
    ``name``), refused while the engine is not ready, an admission slot, the body read within its
    cap and the deadline. A client gone away ends it with nothing sent (logged as 499)."""
    state = app_state(request)
    trace = Trace(request_id=request.state.request_id)
    timeout = state.settings.admission.request_timeout
    try:
        async with RequestScope(request, trace, state.metrics, timeout, name) as scope:
            if not state.engine.ready:
                raise NotReady("the model is not ready to serve", retry_after=5)
            await scope.admit(state.admission)
            body = await scope.read_body(state.settings.body_limit())
            return await handle(state, scope, body)
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED)


@_post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> Response:
    return await _admitted(request, "chat completion", _chat)


async def _chat(state: AppState, scope: RequestScope, body: bytearray) -> Response:
    job = await parse(body, state.limits)
    prepared = await scope.run(state.service.prepare(job, scope.trace))
    return await _respond(state, scope, prepared)


@_post("/v1/videomodel/estimate", response_model=EstimateResponse)
async def estimate(request: Request) -> Response:
    """A dry run of a chat completion (same body): fetch and probe the media, plan the sampling and
    price it; decode nothing and run no generation. Admission applies (it fetches and probes)."""
    return await _admitted(request, "estimate", _estimate)


async def _estimate(state: AppState, scope: RequestScope, body: bytearray) -> Response:
    trace = scope.trace
    try:
        job = await parse(body, state.limits)
    except OverBudget as refusal:
        # Past a budget limit before any media is looked at: an answer ("does not fit"), not
        # an error. Malformed requests are refused as by the chat route.
        answer = refused_estimate(trace, state.settings.model_name, refusal, state.plan)
    else:
        estimated = await scope.run(state.service.estimate(job, trace))
        trace.timings["total"] = trace.elapsed()
        name, geometry = state.settings.model_name, state.model.geometry
        answer = estimate_response(trace, estimated, name, geometry, state.plan)
    scope.finished(fits=answer.fits)
    return JSONResponse(answer.model_dump(exclude_none=True), headers={"x-request-id": trace.request_id})


async def parse(body: bytes | bytearray, limits: RequestLimits) -> ChatJob:
    """The body as a checked :class:`ChatJob` (400 for bad JSON, bad fields or requests past the limits)."""
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON chat completion request")
    try:
        if len(body) > _PARSE_OFF_LOOP_BYTES:
            request = await asyncio.to_thread(ChatCompletionRequest.model_validate_json, body)
        else:
            request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_pydantic(exc) from None
    return translation.build(request, limits)


class _Completion:
    """The identity of one completion as every response object repeats it."""

    def __init__(self, trace: Trace, model: str) -> None:
        self.id = f"chatcmpl-{trace.request_id}"
        self.created = int(time.time())
        self.model = model


async def _respond(state: AppState, scope: RequestScope, prepared: PreparedChat) -> Response:
    headers = {"x-request-id": scope.trace.request_id}
    if prepared.clamped:
        state.metrics.clamps.inc()
        headers["x-videomodel-clamped"] = ", ".join(prepared.clamped)
    completion = _Completion(scope.trace, state.settings.model_name)
    if prepared.job.stream:
        stream = _stream(state, scope, prepared, completion)
        return scope.stream(stream, media_type="text/event-stream", headers=headers)
    response = await scope.run(_complete(state, scope, prepared, completion))
    return JSONResponse(response, headers=headers)


def _report(state: AppState, trace: Trace, prepared: PreparedChat, acc: Accumulator) -> ServerReport:
    return report(trace, prepared, state.model.geometry, acc.prompt_tokens or None)


async def _complete(
    state: AppState, scope: RequestScope, prepared: PreparedChat, completion: _Completion
) -> dict[str, Any]:
    trace = scope.trace
    acc = Accumulator(n=prepared.job.sampling.n)
    async with aclosing(state.service.steps(prepared, trace)) as steps:
        async for step in steps:
            acc.add(step)
    trace.timings["total"] = trace.elapsed()
    _finished(state, scope, acc)
    body = acc.response(completion.id, completion.created, completion.model, _report(state, trace, prepared, acc))
    return body.model_dump(exclude_none=True)


async def _stream(
    state: AppState, scope: RequestScope, prepared: PreparedChat, completion: _Completion
) -> AsyncIterator[bytes]:
    """The SSE stream; an error after the first byte becomes an error event (the status is sent).

    The sampling receipt (``videomodel``) rides on the final chunk: the usage chunk when the
    client asked for usage, else the chunk that finishes the last choice.
    """
    trace = scope.trace
    n = prepared.job.sampling.n
    include_usage = prepared.job.include_usage
    acc = Accumulator(n=n)
    ended = False

    def event(choices: list[Any], **extra: Any) -> bytes:
        return sse(chunk(completion.id, completion.created, completion.model, choices, **extra))

    try:
        async with scope.within_deadline():
            yield event(role_choices(n))
            async with aclosing(state.service.steps(prepared, trace)) as steps:
                async for step in steps:
                    acc.add(step)
                    choices = [delta_choice(d) for d in step.choices if d.text or d.finish_reason or d.logprobs]
                    if not choices:
                        continue
                    if not include_usage and acc.all_finished:
                        trace.timings["total"] = trace.elapsed()
                        yield event(choices, report=_report(state, trace, prepared, acc))
                    else:
                        yield event(choices)
        trace.timings["total"] = trace.elapsed()
        if include_usage:
            yield event([], usage=acc.usage(), report=_report(state, trace, prepared, acc))
        ended = True
        _finished(state, scope, acc)
    except ServerError as exc:
        ended = True
        scope.failed(exc)
        yield sse(json.dumps(error_body(exc)))
    finally:
        if not ended:
            # Closed by the client (or the server stopping) before the end.
            scope.cancelled()
    yield SSE_DONE


def _finished(state: AppState, scope: RequestScope, acc: Accumulator) -> None:
    state.metrics.prompt_tokens.inc(acc.prompt_tokens)
    state.metrics.completion_tokens.inc(acc.completion_tokens)
    scope.finished(prompt_tokens=acc.prompt_tokens, completion_tokens=acc.completion_tokens)
