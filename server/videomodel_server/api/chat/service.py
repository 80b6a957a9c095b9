"""One chat request after admission: render and check the prompt, load media, run the engine.

The stages, in order (ARCHITECTURE.md "Flow of one request"): the prompt is rendered with the
model's chat template and its text checked against ``max_prompt_tokens`` *before* any media is
fetched; every media item is then loaded concurrently (fetch, probe, decode behind the
:class:`~videomodel_server.loading.MediaLoader` seam); the engine gets the rendered prompt and
each video as ``(frames, metadata)``. :class:`Trace` records the stage the request is in and
what each stage took, for the response's report, the metrics and the logs. Cancellation (a
client disconnect, the deadline) propagates into the loader and the engine.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from .api.protocol import MediaReport, ServerReport
from .conversation import ChatJob
from .engine import Engine, EngineInput, EngineStep, EngineVideo
from .errors import OverBudget, ServerError
from .loading import LoadedMedia, MediaLoader
from .metrics import ABORT_CLIENT_DISCONNECT, ABORT_DEADLINE, Metrics

log = logging.getLogger(__name__)


@dataclass
class Trace:
    """Where one request is and what its stages took (seconds). Mutable, owned by one request."""

    request_id: str
    started: float = field(default_factory=time.monotonic)
    stage: str = "admission"
    timings: dict[str, float] = field(default_factory=dict)
    engine_running: bool = False
    deadline: asyncio.Timeout | None = None
    """The request's overall deadline, once set: tells a deadline abort from a disconnect."""

    @property
    def abort_reason(self) -> str:
        if self.deadline is not None and self.deadline.expired():
            return ABORT_DEADLINE
        return ABORT_CLIENT_DISCONNECT

    def add(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class PreparedChat:
    job: ChatJob
    engine_input: EngineInput
    media: tuple[LoadedMedia, ...]
    prompt_text_tokens: int

    @property
    def clamped(self) -> tuple[str, ...]:
        notes = list(self.job.clamped)
        for item in self.media:
            notes.extend(item.clamped)
        return tuple(dict.fromkeys(notes))


class ChatService:
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
        media = await self._load_all(job, trace)
        videos = tuple(EngineVideo(m.frames, m.metadata) for m in media if m.ref.kind == "video")
        images = tuple(m.frames for m in media if m.ref.kind == "image")
        for m in media:
            if m.ref.kind == "video":
                self.metrics.videos.inc()
                self.metrics.video_frames.inc(m.frame_count)
                self.metrics.video_seconds.inc(m.duration or 0.0)
            else:
                self.metrics.images.inc()
        return PreparedChat(job, EngineInput(prompt, videos, images), media, text_tokens)

    def _render(self, job: ChatJob) -> tuple[str, int]:
        prompt = self.engine.render(job.turns)
        return prompt, self.engine.count_tokens(prompt)

    async def _load_all(self, job: ChatJob, trace: Trace) -> tuple[LoadedMedia, ...]:
        if not job.media:
            return ()
        start = time.monotonic()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.loader.load(ref)) for ref in job.media]
        except BaseExceptionGroup as group_error:
            # The first failure cancelled the other loads; report it alone (as a client sees one error).
            raise _first_error(group_error) from None
        loaded = tuple(t.result() for t in tasks)
        for item in loaded:
            for stage, seconds in item.timings.items():
                trace.add(stage, seconds)
        trace.add("media", time.monotonic() - start)
        return loaded

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


def report(trace: Trace, prepared: PreparedChat | None) -> ServerReport:
    media = []
    if prepared is not None:
        for m in prepared.media:
            media.append(
                MediaReport(
                    kind=m.ref.kind,
                    frames=m.frame_count if m.ref.kind == "video" else None,
                    sample_fps=m.sample_fps,
                    duration_seconds=m.duration,
                    height=m.height,
                    width=m.width,
                )
            )
    return ServerReport(
        request_id=trace.request_id,
        clamped=list(prepared.clamped) if prepared else [],
        timings_ms={k: round(v * 1000, 2) for k, v in trace.timings.items()},
        media=media,
    )
