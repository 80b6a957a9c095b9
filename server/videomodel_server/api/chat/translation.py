"""From a validated chat request to a :class:`~videomodel_server.jobs.ChatJob`: pure checks, limits, clamping.

Everything a request may ask for is decided here, before any byte of media is fetched and before
any text is tokenized: the text's length (by bytes: a bound on what tokenizing it may cost), the
media count per prompt, the sampling parameters, and the per-request video knobs
(``media_io_kwargs``, ``mm_processor_kwargs``, Qwen's per-item ``fps``/``nframes``/pixels),
which are honoured inside the budget and clamped to it otherwise, with a note for each clamp
that the response reports (docs/security.md#client-knobs-are-clamped). No I/O, no clock.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ...budget.knobs import KNOB_NAMES, KnobConflict, SamplingKnobs, ceiling, narrow
from ...budget.names import label
from ...budget.sequence import FrameSequenceInfo
from ...errors import InvalidRequest, ModelNotFound, OverBudget
from ...jobs import (
    ChatJob,
    MediaRef,
    RequestLimits,
    Role,
    Sampling,
    StructuredOutput,
    ToolCall,
    Tools,
    Turn,
    VideoOptions,
)
from .protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ImageUrlPart,
    ProcessorKwargs,
    QwenImagePart,
    QwenVideoPart,
    TextPart,
    VideoIoKwargs,
    VideoUrlPart,
)

_UNSUPPORTED = (
    ("functions", "legacy function calling (use tools)"),
    ("function_call", "legacy function calling (use tool_choice)"),
    ("logit_bias", "logit_bias"),
    ("audio", "audio output"),
    ("prediction", "predicted outputs"),
)


def build(request: ChatCompletionRequest, limits: RequestLimits) -> ChatJob:
    """Check ``request`` against ``limits``; raise :class:`InvalidRequest`/:class:`OverBudget` or return the job."""
    _refuse_unsupported(request)
    if request.model is not None and request.model != limits.model_name:
        raise ModelNotFound(f"model {_safe_name(request.model)!r} is not served here; use {limits.model_name!r}")
    if len(request.messages) > limits.max_messages:
        raise OverBudget(
            f"request has {len(request.messages)} messages; this server accepts at most {limits.max_messages}",
            param="messages",
        )
    _check_text_length(request, limits)
    clamped: list[str] = []
    base = _request_video_options(request, limits, clamped)
    turns: list[Turn] = []
    media: list[MediaRef] = []
    for position, message in enumerate(request.messages):
        turn = _turn(message, position, base, limits, media, clamped)
        turns.append(turn)
    _check_media_counts(media, limits)
    tools, forced = _tools(request)
    sampling = _sampling(request, limits)
    if forced is not None:
        if sampling.structured is not None:
            raise InvalidRequest(
                "response_format cannot be combined with a tool_choice that forces a call", param="response_format"
            )
        sampling = replace(sampling, structured=forced)
    if limits.check_media is not None:  # a URL refused on its text (a forbidden IP literal): before any rendering
        for ref in media:
            limits.check_media(ref)
    return ChatJob(
        turns=tuple(turns),
        media=tuple(media),
        sampling=sampling,
        stream=request.stream,
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        clamped=tuple(dict.fromkeys(clamped)),
        tools=tools,
    )


MAX_TOOLS_BYTES = 64 * 1024
"""Largest ``tools`` list (serialized): it is rendered into the prompt and may be compiled into a grammar."""


def _tools(request: ChatCompletionRequest) -> tuple[Tools | None, StructuredOutput | None]:
    """``tools``/``tool_choice`` as the job's :class:`Tools`, and the structured output that forces a call.

    ``none`` (or no tools) renders no tools; ``auto`` (the default with tools) lets the model choose
    and the family's parser read its text; ``required`` and a named function constrain the output,
    as vLLM does, to a JSON array of ``{"name", "parameters"}`` calls or to the function's parameter
    schema, so the answer is a call whatever the model's weights.
    """
    choice = request.tool_choice
    tools = request.tools or []
    if not tools:
        if choice == "required" or not (choice is None or isinstance(choice, str)):
            raise InvalidRequest("tool_choice asks for a tool call but the request has no tools", param="tool_choice")
        return None, None
    names = [t.function.name for t in tools]
    if len(set(names)) != len(names):
        raise InvalidRequest("tools: function names must be unique", param="tools")
    try:
        definitions = json.dumps(
            [t.model_dump(exclude_none=True) for t in tools], separators=(",", ":"), allow_nan=False, sort_keys=True
        )
    except ValueError:
        raise InvalidRequest("tools hold a number JSON cannot represent (NaN or infinity)", param="tools") from None
    size = len(definitions.encode())
    if size > MAX_TOOLS_BYTES:
        raise OverBudget(f"tools is {size} bytes; at most {MAX_TOOLS_BYTES} are accepted", param="tools")
    if any(_depth(t.function.parameters) > MAX_SCHEMA_DEPTH for t in tools if t.function.parameters):
        raise OverBudget(f"a tool's parameters are nested deeper than {MAX_SCHEMA_DEPTH} levels", param="tools")
    if choice == "none":
        return None, None
    if choice is None or choice == "auto":
        return Tools(definitions, "auto"), None
    params = {t.function.name: t.function.parameters or {"type": "object", "properties": {}} for t in tools}
    if choice == "required":
        calls: dict[str, Any] = {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "anyOf": [
                    {
                        "properties": {"name": {"type": "string", "enum": [name]}, "parameters": schema},
                        "required": ["name", "parameters"],
                    }
                    for name, schema in params.items()
                ],
            },
        }
        if request.parallel_tool_calls is False:
            calls["maxItems"] = 1
        return Tools(definitions, "required"), StructuredOutput("json_schema", json.dumps(calls, separators=(",", ":")))
    assert not isinstance(choice, str)
    name = choice.function.name
    if name not in params:
        raise InvalidRequest("tool_choice names a function that is not in tools", param="tool_choice.function.name")
    forced = StructuredOutput("json_schema", json.dumps(params[name], separators=(",", ":")))
    return Tools(definitions, "function", name), forced


def _check_text_length(request: ChatCompletionRequest, limits: RequestLimits) -> None:
    """Refuse text longer than the byte bound, without encoding (let alone tokenizing) an over-long one.

    A UTF-8 string has at least as many bytes as characters, so the character count refuses a
    huge text at once; only a text that may fit is encoded to count its bytes exactly.
    """
    limit = limits.max_text_bytes
    texts = list(_texts(request.messages))
    chars = sum(len(t) for t in texts)
    if chars > limit:
        size = f"at least {chars}"
    else:
        exact = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
        if exact <= limit:
            return
        size = str(exact)
    per_token = limit // max(1, limits.budget.max_prompt_tokens)
    raise OverBudget(
        f"the request's text is {size} bytes; this server accepts at most {limit} bytes of text "
        f"({per_token} bytes per token of {label('max_prompt_tokens')} {limits.budget.max_prompt_tokens})",
        param="messages",
    )


def _texts(messages: list[ChatMessage]) -> Iterator[str]:
    for message in messages:
        if isinstance(message.content, str):
            yield message.content
        elif message.content is not None:
            yield from (part.text for part in message.content if isinstance(part, TextPart))
        for call in message.tool_calls or ():
            yield call.function.arguments


def _refuse_unsupported(request: ChatCompletionRequest) -> None:
    for attr, what in _UNSUPPORTED:
        if getattr(request, attr):
            raise InvalidRequest(f"{what} is not supported by this server", param=attr, code="unsupported")
    if request.modalities and set(request.modalities) - {"text"}:
        raise InvalidRequest("only text output is supported", param="modalities", code="unsupported")
    if request.use_beam_search:
        raise InvalidRequest("beam search is not supported by this server", param="use_beam_search", code="unsupported")
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest("stream_options is only allowed with stream=true", param="stream_options")


def _turn(
    message: ChatMessage,
    position: int,
    base: VideoOptions,
    limits: RequestLimits,
    media: list[MediaRef],
    clamped: list[str],
) -> Turn:
    param = f"messages[{position}]"
    role: Role = "system" if message.role == "developer" else message.role
    content = message.content
    calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ())
    if calls and role != "assistant":
        raise InvalidRequest(
            f"{param}.tool_calls: only assistant messages make tool calls", param=f"{param}.tool_calls"
        )
    if role == "tool" and message.tool_call_id is None:
        raise InvalidRequest(f"{param}.tool_call_id is missing (a tool message answers a call)", param=param)
    if calls or role == "tool":
        if isinstance(content, list) and any(not isinstance(p, TextPart) for p in content):
            raise InvalidRequest(f"{param}: media is only allowed in user messages", param=f"{param}.content")
        text = (
            content if isinstance(content, str) else "".join(p.text for p in content or () if isinstance(p, TextPart))
        )
        tool_call_id = message.tool_call_id if role == "tool" else None
        return Turn(role, (text,), tool_calls=calls, tool_call_id=tool_call_id)
    if content is None:
        raise InvalidRequest(f"{param}.content is missing", param=f"{param}.content")
    if isinstance(content, str):
        return Turn(role, (content,))
    parts: list[str | MediaRef] = []
    for index, part in enumerate(content):
        where = f"{param}.content[{index}]"
        if isinstance(part, TextPart):
            parts.append(part.text)
            continue
        if role != "user":
            raise InvalidRequest(f"{where}: media is only allowed in user messages", param=where)
        ref = _media_ref(part, where, base, limits, media, clamped)
        media.append(ref)
        parts.append(ref)
    return Turn(role, tuple(parts))


def _media_ref(
    part: ImageUrlPart | VideoUrlPart | QwenVideoPart | QwenImagePart,
    where: str,
    base: VideoOptions,
    limits: RequestLimits,
    media: list[MediaRef],
    clamped: list[str],
) -> MediaRef:
    videos = sum(1 for m in media if m.kind == "video")
    images = len(media) - videos
    if isinstance(part, ImageUrlPart):
        return MediaRef("image", part.image_url.url, images, where=where)
    if isinstance(part, QwenImagePart):
        return MediaRef("image", part.image, images, where=where)
    if isinstance(part, VideoUrlPart):
        return MediaRef("video", _video_url(part.url, part.uuid, where), videos, base, where=where, uuid=part.uuid)
    if part.video is None:
        _video_url(None, part.uuid, where)
    elif not isinstance(part.video, str):
        raise InvalidRequest(
            f"{where}: a video given as a list of frames is not supported; send one video URL",
            param=where,
            code="unsupported",
        )
    options = _clamp(base, _knobs(part), limits, clamped, where)
    _check_window(options, where, limits)
    return MediaRef("video", part.video or "", videos, options, where=where, uuid=part.uuid)


def _video_url(url: str | None, uuid: str | None, where: str) -> str:
    """A video part's URL; empty for the uuid-only form (served from the cache by its uuid)."""
    if url is None and uuid is None:
        raise InvalidRequest(f"{where}: a video part needs a URL, a uuid, or both", param=where)
    return url or ""


