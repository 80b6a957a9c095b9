"""Pure builders of the OpenAI response objects from engine deltas (no I/O, no clock).

:class:`Accumulator` folds :class:`~videomodel_server.engine.EngineStep` deltas into a
non-streaming completion; :func:`chunk` and :func:`sse` shape the streaming ones; :func:`report`
is this server's ``videomodel`` extension (clamps, stage timings, what was done to each medium).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...budget import FamilyGeometry, Plan, video_tokens
from ...engine import ChoiceDelta, EngineStep, TokenLogprobInfo
from ...errors import ServerError
from ...jobs import ToolCall
from ...loading import SamplingReceipt
from ...tracing import Trace
from .protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    DeltaToolCall,
    EstimateResponse,
    FunctionCallOut,
    MediaReport,
    ServerReport,
    TokenLogprob,
    ToolCallOut,
    TopLogprob,
    Usage,
)
from .service import EstimatedChat, PreparedChat


def logprobs_of(infos: tuple[TokenLogprobInfo, ...] | None) -> ChoiceLogprobs | None:
    if infos is None:
        return None
    return ChoiceLogprobs(
        content=[
            TokenLogprob(
                token=i.token,
                logprob=i.logprob,
                bytes=list(i.token.encode()),
                top_logprobs=[TopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in i.top],
            )
            for i in infos
        ]
    )


@dataclass
class _ChoiceState:
    text: list[str] = field(default_factory=list)
    tokens: int = 0
    finish_reason: str | None = None
    logprobs: list[TokenLogprobInfo] | None = None
    tool_calls: tuple[ToolCall, ...] | None = None


@dataclass
class Accumulator:
    """Folds deltas; ``prompt_tokens`` is the engine's count (media expanded)."""

    n: int
    prompt_tokens: int = 0
    choices: dict[int, _ChoiceState] = field(default_factory=dict)

    def add(self, step: EngineStep) -> None:
        if step.prompt_tokens is not None:
            self.prompt_tokens = step.prompt_tokens
        for delta in step.choices:
            self.add_delta(delta)

    def add_delta(self, delta: ChoiceDelta) -> None:
        state = self.choices.setdefault(delta.index, _ChoiceState())
        state.text.append(delta.text)
        state.tokens += delta.tokens
        if delta.finish_reason is not None:
            state.finish_reason = delta.finish_reason
        if delta.logprobs is not None:
            state.logprobs = (state.logprobs or []) + list(delta.logprobs)
        if delta.tool_calls:
            state.tool_calls = delta.tool_calls

    @property
    def all_finished(self) -> bool:
        """Every choice has its finish reason: nothing more will come."""
        return len(self.choices) == self.n and all(c.finish_reason is not None for c in self.choices.values())

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices.values())

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
        )

    def response(self, completion_id: str, created: int, model: str, report: ServerReport) -> ChatCompletionResponse:
        choices = []
        for index in range(self.n):
            state = self.choices.get(index, _ChoiceState())
            choices.append(
                Choice(
                    index=index,
                    message=_message(state),
                    logprobs=logprobs_of(tuple(state.logprobs)) if state.logprobs is not None else None,
                    finish_reason=state.finish_reason or "stop",
                )
            )
        return ChatCompletionResponse(
            id=completion_id, created=created, model=model, choices=choices, usage=self.usage(), videomodel=report
        )


def _message(state: _ChoiceState) -> AssistantMessage:
    text = "".join(state.text)
    if not state.tool_calls:
        return AssistantMessage(content=text)
    return AssistantMessage(content=text or None, tool_calls=[_call(c) for c in state.tool_calls])


def _call(call: ToolCall) -> ToolCallOut:
    return ToolCallOut(id=call.id, function=FunctionCallOut(name=call.name, arguments=call.arguments))


def chunk(
    completion_id: str,
    created: int,
    model: str,
    choices: list[ChunkChoice],
    usage: Usage | None = None,
    report: ServerReport | None = None,
) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=completion_id, created=created, model=model, choices=choices, usage=usage, videomodel=report
    )


def delta_choice(delta: ChoiceDelta) -> ChunkChoice:
    return ChunkChoice(
        index=delta.index,
        delta=Delta(
            content=delta.text if delta.text or not delta.tool_calls else None,
            tool_calls=[DeltaToolCall(index=i, **_call(c).model_dump()) for i, c in enumerate(delta.tool_calls)]
            if delta.tool_calls
            else None,
        ),
        logprobs=logprobs_of(delta.logprobs),
        finish_reason=delta.finish_reason,
    )


def role_choices(n: int) -> list[ChunkChoice]:
    return [ChunkChoice(index=i, delta=Delta(role="assistant", content="")) for i in range(n)]


