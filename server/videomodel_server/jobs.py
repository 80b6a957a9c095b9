"""What one chat request asks the server to do, as frozen dataclasses: the job and its limits.

The shared vocabulary of the serving code: :mod:`~videomodel_server.api.chat.translation` builds
a :class:`ChatJob` from the HTTP request, within :class:`RequestLimits`; the engine renders its
:class:`Turn` s and samples with its :class:`Sampling`; the media loader loads each
:class:`MediaRef`. Nothing here knows HTTP, pydantic or the engine, so the engine and the media
seam depend on this module and not on the wire format. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .budget import Plan, VideoBudget
from .budget.knobs import SamplingKnobs
from .budget.sequence import FrameSequenceInfo

Role = Literal["system", "user", "assistant", "tool"]
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
    check_media: Callable[[MediaRef], None] | None = None
    """The media loader's check of a media item's URL text
    (:meth:`~videomodel_server.loading.MediaLoader.check`), run on each item as the request is
    read: a URL the loader would refuse before fetching (a forbidden IP-literal host) is refused
    before the prompt is rendered or counted. None: no check here (the loader's own, later)."""

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
        cls,
        model_name: str,
        budget: VideoBudget,
        plan: Plan,
        *,
        max_text_bytes: int,
        check_media: Callable[[MediaRef], None] | None = None,
        **request_limits: int,
    ) -> RequestLimits:
        """``budget`` must be resolved for the served family; ``request_limits`` are the settings'
        per-request limits (``max_n``, ``max_messages``...)."""
        return cls(
            model_name=model_name,
            budget=budget,
            frames_per_video=plan.frames_per_video,
            max_text_bytes=max_text_bytes,
            check_media=check_media,
            **request_limits,
        )


@dataclass(frozen=True)
class VideoOptions(SamplingKnobs):
    """The sampling one video gets: the budget's knobs, narrowed by the client's
    (:func:`~videomodel_server.budget.knobs.narrow`), every knob the budget sets filled in.

    ``num_frames`` asks for an exact (even) frame count instead of ``fps``; at most one of the two
    differs from the budget's default. ``video_start``/``video_end`` (seconds, Qwen's content-part
    fields) sample only that time window of the video; None is the video's own start or end.
    ``frame_recovery`` None is the server's default.
    """

    frames: FrameSequenceInfo | None = None
    """How a frame-sequence video's JPEGs map onto its source video (None for other videos)."""


@dataclass(frozen=True)
class MediaRef:
    """One media item of the prompt, in prompt order; ``index`` counts within its kind."""

    kind: MediaKind
    url: str
    index: int
    options: VideoOptions | None = None
    where: str = ""
    """The request field it came from (``messages[1].content[0]``), for error messages."""
    uuid: str | None = None
    """The client's id of this video (vLLM's ``uuid`` on the content part); with an empty ``url``
    the video must be served from the decoded-video cache under that id."""


@dataclass(frozen=True)
class ToolCall:
    """One function call the assistant made (or makes): ``arguments`` is JSON text, as in OpenAI's API."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Tools:
    """The functions a request offers the model (``tools``) and how it must use them (``tool_choice``).

    ``definitions`` is the JSON text of the validated ``tools`` list (what the chat template is
    given); ``choice`` is ``auto`` (the model decides; the family's tool parser reads its output),
    ``required`` (at least one call, forced by structured output) or ``function`` (a call of
    ``function``, its arguments forced to the function's parameter schema).
    """

    definitions: str
    choice: Literal["auto", "required", "function"]
    function: str | None = None


@dataclass(frozen=True)
class Turn:
    """One message: text pieces and media placeholders (``MediaRef``) in their order.

    An assistant turn may carry the ``tool_calls`` it made; a ``tool`` turn is a call's result
    (``tool_call_id``)."""

    role: Role
    parts: tuple[str | MediaRef, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


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
    tools: Tools | None = None

    @property
    def videos(self) -> tuple[MediaRef, ...]:
        return tuple(m for m in self.media if m.kind == "video")

    @property
    def images(self) -> tuple[MediaRef, ...]:
        return tuple(m for m in self.media if m.kind == "image")