def _check_window(options: VideoOptions, where: str, limits: RequestLimits) -> None:
    """``video_start``/``video_end`` checked for what can be checked before the video is probed.

    Each must be a finite number of seconds, not negative, the start before the end and before the
    end of the longest video the budget accepts; that the window lies inside *this* video is checked
    once it is probed (a 400 naming the field too; an end past the video is its end, as in
    qwen-vl-utils, and noted in the clamps).
    """
    start, end = options.video_start, options.video_end
    longest = limits.budget.max_seconds
    for name, value in (("video_start", start), ("video_end", end)):
        if value is None:
            continue
        param = f"{where}.{name}"
        if not math.isfinite(value) or value < 0:
            raise InvalidRequest(f"{param} must be a non-negative number of seconds", param=param)
        if name == "video_start" and value >= longest:
            raise InvalidRequest(
                f"{param} is {_num(value)} s; no video this model accepts is that long "
                f"({label('max_seconds')} {_num(longest)})",
                param=param,
            )
    if start is not None and end is not None and end <= start:
        raise InvalidRequest(
            f"{where}.video_end ({_num(end)} s) must be after video_start ({_num(start)} s)", param=f"{where}.video_end"
        )


def _check_media_counts(media: list[MediaRef], limits: RequestLimits) -> None:
    videos = sum(1 for m in media if m.kind == "video")
    images = len(media) - videos
    if videos > limits.budget.videos_per_prompt:
        raise OverBudget(
            f"request has {videos} videos; this model accepts at most {limits.budget.videos_per_prompt} per prompt",
            param="messages",
        )
    if images > limits.budget.images_per_prompt:
        raise OverBudget(
            f"request has {images} images; this model accepts at most {limits.budget.images_per_prompt} per prompt",
            param="messages",
        )


