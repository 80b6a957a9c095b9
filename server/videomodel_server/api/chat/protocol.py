"""Pydantic models of ``POST /v1/chat/completions``: the OpenAI wire format with this server's video parts.

Validated once at the edge; :mod:`.translation` turns a request into the frozen
:class:`~videomodel_server.jobs.ChatJob` and nothing past it sees these models. Unknown
top-level fields are ignored (the OpenAI SDK sends a few harmless ones); known but unsupported
features (legacy ``functions``, logit bias, audio) are accepted by the schema so that
:func:`.translation.build` can refuse them with a 400 that names them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...budget.knobs import knob_fields
from ...loading import CacheSource

_KNOBS = {f.name: f for f in knob_fields()}


def knob(name: str, *, alias: str | None = None) -> Any:
    """A wire field of the sampling knob ``name`` (:class:`~videomodel_server.budget.knobs.SamplingKnobs`):
    None by default, with the bound and help declared there. The field keeps the knob's name (the
    translation maps wire objects to knobs by it); ``alias`` is its name on the wire when another."""
    declared = _KNOBS[name]
    bound: dict[str, Any] = declared.metadata["bound"]
    return Field(default=None, alias=alias, description=declared.metadata["help"], **bound)


# ---------------------------------------------------------------------------------------------
# Request: content parts
# ---------------------------------------------------------------------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Part):
    type: Literal["text"]
    text: str


class UrlRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(min_length=1)
    detail: str | None = None


class ImageUrlPart(_Part):
    type: Literal["image_url"]
    image_url: UrlRef


MediaUuid = Annotated[str, Field(min_length=1, max_length=256)]
"""A client's id of a video (vLLM's ``uuid`` on a content part): names it for later requests."""


class VideoUrlRef(BaseModel):
    """``video_url`` of a video part: the URL may be null when the part has a ``uuid``."""

    model_config = ConfigDict(extra="ignore")
    url: str | None = Field(default=None, min_length=1)


class VideoUrlPart(_Part):
    """``{"type": "video_url", "video_url": {"url": URL}}``, optionally with vLLM's ``uuid``.

    With a ``uuid`` the URL may be left out (``"video_url": null`` or ``{"url": null}``): the video
    is then the one last sent under that uuid with the same sampling, from the server's cache.
    """

    type: Literal["video_url"]
    video_url: VideoUrlRef | str | None = None
    uuid: MediaUuid | None = None

    @property
    def url(self) -> str | None:
        return self.video_url if isinstance(self.video_url, str) or self.video_url is None else self.video_url.url


class QwenVideoPart(_Part):
    """Qwen's own form: ``{"type": "video", "video": URL}`` with qwen-vl-utils' optional knobs."""

    type: Literal["video"]
    video: str | list[Any] | None = None
    uuid: MediaUuid | None = None
    fps: float | None = knob("fps")
    num_frames: int | None = knob("num_frames", alias="nframes")
    min_pixels: int | None = knob("min_pixels")
    max_pixels: int | None = knob("max_pixels")
    total_pixels: int | None = knob("total_pixels")
    video_start: float | None = knob("video_start")
    video_end: float | None = knob("video_end")


class QwenImagePart(_Part):
    type: Literal["image"]
    image: str


ContentPart = Annotated[
    TextPart | ImageUrlPart | VideoUrlPart | QwenVideoPart | QwenImagePart,
    Field(discriminator="type"),
]


ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
"""A function name as OpenAI allows it (letters, digits, ``_``, ``-``, ``.``; at most 64)."""


class FunctionCallIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: ToolName
    arguments: str = Field(max_length=65536)
    """JSON text, as the API returned it."""


class ToolCallIn(BaseModel):
    """A call an earlier assistant message made (sent back with the conversation)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = Field(default=None, max_length=64)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=128)


# ---------------------------------------------------------------------------------------------
# Request: knobs
# ---------------------------------------------------------------------------------------------


class VideoIoKwargs(BaseModel):
    """``media_io_kwargs.video``: how frames are sampled (clamped to the budget).

    For a pre-extracted frame sequence (``data:video/jpeg;base64,<frame>,<frame>,...``), vLLM's
    metadata of its source video: ``fps`` (then the source's frame rate, not a sampling knob),
    ``frames_indices``, ``total_num_frames``, ``duration``, ``do_sample_frames``.
    ``frame_recovery``: fill a frame that fails to decode with the next good one (vLLM's).
    """

    model_config = ConfigDict(extra="forbid")
    fps: float | None = knob("fps")
    num_frames: int | None = knob("num_frames")
    max_frames: int | None = knob("max_frames")
    frames_indices: list[int] | None = Field(default=None, min_length=1, max_length=300_000)
    total_num_frames: int | None = None
    duration: float | None = None
    do_sample_frames: bool | None = None
    frame_recovery: bool | None = knob("frame_recovery")


class MediaIoKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    video: VideoIoKwargs | None = None


class ProcessorKwargs(BaseModel):
    """``mm_processor_kwargs``: frame sampling and pixel bounds (clamped to the budget).

    The server resizes frames itself (qwen-vl-utils semantics, total budget included), so these
    steer that resizing; they are never forwarded to vLLM's processor unchecked.
    """

    model_config = ConfigDict(extra="forbid")
    fps: float | None = knob("fps")
    min_pixels: int | None = knob("min_pixels")
    max_pixels: int | None = knob("max_pixels")
    total_pixels: int | None = knob("total_pixels")
    max_frames: int | None = knob("max_frames")
    num_frames: int | None = knob("num_frames")


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: ToolName
    description: str | None = Field(default=None, max_length=8192)
    parameters: dict[str, Any] | None = None
    """A JSON Schema of the arguments (an object schema); None: no arguments."""
    strict: bool | None = None


class ToolDefinition(BaseModel):
    """``tools[i]``: ``{"type": "function", "function": {"name", "description", "parameters"}}``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: ToolName


class NamedToolChoice(BaseModel):
    """``tool_choice: {"type": "function", "function": {"name": ...}}``: call that function."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. Field names and ranges as in the OpenAI API."""

    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(default=None, gt=0, le=2)
    min_tokens: int = Field(default=0, ge=0, description="vLLM extension: generate at least this many tokens.")
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    media_io_kwargs: MediaIoKwargs | None = None
    mm_processor_kwargs: ProcessorKwargs | None = None
    user: str | None = None

    tools: list[ToolDefinition] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    # Accepted by the schema so that the refusal can name them (see module docstring).
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    logit_bias: dict[str, float] | None = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    use_beam_search: bool = False


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionCallOut(BaseModel):
    name: str
    arguments: str
    """JSON text of the arguments."""


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class MediaReport(BaseModel):
    """What the server did with one video (the sampling receipt): frames, times, size, tokens, limits."""

    kind: Literal["video", "image"]
    frames: int | None = None
    sample_fps: float | None = None
    duration_seconds: float | None = None
    height: int | None = None
    width: int | None = None
    window_seconds: list[float] | None = None
    """``[start, end]`` of the time window sampled (``video_start``/``video_end``), if any."""
    timestamps: list[float] | None = None
    """Seconds from the start of the video of each frame the model was given (true times)."""
    grid_thw: list[int] | None = None
    """The vision tower's patch grid (temporal groups, patch rows, patch columns), as ``video_grid_thw``."""
    budget_tokens: int | None = None
    """Prompt tokens of this item as the budget module prices it (``budget.video_tokens``)."""
    engine_tokens: int | None = None
    """Prompt tokens of this item as the engine counted them (known when the prompt has one media item)."""
    binding: list[str] = Field(default_factory=list)
    """The limits that decided the frame count and the frame size."""
    source: Literal["video", "frames"] | None = None
    """``frames`` for a pre-extracted JPEG frame sequence (``data:video/jpeg``), else ``video``."""
    frame_recovery: bool | None = None
    """Whether frame recovery was on while decoding this video."""
    recovered_frames: list[int] | None = None
    """Positions (0-based, in ``timestamps``) of frames that failed to decode and were filled with
    the next good frame (frame recovery on); their timestamps are the recovered frames' own."""
    cache: CacheSource | None = None
    """Where the frames came from: the client's ``uuid`` (nothing fetched or decoded), the URL
    revalidated (its origin answered 304 Not Modified: nothing downloaded or decoded), the
    decoded-video cache by content (fetched, not decoded), decoded now; None with the cache off."""


class ServerReport(BaseModel):
    """This server's extension of a completion (clients that do not know it ignore it)."""

    request_id: str
    clamped: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    media: list[MediaReport] = Field(default_factory=list)
    budget_media_tokens: int | None = None
    """All media of the prompt, priced by the budget module."""
    engine_media_tokens: int | None = None
    """All media of the prompt as the engine counted them (its prompt tokens less the text's)."""


class EstimateResponse(BaseModel):
    """``POST /v1/videomodel/estimate``: the receipt a chat completion would produce, without running it."""

    object: Literal["videomodel.estimate"] = "videomodel.estimate"
    model: str
    fits: bool
    problems: list[str] = Field(default_factory=list)
    """Why the request would be refused (empty when it fits)."""
    text_tokens: int
    media_tokens: int
    prompt_tokens: int
    """``text_tokens + media_tokens``: the prompt the engine would see (media priced by the budget)."""
    max_tokens: int
    """Completion tokens the request may generate."""
    max_model_len: int
    videomodel: ServerReport


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    videomodel: ServerReport | None = None


class DeltaToolCall(ToolCallOut):
    index: int


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    videomodel: ServerReport | None = None
