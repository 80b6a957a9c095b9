"""Issue 12 items 6-9: the fps density ceiling, the sampling receipt, the dry run, time windows.

Three levels: the pure planning (``plan_sampling`` with a window and a density ceiling,
``binding_limits``); the HTTP contract on the fake engine and loader (receipt fields, the final
streaming chunk, the estimate route); and the real media pipeline (fetch, probe, decode of
synthetic clips whose frames carry their own index) behind a real uvicorn server on the fake
engine, so the frames the engine gets are checked against the receipt. The real engine's token
count next to the budget's: test_features_engine.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.harness import FakeEngine, FakeLoader, ThreadedServer, fake_engine_server, probe_result
from videomodel_devtools.synthetic_videos import VideoSpec, frame_index_of, make_video
from videomodel_server.budget import FAMILIES, Family, label, video_tokens
from videomodel_server.media import SamplingBudget, plan_sampling
from videomodel_server.media.estimate import binding_limits
from videomodel_server.media.sampling import InvalidWindow

VIDEO = "https://videos.example/clip.mp4"
QWEN2 = FAMILIES[Family.QWEN2_VL]


def _post(server: ThreadedServer, body: Any, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body).encode(), timeout=60)


def _qwen_video(url: str, text: str = "what happens?", **knobs: Any) -> list[Any]:
    return [{"role": "user", "content": [{"type": "video", "video": url, **knobs}, {"type": "text", "text": text}]}]


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return dict(resp.json()["error"])


# -- pure: the plan with a window and a density ceiling -------------------------------------------

BUDGET = SamplingBudget(fps=2.0, max_frames=128, min_pixels=128 * 28 * 28, max_pixels=256 * 28 * 28, factor=28)


def test_num_frames_is_capped_by_the_fps_ceiling() -> None:
    """The issue's example: num_frames=1000 on a 5 s clip at budget fps 2 samples 10 frames, not 100."""
    probe = probe_result(seconds=5.0)
    capped = plan_sampling(probe, BUDGET, 1000, fps_ceiling=2.0)
    assert capped.nframes == 10 and capped.sample_fps == pytest.approx(2.0)
    assert plan_sampling(probe, BUDGET, 6, fps_ceiling=2.0).nframes == 6  # fewer than the ceiling: as asked
    assert plan_sampling(probe, BUDGET, 1000).nframes == 150  # without a ceiling: every source frame
    notes = binding_limits(probe, capped, BUDGET, BUDGET, 1000, 2.0)
    assert notes[0] == f"frames capped by {label('fps')}=2 as a density ceiling (5.00 s x 2)"


def test_binding_limits_name_the_limit_that_decided() -> None:
    long_clip = probe_result(seconds=100.0, width=1920, height=1080)
    plan = plan_sampling(long_clip, BUDGET)
    assert binding_limits(long_clip, plan, BUDGET, BUDGET) == [
        f"frames capped by {label('max_frames')}=128",
        f"frame size capped by {label('max_pixels')}=200704",
    ]
    small = probe_result(seconds=1.0, width=112, height=112)
    plan = plan_sampling(small, BUDGET)
    notes = binding_limits(small, plan, BUDGET, BUDGET)
    assert notes[0].startswith("frames at the minimum of 4") and notes[1].startswith("frame size raised to minPixels")
    mine = replace(BUDGET, fps=1.0)
    plan = plan_sampling(probe_result(seconds=10.0), mine)
    assert (
        binding_limits(probe_result(seconds=10.0), plan, mine, BUDGET)[0]
        == "frames set by fps=1 (the request's) (10.00 s x 1)"
    )
    totals = replace(BUDGET, total_pixels=20 * 128 * 28 * 28)
    plan = plan_sampling(long_clip, totals)
    assert binding_limits(long_clip, plan, totals, totals)[1].startswith(
        f"frame size capped by {label('total_pixels')}"
    )


def test_a_window_samples_only_that_part_with_true_indices() -> None:
    probe = probe_result(seconds=10.0, fps=30.0)
    plan = plan_sampling(probe, BUDGET, window=(2.0, 4.0))
    assert plan.nframes == 4 and plan.indices[0] == 60 and plan.indices[-1] == 120
    assert plan.target_times[0] == pytest.approx(2.0) and plan.target_times[-1] == pytest.approx(4.0)
    assert plan.metadata()["frames_indices"] == list(plan.indices)  # true indices: the engine sees true times
    assert plan.total_frames == 300 and plan.duration == 10.0  # the video's own, not the window's
    assert plan.sample_fps == pytest.approx(4 / 61 * 30)
    whole_end = plan_sampling(probe, BUDGET, window=(8.0, None))
    assert whole_end.indices[0] == 240 and whole_end.indices[-1] == 299 and whole_end.nframes == 4
    past_end = plan_sampling(probe, BUDGET, window=(6.0, 99.0))  # an end past the video is its end
    assert past_end.indices[-1] == 299 and past_end.nframes == 8


