"""Pure builders of the OpenAI response objects from engine deltas (no I/O, no clock).

:class:`Accumulator` folds :class:`~videomodel_server.engine.EngineStep` deltas into a
non-streaming completion; :func:`chunk` and :func:`sse` shape the streaming ones; :func:`report`
is this server's ``videomodel`` extension (clamps, stage timings, what was done to each medium).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...engine import ChoiceDelta, EngineStep, TokenLogprobInfo
from ...tracing import Trace
from .protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    MediaReport,
    ServerReport,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from .service import PreparedChat


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
                    message=AssistantMessage(content="".join(state.text)),
                    logprobs=logprobs_of(tuple(state.logprobs)) if state.logprobs is not None else None,
                    finish_reason=state.finish_reason or "stop",
                )
            )
        return ChatCompletionResponse(
            id=completion_id, created=created, model=model, choices=choices, usage=self.usage(), videomodel=report
        )


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
        delta=Delta(content=delta.text),
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