def _request_video_options(request: ChatCompletionRequest, limits: RequestLimits, clamped: list[str]) -> VideoOptions:
    """The request-wide video knobs: ``media_io_kwargs.video`` and ``mm_processor_kwargs`` merged."""
    io = (request.media_io_kwargs.video if request.media_io_kwargs else None) or VideoIoKwargs()
    proc = request.mm_processor_kwargs or ProcessorKwargs()
    frames = _frame_sequence_info(request, io)
    if frames is not None:
        # media_io_kwargs.video.fps describes the frames' source video (vLLM): not a sampling knob.
        io = io.model_copy(update={"fps": None})
    io_knobs, proc_knobs = _knobs(io), _knobs(proc)
    for name, a in vars(io_knobs).items():
        b = getattr(proc_knobs, name)
        if a is not None and b is not None and a != b:
            raise InvalidRequest(
                f"{name} differs between media_io_kwargs.video and mm_processor_kwargs; set it once",
                param="mm_processor_kwargs",
            )
    merged = replace(proc_knobs, **{name: a for name, a in vars(io_knobs).items() if a is not None})
    options = _clamp(VideoOptions.of(limits.budget), merged, limits, clamped, "mm_processor_kwargs")
    return replace(options, frames=frames)


FRAME_SEQUENCE_FIELDS = ("frames_indices", "total_num_frames", "duration", "do_sample_frames")
"""``media_io_kwargs.video`` fields that describe a pre-extracted frame sequence (vLLM's)."""