@pytest.mark.parametrize(
    ("window", "field", "needle"),
    [
        ((10.0, None), "video_start", "at or after the end of the video"),
        ((50.0, 60.0), "video_start", "at or after the end"),
        ((-1.0, None), "video_start", "non-negative"),
        ((4.0, 3.0), "video_end", "after video_start"),
        ((2.0, 2.01), "video_end", "holds 1 frame"),
        ((float("nan"), None), "video_start", "non-negative"),
    ],
)
def test_forged_windows_are_refused_naming_the_field(
    window: tuple[float | None, float | None], field: str, needle: str
) -> None:
    with pytest.raises(InvalidWindow) as info:
        plan_sampling(probe_result(seconds=10.0), BUDGET, window=window)
    assert info.value.status == 400 and info.value.param == field and needle in info.value.message


# -- HTTP contract on the fakes: receipt, final chunk, estimate --------------------------------------


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def fake_server(engine: FakeEngine) -> Iterator[ThreadedServer]:
    with fake_engine_server(engine, FakeLoader(), videos_per_prompt=2, max_seconds=20) as s:
        yield s


def test_receipt_in_a_completion(fake_server: ThreadedServer) -> None:
    client = openai.OpenAI(base_url=fake_server.url + "/v1", api_key="x", max_retries=0)
    out = client.chat.completions.create(model="tiny", messages=_qwen_video(VIDEO, nframes=6), max_tokens=2)
    report = (out.model_extra or {})["videomodel"]
    (video,) = report["media"]
    assert video["frames"] == 6 and video["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert video["grid_thw"] == [3, 4, 4]  # 6 frames / temporal patch 2; 56 px / patch 14
    assert video["budget_tokens"] == video_tokens(QWEN2, 6, 56, 56, 3.0) == 3 * 4 + 2
    assert video["engine_tokens"] == 6  # the fake engine counts one token per frame
    assert report["budget_media_tokens"] == 14 and report["engine_media_tokens"] == 6
    assert video["binding"] == ["frames set by fps (--fps)=2"]


def test_receipt_rides_on_the_final_streaming_chunk(fake_server: ThreadedServer) -> None:
    client = openai.OpenAI(base_url=fake_server.url + "/v1", api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(model="tiny", messages=_qwen_video(VIDEO), stream=True))
    carrying = [c for c in chunks if (c.model_extra or {}).get("videomodel")]
    assert carrying == [chunks[-1]] and chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["videomodel"]["media"][0]["timestamps"] == [0.0, 0.5, 1.0, 1.5]
    with_usage = list(
        client.chat.completions.create(
            model="tiny", messages=_qwen_video(VIDEO), stream=True, stream_options={"include_usage": True}
        )
    )
    carrying = [c for c in with_usage if (c.model_extra or {}).get("videomodel")]
    assert carrying == [with_usage[-1]] and with_usage[-1].usage is not None and with_usage[-1].choices == []


def test_estimate_answers_without_running_the_engine(fake_server: ThreadedServer, engine: FakeEngine) -> None:
    resp = _post(fake_server, {"messages": _qwen_video(VIDEO, nframes=8), "max_tokens": 16}, "/v1/videomodel/estimate")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "videomodel.estimate" and body["fits"] is True and body["problems"] == []
    (video,) = body["videomodel"]["media"]
    assert video["frames"] == 8 and len(video["timestamps"]) == 8 and video["budget_tokens"] == 4 * 4 + 2
    assert body["media_tokens"] == 18 and body["prompt_tokens"] == body["text_tokens"] + 18
    assert body["max_tokens"] == 16
    assert engine.started == []  # no generation


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": _qwen_video("https://videos.example/long.mp4")}, "312.4 s long"),
        ({"messages": _qwen_video(VIDEO) * 3}, "3 videos; this model accepts at most 2"),
        ({"messages": _qwen_video(VIDEO), "max_tokens": 5000}, "max_tokens is 5000"),
    ],
)
def test_estimate_says_why_a_request_does_not_fit(fake_server: ThreadedServer, body: Any, needle: str) -> None:
    resp = _post(fake_server, body, "/v1/videomodel/estimate")
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["fits"] is False and any(needle in p for p in answer["problems"]), answer["problems"]


