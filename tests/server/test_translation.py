"""Pure checks of a chat request (api.chat.translation): limits, clamping (never past the budget), sampling."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.harness import TRANSLATION_LIMITS as LIMITS
from videomodel_server.api.chat.protocol import ChatCompletionRequest, ProcessorKwargs, QwenVideoPart, VideoIoKwargs
from videomodel_server.api.chat.translation import FRAME_SEQUENCE_FIELDS, build
from videomodel_server.budget.knobs import KNOB_NAMES, knob_fields
from videomodel_server.errors import InvalidRequest, OverBudget
from videomodel_server.jobs import MediaRef, StructuredOutput


def _req(content: Any = "hi", **kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": content}], **kw})


def _video(**kw: Any) -> list[Any]:
    return [{"type": "video", "video": "https://x/v.mp4", **kw}]


def test_budget_defaults_without_knobs() -> None:
    job = build(_req(_video()), LIMITS)
    (video,) = job.videos
    assert video.options is not None
    assert (video.options.fps, video.options.max_frames, video.options.max_pixels) == (2, 64, 200_704)
    assert job.clamped == () and job.sampling.max_tokens == 256


def test_lower_knobs_are_honoured_higher_ones_clamped_and_reported() -> None:
    job = build(_req(_video(fps=1, max_pixels=50_176)), LIMITS)
    options = job.videos[0].options
    assert options is not None and (options.fps, options.max_pixels) == (1, 50_176) and job.clamped == ()
    job = build(_req(_video(fps=8, nframes=None, max_pixels=10**7, min_pixels=150_000)), LIMITS)
    options = job.videos[0].options
    assert options is not None and (options.fps, options.max_pixels, options.min_pixels) == (2, 200_704, 100_352)
    assert job.clamped == ("fps=8->2", "max_pixels=10000000->200704", "min_pixels=150000->100352")


def test_the_wire_forms_name_the_declared_knobs() -> None:
    """Every sampling field of the three wire forms is a budget.knobs.SamplingKnobs field, bound as declared there."""
    assert set(ProcessorKwargs.model_fields) <= KNOB_NAMES
    assert set(VideoIoKwargs.model_fields) - KNOB_NAMES == set(FRAME_SEQUENCE_FIELDS)
    assert {"fps", "num_frames", "video_start", "video_end"} <= set(QwenVideoPart.model_fields)
    assert QwenVideoPart.model_fields["num_frames"].alias == "nframes"
    for f in knob_fields():
        for model in (ProcessorKwargs, VideoIoKwargs, QwenVideoPart):
            if f.name in model.model_fields:
                assert model.model_fields[f.name].description == f.metadata["help"]
    with pytest.raises(ValidationError):
        ProcessorKwargs.model_validate({"num_frames": 1})


def test_num_frames_is_even_and_within_the_plan() -> None:
    job = build(_req(_video(nframes=99)), LIMITS)
    assert job.videos[0].options is not None and job.videos[0].options.num_frames == 40
    assert job.clamped == ("num_frames=99->98", "num_frames=98->40")


@given(
    fps=st.floats(0.01, 100),
    max_pixels=st.integers(1, 10**8),
    frames=st.integers(2, 10_000),
    total=st.integers(1, 10**9),
)
def test_clamping_never_exceeds_the_budget(fps: float, max_pixels: int, frames: int, total: int) -> None:
    kwargs = {"mm_processor_kwargs": {"max_pixels": max_pixels, "total_pixels": total, "max_frames": frames}}
    job = build(_req(_video(fps=fps), **kwargs), LIMITS)
    o = job.videos[0].options
    assert o is not None
    assert o.fps <= LIMITS.budget.fps and o.max_pixels <= LIMITS.max_pixels and o.max_frames <= LIMITS.budget.max_frames
    assert o.min_pixels <= LIMITS.min_pixels


def test_media_order_kinds_and_positions() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
        {"type": "text", "text": "and"},
        {"type": "video_url", "video_url": {"url": "https://x/a.mp4"}},
    ]
    job = build(_req(content), LIMITS)
    assert [(m.kind, m.index, m.where) for m in job.media] == [
        ("image", 0, "messages[0].content[0]"),
        ("video", 0, "messages[0].content[2]"),
    ]
    assert isinstance(job.turns[0].parts[0], MediaRef) and job.turns[0].parts[1] == "and"


@pytest.mark.parametrize(
    ("request_kw", "error", "needle"),
    [
        ({"content": _video() * 3}, OverBudget, "3 videos"),
        ({"content": [{"type": "image", "image": "https://x/i.png"}] * 2}, OverBudget, "2 images"),
        ({"max_tokens": 257}, OverBudget, "at most 256"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, InvalidRequest, "differ"),
        ({"n": 5}, OverBudget, "n is 5"),
        ({"logprobs": True, "top_logprobs": 21}, OverBudget, "top_logprobs is 21"),
        ({"top_logprobs": 2}, InvalidRequest, "requires logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, OverBudget, "5 sequences"),
        ({"response_format": {"type": "grammar"}}, InvalidRequest, "response_format.type must be"),
        ({"content": _video(fps=1, nframes=4)}, InvalidRequest, "not both"),
        ({"content": _video(min_pixels=50_000, max_pixels=40_000)}, InvalidRequest, "above max_pixels"),
    ],
)
def test_refusals_name_the_limit(request_kw: dict[str, Any], error: type[Exception], needle: str) -> None:
    content = request_kw.pop("content", "hi")
    with pytest.raises(error) as info:
        build(_req(content, **request_kw), LIMITS)
    assert needle in str(info.value)


def test_media_only_in_user_messages_and_no_tools() -> None:
    bad = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "assistant", "content": [{"type": "video", "video": "https://x"}]}]}
    )
    with pytest.raises(InvalidRequest, match="only allowed in user messages"):
        build(bad, LIMITS)
    tool = ChatCompletionRequest.model_validate({"messages": [{"role": "tool", "content": "x"}]})
    with pytest.raises(InvalidRequest, match="tool_call_id is missing"):
        build(tool, LIMITS)


def test_text_over_the_byte_bound_is_refused_naming_the_limit_and_the_flag() -> None:
    limit = LIMITS.max_text_bytes
    build(_req("x" * limit), LIMITS)
    with pytest.raises(OverBudget, match=r"at most 2048 bytes of text .*--max-prompt-tokens") as info:
        build(_req("x" * (limit + 1)), LIMITS)
    assert info.value.param == "messages" and info.value.status == 400
    # Counted over every message and text part, in UTF-8 bytes (é is two).
    parts = [{"type": "text", "text": "é" * (limit // 4)}] * 2
    build(_req([{"type": "text", "text": "é" * (limit // 4)}]), LIMITS)
    with pytest.raises(OverBudget, match=f"is {limit + 2} bytes"):
        build(_req([*parts, {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]), LIMITS)


def test_huge_text_is_refused_by_its_length_alone() -> None:
    with pytest.raises(OverBudget, match="at least 50000000 bytes"):
        build(_req("x" * 50_000_000), LIMITS)


# -- time windows (issue 12 item 9) ---------------------------------------------------------------


def test_a_window_reaches_the_video_options() -> None:
    (video,) = build(_req(_video(video_start=1.5, video_end=4)), LIMITS).videos
    assert video.options is not None and video.options.window == (1.5, 4.0)
    (video,) = build(_req(_video(video_end=4)), LIMITS).videos
    assert video.options is not None and video.options.window == (None, 4.0)
    (video,) = build(_req(_video()), LIMITS).videos
    assert video.options is not None and video.options.window is None


@pytest.mark.parametrize(
    ("window", "field", "needle"),
    [
        ({"video_start": -0.1}, "video_start", "non-negative"),
        ({"video_end": -3}, "video_end", "non-negative"),
        ({"video_start": float("nan")}, "video_start", "non-negative"),
        ({"video_end": float("inf")}, "video_end", "non-negative"),
        ({"video_start": 4, "video_end": 2}, "video_end", "must be after video_start"),
        ({"video_start": 2, "video_end": 2}, "video_end", "must be after video_start"),
        ({"video_start": 60}, "video_start", "no video this model accepts is that long"),
    ],
)
def test_hostile_windows_are_refused_naming_the_field(window: dict[str, float], field: str, needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        build(_req(_video(**window)), LIMITS)
    assert info.value.param == f"messages[0].content[0].{field}" and needle in info.value.message
    assert info.value.status == 400


# -- structured output (issue 12 item 5) ----------------------------------------------------------


def test_response_formats_become_the_engine_constraint() -> None:
    assert build(_req(response_format={"type": "text"}), LIMITS).sampling.structured is None
    assert build(_req(), LIMITS).sampling.structured is None
    structured = build(_req(response_format={"type": "json_object"}), LIMITS).sampling.structured
    assert structured == StructuredOutput("json_object")
    schema = {"type": "object", "properties": {"event": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "e", "schema": schema, "strict": True}}
    structured = build(_req(response_format=fmt), LIMITS).sampling.structured
    assert structured is not None and structured.kind == "json_schema" and json.loads(structured.schema or "") == schema


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(
    ("fmt", "error", "needle"),
    [
        ({"type": "json_schema"}, InvalidRequest, "must be a JSON Schema object"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": "not an object"}}, InvalidRequest, "object"),
        ({"type": "json_schema", "json_schema": {"schema": _nested(40)}}, OverBudget, "nested deeper than 32"),
        (
            {"type": "json_schema", "json_schema": {"schema": {"enum": ["x" * 100] * 400}}},
            OverBudget,
            "at most 32768 are accepted",
        ),
        ({"type": "json_schema", "json_schema": {"schema": {"maximum": float("nan")}}}, InvalidRequest, "NaN"),
    ],
)
def test_hostile_schemas_are_refused(fmt: dict[str, Any], error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        build(_req(response_format=fmt), LIMITS)
    assert needle in str(info.value) and getattr(info.value, "param", "").startswith("response_format")
