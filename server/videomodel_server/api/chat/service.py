"""One chat request after admission: render and check the prompt, load media, run the engine.

The stages, in order (docs/architecture.md#flow-of-one-request): the text's length was already
bounded by :mod:`.translation`; the prompt is rendered with the model's chat template and its
tokens checked against ``max_prompt_tokens`` *before* any media is fetched; every media item is
then loaded concurrently (fetch, probe, decode behind the
:class:`~videomodel_server.loading.MediaLoader` seam); the engine gets the rendered prompt and
each video as ``(frames, metadata)``. :class:`~videomodel_server.tracing.Trace` records the
stage the request is in and what each stage took, for the response's report, the metrics and
the logs. No HTTP here: the route and :mod:`.responses` shape what this returns. Cancellation
(a client disconnect, the deadline) propagates into the loader and the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ...engine import Engine, EngineInput, EngineStep, EngineVideo
from ...errors import OverBudget, ServerError
from ...jobs import ChatJob, MediaRef, ToolCall, Tools
from ...loading import LoadedMedia, MediaEstimate, MediaLoader
from ...metrics import Metrics
from ...tracing import Trace

log = logging.getLogger(__name__)
M = TypeVar("M", LoadedMedia, MediaEstimate)


@dataclass(frozen=True)
class PreparedChat:
    job: ChatJob
    engine_input: EngineInput
    media: tuple[LoadedMedia, ...]
    prompt_text_tokens: int

    @property
    def clamped(self) -> tuple[str, ...]:
        return clamp_notes(self.job, self.media)


@dataclass(frozen=True)
class EstimatedChat:
    """A dry run of one request: its media planned, not decoded; what the budget refuses, in words."""

    job: ChatJob
    media: tuple[MediaEstimate, ...]
    prompt_text_tokens: int
    problems: tuple[str, ...]

    @property
    def clamped(self) -> tuple[str, ...]:
        return clamp_notes(self.job, self.media)


def clamp_notes(job: ChatJob, media: Iterable[LoadedMedia | MediaEstimate]) -> tuple[str, ...]:
    """What a response reports in ``videomodel.clamped``: the request's notes (its knobs cut back to
    the budget), then each medium's (what its plan cut back), each note once."""
    notes = list(job.clamped)
    for item in media:
        notes.extend(item.clamped)
    return tuple(dict.fromkeys(notes))