@pytest.mark.parametrize(
    ("knobs", "param"),
    [
        ({"video_start": -1}, "messages[0].content[0].video_start"),
        ({"video_start": 5, "video_end": 2}, "messages[0].content[0].video_end"),
        ({"video_start": 3, "video_end": 3}, "messages[0].content[0].video_end"),
        ({"video_start": 20}, "messages[0].content[0].video_start"),
        ({"video_end": -0.5}, "messages[0].content[0].video_end"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/videomodel/estimate"])
def test_hostile_windows_are_400_naming_the_field(
    fake_server: ThreadedServer, knobs: dict[str, Any], param: str, path: str
) -> None:
    err = _error(_post(fake_server, {"messages": _qwen_video(VIDEO, **knobs)}, path), 400)
    assert err["param"] == param


def test_estimate_is_admitted_like_a_completion(engine: FakeEngine) -> None:
    """An estimate fetches and probes: it takes an admission slot, and is refused (503) when none is free."""
    release = threading.Event()
    loader = FakeLoader(hold=release)
    with fake_engine_server(engine, loader, max_concurrent_requests=1, max_queued_requests=0) as s:
        holder = threading.Thread(target=_post, args=(s, {"messages": _qwen_video(VIDEO)}, "/v1/videomodel/estimate"))
        holder.start()
        try:
            deadline = time.monotonic() + 10
            while not loader.calls and time.monotonic() < deadline:
                time.sleep(0.01)
            err = _error(_post(s, {"messages": [{"role": "user", "content": "hi"}]}, "/v1/videomodel/estimate"), 503)
            assert err["code"] == "queue_full"
        finally:
            release.set()
            holder.join(timeout=10)
        resp = _post(s, {"messages": [{"role": "user", "content": "hi"}]}, "/v1/videomodel/estimate")
        assert resp.status_code == 200 and resp.json()["fits"] is True and resp.json()["media_tokens"] == 0


# -- the real media pipeline behind a real server (fake engine) ---------------------------------------

CLIP = VideoSpec(width=320, height=240, fps=10, seconds=5.0)
LONG = VideoSpec(width=320, height=240, fps=10, seconds=12.0)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features-media")
    (root / "clip.mp4").write_bytes(make_video(CLIP).read_bytes())
    (root / "long.mp4").write_bytes(make_video(LONG).read_bytes())
    return root


@pytest.fixture(scope="module")
def real_server(media_dir: Path) -> Iterator[tuple[ThreadedServer, FakeEngine]]:
    engine = FakeEngine(words=("ok",))
    settings = dict(max_seconds=20, fps=2, max_frames=64, allowed_local_media_path=media_dir, decode_workers=1)
    with fake_engine_server(engine, None, **settings) as s:
        yield s, engine


def _url(media_dir: Path, name: str) -> str:
    return (media_dir / name).as_uri()


def test_density_ceiling_end_to_end(real_server: tuple[ThreadedServer, FakeEngine], media_dir: Path) -> None:
    """num_frames=1000 on a 5 s clip at budget fps 2: 10 frames, and the clamps say why."""
    server, engine = real_server
    body = {"messages": _qwen_video(_url(media_dir, "clip.mp4")), "media_io_kwargs": {"video": {"num_frames": 1000}}}
    resp = _post(server, body)
    assert resp.status_code == 200, resp.text
    report = resp.json()["videomodel"]
    assert report["clamped"] == [
        "num_frames=1000->40",
        "num_frames=40->10 (fps (--fps)=2 as a density ceiling (5.00 s x 2))",
    ]
    assert "num_frames=40->10" in resp.headers["x-videomodel-clamped"]
    (video,) = report["media"]
    assert video["frames"] == 10 and engine.inputs[-1].videos[0].frames.shape[0] == 10
    assert video["binding"][0] == "frames capped by fps (--fps)=2 as a density ceiling (5.00 s x 2)"


def test_window_end_to_end_true_timestamps(real_server: tuple[ThreadedServer, FakeEngine], media_dir: Path) -> None:
    server, engine = real_server
    resp = _post(server, {"messages": _qwen_video(_url(media_dir, "long.mp4"), video_start=6.0, video_end=9.0)})
    assert resp.status_code == 200, resp.text
    (video,) = resp.json()["videomodel"]["media"]
    assert video["window_seconds"] == [6.0, 9.0] and video["frames"] == 6
    assert video["timestamps"][0] == pytest.approx(6.0) and video["timestamps"][-1] == pytest.approx(9.0)
    sent = engine.inputs[-1].videos[0]
    # The frames are the ones at those times (each frame draws its own index), and vLLM's metadata
    # carries the true indices: M-RoPE / Qwen3-VL labels see 6.0 s..9.0 s, not 0..3 s.
    shown = [frame_index_of(f) for f in sent.frames]
    assert shown == sent.metadata["frames_indices"] == [round(t * 10) for t in video["timestamps"]]
    assert sent.metadata["total_num_frames"] == 120
    # priced by the window: 6 frames (3 s x 2 fps), not the 24 of the whole 12 s
    assert video["budget_tokens"] == video_tokens(QWEN2, 6, video["height"], video["width"], 9.0)


def test_window_outside_the_video_is_400(real_server: tuple[ThreadedServer, FakeEngine], media_dir: Path) -> None:
    server, _ = real_server
    for path in ("/v1/chat/completions", "/v1/videomodel/estimate"):
        resp = _post(server, {"messages": _qwen_video(_url(media_dir, "clip.mp4"), video_start=7.5)}, path)
        err = _error(resp, 400)
        assert err["param"] == "messages[0].content[0].video_start" and err["code"] == "invalid_video_window"
        assert "at or after the end of the video (5.00 s long)" in err["message"]


def test_window_end_past_the_video_is_its_end(real_server: tuple[ThreadedServer, FakeEngine], media_dir: Path) -> None:
    server, _ = real_server
    resp = _post(server, {"messages": _qwen_video(_url(media_dir, "clip.mp4"), video_start=3, video_end=15)})
    assert resp.status_code == 200, resp.text
    report = resp.json()["videomodel"]
    assert (
        report["media"][0]["window_seconds"] == [3.0, 5.0]
        and "video_end=15->5.00 (the video's end)" in report["clamped"]
    )


def test_estimate_matches_what_the_completion_samples(
    real_server: tuple[ThreadedServer, FakeEngine], media_dir: Path
) -> None:
    server, engine = real_server
    body = {"messages": _qwen_video(_url(media_dir, "long.mp4"), video_start=1.0, video_end=8.0), "max_tokens": 4}
    started = len(engine.started)
    estimate = _post(server, body, "/v1/videomodel/estimate").json()
    assert len(engine.started) == started and estimate["fits"] is True
    assert "decode" not in estimate["videomodel"]["timings_ms"] and "probe" in estimate["videomodel"]["timings_ms"]
    done = _post(server, body).json()["videomodel"]
    keys = ("frames", "timestamps", "height", "width", "grid_thw", "budget_tokens", "binding", "window_seconds")
    assert {k: estimate["videomodel"]["media"][0][k] for k in keys} == {k: done["media"][0][k] for k in keys}
    assert estimate["media_tokens"] == done["budget_media_tokens"]


def test_estimate_of_a_video_over_the_budget(media_dir: Path) -> None:
    engine = FakeEngine()
    with fake_engine_server(engine, None, max_seconds=10, allowed_local_media_path=media_dir, decode_workers=1) as s:
        answer = _post(s, {"messages": _qwen_video(_url(media_dir, "long.mp4"))}, "/v1/videomodel/estimate").json()
    assert answer["fits"] is False
    assert answer["problems"] == [
        "messages[0].content[0]: video is 12.0 s long; this model accepts at most 10 s (maxSeconds (--max-seconds))"
    ]


def test_qwen3_labels_are_priced_from_the_true_times() -> None:
    """A window across 10 s: Qwen3-VL's labels grow a digit there; the receipt prices the real labels."""
    geometry = FAMILIES[Family.QWEN3_VL]
    times = [8.0, 8.5, 9.0, 9.5, 10.0, 10.5]  # groups at 8.25, 9.25, 10.25 s: labels of 6, 6 and 7 tokens
    exact = video_tokens(geometry, 6, 64, 64, 10.5, frame_times=times)
    assert exact == 2 + 3 * (4 + 2) + 6 + 6 + 7
    assert video_tokens(FAMILIES[Family.QWEN2_VL], 6, 56, 56, 10.5, frame_times=times) == 3 * 4 + 2


def test_response_format_maps_to_vllm_structured_outputs() -> None:
    from videomodel_server.engine import structured_outputs_params
    from videomodel_server.jobs import StructuredOutput

    assert structured_outputs_params(None) is None
    assert structured_outputs_params(StructuredOutput("json_object")).json_object is True
    params = structured_outputs_params(StructuredOutput("json_schema", '{"type":"object"}'))
    assert params.json == '{"type":"object"}' and params.json_object is None