def sse(payload: ChatCompletionChunk | str) -> bytes:
    """One server-sent event; ``payload`` is a chunk or raw JSON text."""
    text = payload if isinstance(payload, str) else payload.model_dump_json(exclude_none=True)
    return f"data: {text}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def report(
    trace: Trace,
    prepared: PreparedChat | None,
    geometry: FamilyGeometry | None = None,
    engine_prompt_tokens: int | None = None,
) -> ServerReport:
    """The ``videomodel`` field: clamps, stage timings and each medium's sampling receipt.

    With ``geometry`` (the served family's) every video is priced by the budget module; with the
    engine's prompt token count, the media's tokens as the engine counted them sit next to that
    price (per video when the prompt has one media item).
    """
    media: list[MediaReport] = []
    engine_media: int | None = None
    if prepared is not None:
        if engine_prompt_tokens and prepared.media:
            engine_media = engine_prompt_tokens - prepared.prompt_text_tokens
        for m in prepared.media:
            if m.ref.kind == "image":
                media.append(MediaReport(kind="image", height=m.height, width=m.width))
                continue
            item = _video_report(m.receipt, geometry) if m.receipt is not None else MediaReport(kind="video")
            item.frames, item.sample_fps, item.duration_seconds = m.frame_count, m.sample_fps, m.duration
            item.height, item.width = m.height, m.width
            if engine_media is not None and len(prepared.media) == 1:
                item.engine_tokens = engine_media
            media.append(item)
    # Images are not priced here (the budget prices them from their size, not reported yet).
    priced = [m.budget_tokens for m in media]
    budget_media = sum(t for t in priced if t is not None) if priced and None not in priced else None
    return ServerReport(
        request_id=trace.request_id,
        clamped=list(prepared.clamped) if prepared else [],
        timings_ms={k: round(v * 1000, 2) for k, v in trace.timings.items()},
        media=media,
        budget_media_tokens=budget_media,
        engine_media_tokens=engine_media,
    )


def _video_report(receipt: SamplingReceipt, geometry: FamilyGeometry | None) -> MediaReport:
    """One video's receipt: frames and their true times, the patch grid, the budget's price, what bound it."""
    item = MediaReport(
        kind="video",
        frames=receipt.frames,
        sample_fps=receipt.sample_fps,
        duration_seconds=receipt.duration,
        height=receipt.height,
        width=receipt.width,
        window_seconds=list(receipt.window) if receipt.window is not None else None,
        timestamps=list(receipt.timestamps),
        binding=list(receipt.binding),
        cache=receipt.cache,
        source="frames" if receipt.source == "frames" else "video",
        frame_recovery=receipt.frame_recovery,
        recovered_frames=list(receipt.recovered_frames) if receipt.frame_recovery else None,
    )
    if geometry is not None:
        item.grid_thw = [
            math.ceil(receipt.frames / geometry.temporal_patch_size),
            receipt.height // geometry.patch_size,
            receipt.width // geometry.patch_size,
        ]
        item.budget_tokens = video_tokens(
            geometry,
            receipt.frames,
            receipt.height,
            receipt.width,
            receipt.label_seconds,
            frame_times=receipt.timestamps or None,
        )
    return item


def estimate_response(
    trace: Trace, estimated: EstimatedChat, model: str, geometry: FamilyGeometry, plan: Plan
) -> EstimateResponse:
    """The dry run's answer: each video's receipt, the prompt it makes, whether it fits and why not.

    Images are priced at the budget's worst case (``tokens_per_image``): they are not fetched.
    """
    media: list[MediaReport] = []
    media_tokens = 0
    for m in estimated.media:
        if m.ref.kind == "image":
            media.append(MediaReport(kind="image", budget_tokens=plan.tokens_per_image))
            media_tokens += plan.tokens_per_image
        elif m.receipt is None:
            media.append(MediaReport(kind="video"))
        else:
            item = _video_report(m.receipt, geometry)
            media.append(item)
            media_tokens += item.budget_tokens or 0
    problems = list(estimated.problems)
    prompt = estimated.prompt_text_tokens + media_tokens
    max_tokens = estimated.job.sampling.max_tokens
    if not problems and prompt + max_tokens > plan.max_model_len:
        problems.append(
            f"the prompt ({prompt} tokens) and max_tokens ({max_tokens}) exceed the context of {plan.max_model_len}"
        )
    server = ServerReport(
        request_id=trace.request_id,
        clamped=list(estimated.clamped),
        timings_ms={k: round(v * 1000, 2) for k, v in trace.timings.items()},
        media=media,
        budget_media_tokens=media_tokens,
    )
    return EstimateResponse(
        model=model,
        fits=not problems,
        problems=problems,
        text_tokens=estimated.prompt_text_tokens,
        media_tokens=media_tokens,
        prompt_tokens=prompt,
        max_tokens=max_tokens,
        max_model_len=plan.max_model_len,
        videomodel=server,
    )


def refused_estimate(trace: Trace, model: str, refusal: ServerError, plan: Plan) -> EstimateResponse:
    """The dry run's answer to a request the budget refuses before any media is looked at."""
    where = f"{refusal.param}: " if refusal.param else ""
    return EstimateResponse(
        model=model,
        fits=False,
        problems=[where + refusal.message],
        text_tokens=0,
        media_tokens=0,
        prompt_tokens=0,
        max_tokens=0,
        max_model_len=plan.max_model_len,
        videomodel=ServerReport(request_id=trace.request_id),
    )