def _frame_sequence_info(request: ChatCompletionRequest, io: VideoIoKwargs) -> FrameSequenceInfo | None:
    """The frame-sequence metadata of ``media_io_kwargs.video`` when the request holds a frame
    sequence (a ``data:video/jpeg`` video URL), else None; its fields without one are a 400."""
    if not any(_is_frame_sequence(url) for url in _video_urls(request.messages)):
        for name in FRAME_SEQUENCE_FIELDS:
            if getattr(io, name) is not None:
                raise InvalidRequest(
                    f"media_io_kwargs.video.{name} describes a pre-extracted frame sequence, and the request "
                    "has none (send the frames as data:video/jpeg;base64,<frame>,<frame>,...)",
                    param=f"media_io_kwargs.video.{name}",
                )
        return None
    return FrameSequenceInfo(
        fps=io.fps,
        frames_indices=tuple(io.frames_indices) if io.frames_indices is not None else None,
        total_num_frames=io.total_num_frames,
        duration=io.duration,
        do_sample_frames=io.do_sample_frames,
    )


def _video_urls(messages: list[ChatMessage]) -> Iterator[str]:
    for message in messages:
        if isinstance(message.content, list):
            for part in message.content:
                if isinstance(part, VideoUrlPart) and part.url:
                    yield part.url
                elif isinstance(part, QwenVideoPart) and isinstance(part.video, str):
                    yield part.video


def _is_frame_sequence(url: str) -> bool:
    """A ``data:video/jpeg`` URL (vLLM's frame-sequence form); the header alone is read."""
    if url[:5].lower() != "data:":
        return False
    return url[5:261].partition(",")[0].split(";")[0].strip().lower() == "video/jpeg"


def _knobs(wire: VideoIoKwargs | ProcessorKwargs | QwenVideoPart) -> SamplingKnobs:
    """The sampling knobs a wire object sets: its fields named as :class:`SamplingKnobs`' are."""
    return SamplingKnobs(**{name: getattr(wire, name) for name in type(wire).model_fields if name in KNOB_NAMES})


