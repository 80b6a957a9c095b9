"""Issue 12 items 5-9 against the real engine, on every family: the receipt's budget price equals the
engine's count (whole clips, time windows, clamped frame counts), the dry run predicts the prompt
the completion then has, and structured output constrains the text.

The servers are conftest's ``family_server`` (tiny checkpoints, CPU), one family at a time.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.harness import data_url
from tests.harness.process import ServerProcess
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.budget import Family

pytestmark = pytest.mark.engine


SHORT = VideoSpec(width=320, height=240, fps=10, seconds=5.0)
LONG = VideoSpec(width=320, height=240, fps=10, seconds=12.0)
PROMPT = "Describe the video."


def _client(proc: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _messages(spec: VideoSpec, **knobs: Any) -> list[Any]:
    part = {"type": "video", "video": data_url(make_video(spec)), **knobs}
    return [{"role": "user", "content": [part, {"type": "text", "text": PROMPT}]}]


def _ask(proc: ServerProcess, messages: list[Any], **kw: Any) -> Any:
    kw.setdefault("max_tokens", 2)
    return _client(proc).chat.completions.create(model="tiny", messages=messages, **kw)


def test_receipt_price_equals_the_engine_count(family_server: tuple[Family, ServerProcess]) -> None:
    _, proc = family_server
    out = _ask(proc, _messages(LONG))
    report = (out.model_extra or {})["videomodel"]
    (video,) = report["media"]
    assert video["frames"] == 12 and video["binding"][0] == "frames capped by maxFrames (--max-frames)=12"
    assert video["engine_tokens"] == video["budget_tokens"]
    assert len(video["timestamps"]) == 12 and video["timestamps"][0] == 0.0 and video["timestamps"][-1] > 11.5
    assert video["grid_thw"][0] == 6


def test_window_true_times_priced_by_the_window(family_server: tuple[Family, ServerProcess]) -> None:
    """6-11 s of a 12 s clip: 10 frames at their true times (Qwen3-VL labels cross 10 s), priced exactly."""
    _, proc = family_server
    out = _ask(proc, _messages(LONG, video_start=6.0, video_end=11.0))
    (video,) = (out.model_extra or {})["videomodel"]["media"]
    assert video["window_seconds"] == [6.0, 11.0] and video["frames"] == 10
    assert video["timestamps"][0] == pytest.approx(6.0) and video["timestamps"][-1] == pytest.approx(11.0)
    assert video["engine_tokens"] == video["budget_tokens"]


def test_density_ceiling_on_the_engine(family_server: tuple[Family, ServerProcess]) -> None:
    _, proc = family_server
    out = _ask(proc, _messages(SHORT), extra_body={"media_io_kwargs": {"video": {"num_frames": 1000}}})
    report = (out.model_extra or {})["videomodel"]
    assert (
        report["media"][0]["frames"] == 10
        and report["media"][0]["engine_tokens"] == report["media"][0]["budget_tokens"]
    )
    assert any("density ceiling" in note for note in report["clamped"])


def test_estimate_predicts_the_completion(family_server: tuple[Family, ServerProcess]) -> None:
    _, proc = family_server
    messages = _messages(LONG, video_start=2.5, video_end=9.0)
    estimate = httpx.post(
        proc.url + "/v1/videomodel/estimate", json={"messages": messages, "max_tokens": 2}, timeout=120
    ).json()
    assert estimate["fits"] is True, estimate
    out = _ask(proc, messages)
    assert out.usage is not None and estimate["prompt_tokens"] == out.usage.prompt_tokens
    done = (out.model_extra or {})["videomodel"]["media"][0]
    assert estimate["videomodel"]["media"][0]["timestamps"] == done["timestamps"]


def test_streaming_final_chunk_carries_the_receipt(family_server: tuple[Family, ServerProcess]) -> None:
    _, proc = family_server
    chunks = list(_ask(proc, _messages(SHORT), stream=True, max_tokens=3))
    report = (chunks[-1].model_extra or {}).get("videomodel")
    assert report is not None and chunks[-1].choices[0].finish_reason is not None
    assert report["media"][0]["engine_tokens"] == report["media"][0]["budget_tokens"]


def test_json_object_response_format(family_server: tuple[Family, ServerProcess]) -> None:
    """A tiny random checkpoint writes noise; constrained, the noise is JSON (or cut off at max_tokens)."""
    _, proc = family_server
    schema = {"type": "object", "properties": {"event": {"type": "string"}}, "required": ["event"]}
    out = _ask(
        proc,
        _messages(SHORT),
        max_tokens=32,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "events", "schema": schema}},
    )
    text = out.choices[0].message.content or ""
    if out.choices[0].finish_reason == "stop":
        assert "event" in json.loads(text)
    else:
        assert text.lstrip().startswith("{")
