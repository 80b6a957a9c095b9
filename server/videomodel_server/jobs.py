"""What one chat request asks the server to do, as frozen dataclasses: the job and its limits.

The shared vocabulary of the serving code: :mod:`~videomodel_server.api.chat.translation` builds
a :class:`ChatJob` from the HTTP request, within :class:`RequestLimits`; the engine renders its
:class:`Turn` s and samples with its :class:`Sampling`; the media loader loads each
:class:`MediaRef`. Nothing here knows HTTP, pydantic or the engine, so the engine and the media
seam depend on this module and not on the wire format. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from .budget import Plan, VideoBudget

Role = Literal["system", "user", "assistant"]
MediaKind = Literal["video", "image"]


@dataclass(frozen=True)
class RequestLimits:
    """What one request may ask for: the resolved budget, the Plan's frame cap, the request settings."""

    model_name: str
    budget: VideoBudget
    """Resolved for the served family (pixel defaults filled in): the budget itself, not a copy
    of its fields."""
    frames_per_video: int
    """The Plan's most sampled frames of one in-budget video (a client's ``num_frames`` cap)."""
    max_text_bytes: int
    """Most UTF-8 bytes of text (all messages together), refused by length before tokenizing:
    the settings' ``text_byte_limit()``, a bytes-per-token bound times ``max_prompt_tokens``."""
    max_n: int = 4
    max_top_logprobs: int = 20
    max_stop_sequences: int = 4
    max_messages: int = 256

    def __post_init__(self) -> None:
        if self.budget.min_pixels is None or self.budget.max_pixels is None:
            raise ValueError("RequestLimits needs a resolved budget (VideoBudget.resolved)")

    @property
    def min_pixels(self) -> int:
        assert self.budget.min_pixels is not None
        return self.budget.min_pixels

    @property
    def max_pixels(self) -> int:
        assert self.budget.max_pixels is not None
        return self.budget.max_pixels

    @classmethod
    def from_plan(
        cls, model_name: str, budget: VideoBudget, plan: Plan, *, max_text_bytes: int, **request_limits: int
    ) -> RequestLimits:
        """``budget`` must be resolved for the served family; ``request_limits`` are the settings'
        per-request limits (``max_n``, ``max_messages``...)."""
        return cls(
            model_name=model_name,
            budget=budget,
            frames_per_video=plan.frames_per_video,
            max_text_bytes=max_text_bytes,
            **request_limits,
        )


@dataclass(frozen=True)
class VideoOptions:
    """The sampling one video gets: the budget's, or a client's narrower choice.

    ``num_frames`` asks for an exact (even) frame count instead of ``fps``; at most one of the two
    differs from the budget's default. ``video_start``/``video_end`` (seconds, Qwen's content-part
    fields) sample only that time window of the video; None is the video's own start or end.
    """

    fps: float
    max_frames: int
    min_pixels: int
    max_pixels: int
    total_pixels: int | None
    num_frames: int | None = None
    video_start: float | None = None
    video_end: float | None = None

    @property
    def window(self) -> tuple[float | None, float | None] | None:
        """``(video_start, video_end)``, or None for the whole video."""
        if self.video_start is None and self.video_end is None:
            return None
        return (self.video_start, self.video_end)

    @classmethod
    def from_budget(cls, budget: VideoBudget) -> VideoOptions:
        """The budget's own sampling: each field of this class that the (resolved) budget has."""
        return cls(**{f.name: getattr(budget, f.name) for f in fields(cls) if hasattr(budget, f.name)})


@dataclass(frozen=True)
class MediaRef:
    """One media item of the prompt, in prompt order; ``index`` counts within its kind."""

    kind: MediaKind
    url: str
    index: int
    options: VideoOptions | None = None
    where: str = ""
    """The request field it came from (``messages[1].content[0]``), for error messages."""


@dataclass(frozen=True)
class Turn:
    """One message: text pieces and media placeholders (``MediaRef``) in their order."""

    role: Role
    parts: tuple[str | MediaRef, ...]


@dataclass(frozen=True)
class StructuredOutput:
    """What the completion's text must be (``response_format``): any JSON object, or JSON valid
    against ``schema`` (JSON text of a JSON Schema), enforced by the engine while it decodes."""

    kind: Literal["json_object", "json_schema"]
    schema: str | None = None


@dataclass(frozen=True)
class Sampling:
    n: int
    max_tokens: int
    temperature: float | None
    top_p: float | None
    top_k: int | None
    min_p: float | None
    seed: int | None
    stop: tuple[str, ...]
    presence_penalty: float | None
    frequency_penalty: float | None
    repetition_penalty: float | None
    logprobs: int | None
    """None: no logprobs; k: the sampled token's plus the top k alternatives."""
    min_tokens: int = 0
    structured: StructuredOutput | None = None


@dataclass(frozen=True)
class ChatJob:
    turns: tuple[Turn, ...]
    media: tuple[MediaRef, ...]
    sampling: Sampling
    stream: bool
    include_usage: bool
    clamped: tuple[str, ...] = field(default=())

    @property
    def videos(self) -> tuple[MediaRef, ...]:
        return tuple(m for m in self.media if m.kind == "video")

    @property
    def images(self) -> tuple[MediaRef, ...]:
        return tuple(m for m in self.media if m.kind == "image")