def _clamp(
    base: VideoOptions, ask: SamplingKnobs, limits: RequestLimits, clamped: list[str], where: str
) -> VideoOptions:
    """``base`` narrowed by ``ask`` (:func:`~videomodel_server.budget.knobs.narrow`): anything past
    the budget is cut back to it and noted in ``clamped``; contradictory knobs are a 400 at ``where``."""
    if ask.fps is not None and ask.num_frames is not None:
        raise InvalidRequest(f"{where}: set fps or num_frames, not both", param=where)
    try:
        options, notes = narrow(ask, ceiling(limits.budget, limits.frames_per_video), base)
    except KnobConflict as exc:
        raise InvalidRequest(f"{where}: {exc}", param=where) from None
    clamped.extend(notes)
    return options


def _sampling(request: ChatCompletionRequest, limits: RequestLimits) -> Sampling:
    both = request.max_tokens is not None and request.max_completion_tokens is not None
    if both and request.max_tokens != request.max_completion_tokens:
        raise InvalidRequest("max_tokens and max_completion_tokens differ; set one", param="max_tokens")
    asked = request.max_completion_tokens or request.max_tokens
    if asked is not None and asked > limits.budget.max_output_tokens:
        raise OverBudget(
            f"max_tokens is {asked}; this model generates at most {limits.budget.max_output_tokens} tokens per request",
            param="max_tokens",
        )
    if request.n > limits.max_n:
        raise OverBudget(f"n is {request.n}; this server allows at most {limits.max_n}", param="n")
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    if len(stop) > limits.max_stop_sequences:
        raise OverBudget(
            f"stop has {len(stop)} sequences; this server allows at most {limits.max_stop_sequences}", param="stop"
        )
    if any(not s for s in stop):
        raise InvalidRequest("stop sequences must not be empty", param="stop")
    logprobs: int | None = None
    if request.logprobs:
        logprobs = request.top_logprobs or 0
        if logprobs > limits.max_top_logprobs:
            raise OverBudget(
                f"top_logprobs is {logprobs}; this server allows at most {limits.max_top_logprobs}",
                param="top_logprobs",
            )
    elif request.top_logprobs:
        raise InvalidRequest("top_logprobs requires logprobs=true", param="top_logprobs")
    return Sampling(
        n=request.n,
        max_tokens=asked or limits.budget.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        min_p=request.min_p,
        seed=request.seed,
        stop=stop,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=request.repetition_penalty,
        logprobs=logprobs,
        min_tokens=min(request.min_tokens, asked or limits.budget.max_output_tokens),
        structured=_structured(request.response_format),
    )


MAX_SCHEMA_BYTES = 32 * 1024
"""Largest ``response_format`` JSON schema (serialized): the engine compiles it into a grammar."""
MAX_SCHEMA_DEPTH = 32
"""Deepest nesting of objects and arrays in a schema."""


def _structured(response_format: dict[str, Any] | None) -> StructuredOutput | None:
    """``response_format`` (OpenAI's shape) as the engine's structured-output constraint, or None for text."""
    if response_format is None:
        return None
    kind = response_format.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return StructuredOutput("json_object")
    if kind != "json_schema":
        raise InvalidRequest(
            "response_format.type must be text, json_object or json_schema",
            param="response_format.type",
            code="unsupported",
        )
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "response_format.json_schema.schema must be a JSON Schema object", param="response_format.json_schema"
        )
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise OverBudget(
            f"response_format.json_schema.schema is nested deeper than {MAX_SCHEMA_DEPTH} levels",
            param="response_format.json_schema",
        )
    try:
        text = json.dumps(schema, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise InvalidRequest(
            "response_format.json_schema.schema holds a number JSON cannot represent (NaN or infinity)",
            param="response_format.json_schema",
        ) from None
    size = len(text.encode())
    if size > MAX_SCHEMA_BYTES:
        raise OverBudget(
            f"response_format.json_schema.schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted",
            param="response_format.json_schema",
        )
    return StructuredOutput("json_schema", text)


def _depth(value: Any, level: int = 0) -> int:
    """Nesting depth of a parsed JSON value, without recursing past the limit."""
    if level > MAX_SCHEMA_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


_SAFE_NAME = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")


def _safe_name(name: str) -> str:
    """A client-supplied name fit to appear in a message, or a stand-in (never echo raw input)."""
    return name if _SAFE_NAME.match(name) else "<unprintable>"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