class ChatService:
    """The chat endpoint's work behind its seams (engine, media loader), free of HTTP.

    :meth:`prepare` refuses an over-long prompt before any media is fetched, then loads the media;
    :meth:`steps` runs the engine. Both record their stages on the request's :class:`Trace`.
    """

    def __init__(
        self,
        engine: Engine,
        loader: MediaLoader,
        metrics: Metrics,
        text_token_limit: int,
    ) -> None:
        self.engine = engine
        self.loader = loader
        self.metrics = metrics
        self.text_token_limit = text_token_limit

    async def prepare(self, job: ChatJob, trace: Trace) -> PreparedChat:
        trace.stage = "render"
        start = time.monotonic()
        prompt, total_tokens = await asyncio.to_thread(self._render, job)
        text_tokens = total_tokens - self.engine.media_placeholder_tokens() * len(job.media)
        trace.add("render", time.monotonic() - start)
        if text_tokens > self.text_token_limit:
            raise OverBudget(
                f"the prompt's text is {text_tokens} tokens; this model accepts at most {self.text_token_limit} "
                "(max_prompt_tokens plus the chat template)",
                param="messages",
            )
        trace.stage = "media"
        media = await self._each_medium(job, trace, self.loader.load) if job.media else ()
        videos = tuple(EngineVideo(m.frames, m.metadata, m.engine_id) for m in media if m.ref.kind == "video")
        images = tuple(m.frames for m in media if m.ref.kind == "image")
        for m in media:
            if m.ref.kind == "video":
                self.metrics.videos.inc()
                self.metrics.video_frames.inc(m.frame_count)
                self.metrics.video_seconds.inc(m.duration or 0.0)
                if m.receipt is not None:
                    if m.receipt.source == "frames":
                        self.metrics.frame_sequences.inc()
                    self.metrics.recovered_frames.inc(len(m.receipt.recovered_frames))
            else:
                self.metrics.images.inc()
        return PreparedChat(job, EngineInput(prompt, videos, images), media, text_tokens)

    async def estimate(self, job: ChatJob, trace: Trace) -> EstimatedChat:
        """The dry run of :meth:`prepare`: render and count the text, fetch and probe the media and
        plan its sampling; decode nothing and never touch the engine's generation.

        What the budget refuses (the text's length, media over budget) is collected as problems
        rather than raised: the answer says whether the request fits and why not.
        """
        trace.stage = "render"
        start = time.monotonic()
        _, total_tokens = await asyncio.to_thread(self._render, job)
        text_tokens = total_tokens - self.engine.media_placeholder_tokens() * len(job.media)
        trace.add("render", time.monotonic() - start)
        problems: list[str] = []
        if text_tokens > self.text_token_limit:
            problems.append(
                f"the prompt's text is {text_tokens} tokens; this model accepts at most {self.text_token_limit} "
                "(max_prompt_tokens plus the chat template)"
            )
        trace.stage = "media"
        media = await self._each_medium(job, trace, self.loader.estimate)
        problems.extend(item.problem for item in media if item.problem)
        return EstimatedChat(job, media, text_tokens, tuple(problems))

    def _render(self, job: ChatJob) -> tuple[str, int]:
        prompt = self.engine.render(job.turns, job.tools.definitions) if job.tools else self.engine.render(job.turns)
        return prompt, self.engine.count_tokens(prompt)

    async def _each_medium(
        self, job: ChatJob, trace: Trace, run: Callable[[MediaRef], Coroutine[Any, Any, M]]
    ) -> tuple[M, ...]:
        """``run`` (the loader's load or estimate) on every media item of ``job`` at once; each item's
        stage timings, and the whole media stage's, go on ``trace``."""
        start = time.monotonic()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(run(ref)) for ref in job.media]
        except BaseExceptionGroup as group_error:
            # The first failure cancelled the others; report it alone (as a client sees one error).
            raise _first_error(group_error) from None
        results = tuple(t.result() for t in tasks)
        for item in results:
            for stage, seconds in item.timings.items():
                trace.add(stage, seconds)
        trace.add("media", time.monotonic() - start)
        return results

    async def steps(self, prepared: PreparedChat, trace: Trace) -> AsyncGenerator[EngineStep, None]:
        """The engine's deltas; records time to first token and counts aborts when closed early."""
        trace.stage = "engine"
        trace.engine_running = True
        start = time.monotonic()
        first = True
        finished = False
        # A client may choose the request id (x-request-id); the engine's must be unique regardless.
        engine_request_id = f"{trace.request_id}-{secrets.token_hex(4)}"
        generation = self.engine.generate(prepared.engine_input, prepared.job.sampling, engine_request_id)
        if prepared.job.tools is not None:
            generation = self._with_tool_calls(generation, prepared.job.tools)
        try:
            async for step in generation:
                if first and any(c.tokens for c in step.choices):
                    trace.timings["ttft"] = trace.elapsed()
                    first = False
                yield step
            finished = True
        finally:
            # Closing the engine's generator is what aborts the engine request.
            await generation.aclose()
            trace.engine_running = False
            trace.add("generate", time.monotonic() - start)
            if not finished:
                self.metrics.engine_aborts.labels(trace.abort_reason).inc()
                log.info("engine request aborted", extra={"request_id": trace.request_id, "reason": trace.abort_reason})

    async def _with_tool_calls(
        self, generation: AsyncGenerator[EngineStep, None], tools: Tools
    ) -> AsyncGenerator[EngineStep, None]:
        """The engine's steps with each choice's text held back until it finishes, then read for calls.

        A choice's deltas pass through with their token counts but no text; its last delta carries
        the whole text, or, when it holds calls, the text before them and the calls
        (``finish_reason`` ``tool_calls``). Tool calls therefore arrive in one piece, also when
        streaming. Closing this closes the engine's generator (which aborts the request).
        """
        texts: dict[int, list[str]] = {}
        try:
            async for step in generation:
                choices = []
                for delta in step.choices:
                    texts.setdefault(delta.index, []).append(delta.text)
                    if delta.finish_reason is None:
                        choices.append(replace(delta, text=""))
                        continue
                    text = "".join(texts.pop(delta.index, []))
                    content, calls = self.tool_calls(tools, text, delta.finish_reason)
                    if calls:
                        self.metrics.tool_calls.inc(len(calls))
                        choices.append(replace(delta, text=content or "", tool_calls=calls, finish_reason="tool_calls"))
                    else:
                        choices.append(replace(delta, text=text))
                yield replace(step, choices=tuple(choices))
        finally:
            await generation.aclose()

    def tool_calls(self, tools: Tools, text: str, finish_reason: str) -> tuple[str | None, tuple[ToolCall, ...]]:
        """The calls in a finished choice's ``text``: ``(content, calls)``; no calls leaves the text as content.

        A forced call's text is JSON the engine constrained (the function's arguments, or an array of
        ``{"name", "parameters"}``); cut off at ``max_tokens`` it is not a call. ``auto`` runs the
        family's parser (the engine's).
        """
        if tools.choice == "auto":
            return self.engine.parse_tool_calls(text)
        if finish_reason == "length":
            return text, ()
        try:
            parsed = json.loads(text)
        except ValueError:
            return text, ()
        if tools.choice == "function":
            assert tools.function is not None
            return None, (ToolCall(_call_id(), tools.function, json.dumps(parsed, ensure_ascii=False)),)
        if not isinstance(parsed, list):
            return text, ()
        calls = tuple(
            ToolCall(_call_id(), str(item["name"]), json.dumps(item.get("parameters", {}), ensure_ascii=False))
            for item in parsed
            if isinstance(item, dict) and "name" in item
        )
        return (None, calls) if calls else (text, ())


def _call_id() -> str:
    return f"chatcmpl-tool-{secrets.token_hex(12)}"


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, ServerError):
            return exc
    return leaves[0]
