"""Issue 12 item 1: pre-extracted frame sequences (``data:video/jpeg;base64,<frame>,<frame>,...``).

Three levels, as test_features.py: the pure checks of the metadata against the budget
(``plan_frames``); the real media pipeline (JPEGs decoded in the pool) behind a real server on the
fake engine, so the frames and metadata the engine gets are checked against what was sent, and the
hostile rows (forged indices, JPEGs over the pixel cap, too many JPEGs, a duration over
maxSeconds, garbage between JPEGs) are each a 400 naming the field with the server still serving;
and the real engine on the tiny checkpoints of every family, whose prompt token count must equal
the budget module's price of the frames at the client's timestamps.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.harness import FAMILY_BUDGETS, FakeEngine, ServerProcess, ThreadedServer, fake_engine_server, server_settings
from videomodel_devtools.synthetic_videos import frame_index_of, frame_pixels
from videomodel_server.budget import FAMILIES, Family, smart_resize, video_tokens
from videomodel_server.budget.sequence import FrameSequenceInfo
from videomodel_server.media import MediaLimits, SamplingBudget
from videomodel_server.media.errors import FramesOverBudget, InvalidFrames
from videomodel_server.media.frames import is_frame_sequence, plan_frames

QWEN2 = FAMILIES[Family.QWEN2_VL]
IO = "media_io_kwargs.video"


def jpeg(index: int, width: int = 320, height: int = 240, quality: int = 95) -> bytes:
    """One frame that draws its own index (``frame_index_of`` reads it back), as JPEG bytes."""
    out = io.BytesIO()
    Image.fromarray(frame_pixels(index, width, height)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def frames_url(parts: list[bytes]) -> str:
    """vLLM's wire form: each frame's base64, joined by commas."""
    return "data:video/jpeg;base64," + ",".join(base64.b64encode(p).decode() for p in parts)


def body(url: str, text: str = "what happens?", **video: Any) -> dict[str, Any]:
    part = {"type": "video_url", "video_url": {"url": url}}
    out: dict[str, Any] = {"messages": [{"role": "user", "content": [part, {"type": "text", "text": text}]}]}
    if video:
        out["media_io_kwargs"] = {"video": video}
    return out


# -- pure: the metadata against the budget ----------------------------------------------------------

BUDGET = SamplingBudget(
    fps=2.0, max_frames=16, min_pixels=4 * 28 * 28, max_pixels=48 * 28 * 28, factor=28, max_seconds=20
)
LIMITS = MediaLimits(max_seconds=20)


def test_defaults_are_vllms() -> None:
    plan = plan_frames(FrameSequenceInfo(), 4, BUDGET, LIMITS)
    assert plan.indices == (0, 1, 2, 3) and plan.fps == 1.0 and plan.total_frames == 4 and plan.duration == 4.0
    assert plan.metadata() == {
        "fps": 1.0,
        "duration": 4.0,
        "total_num_frames": 4,
        "frames_indices": [0, 1, 2, 3],
        "do_sample_frames": False,
    }


def test_client_timestamps_and_time_step() -> None:
    meta = FrameSequenceInfo(fps=30, frames_indices=(0, 45, 90, 135), total_num_frames=150)
    plan = plan_frames(meta, 4, BUDGET, LIMITS)
    assert plan.timestamps == (0.0, 1.5, 3.0, 4.5) and plan.duration == 5.0
    assert plan.sample_fps == pytest.approx(4 / 136 * 30)


def test_odd_count_is_padded_like_vllm() -> None:
    plan = plan_frames(FrameSequenceInfo(fps=10, frames_indices=(0, 5, 10)), 3, BUDGET, LIMITS)
    assert plan.positions == (0, 1, 2, 2) and plan.indices == (0, 5, 10, 10)
    assert plan.clamped == ("frames=3->4 (the last frame repeated: frames are merged in pairs)",)


def test_do_sample_frames_samples_like_a_video() -> None:
    """Every frame of a 10 s 30 fps video: sampled at the budget's 2 fps, capped by maxFrames=16."""
    plan = plan_frames(FrameSequenceInfo(fps=30, do_sample_frames=True), 300, BUDGET, LIMITS)
    assert plan.nframes == 16 and plan.sampled
    assert plan.positions == plan.indices and plan.indices[0] == 0 and plan.indices[-1] == 299


@pytest.mark.parametrize(
    ("meta", "sent", "error", "field", "needle"),
    [
        (FrameSequenceInfo(frames_indices=(0, 5, 3, 9)), 4, InvalidFrames, "frames_indices", "strictly increasing"),
        (FrameSequenceInfo(frames_indices=(0, 1, 1, 2)), 4, InvalidFrames, "frames_indices", "strictly increasing"),
        (FrameSequenceInfo(frames_indices=(-1, 0)), 2, InvalidFrames, "frames_indices", "negative"),
        (FrameSequenceInfo(frames_indices=(0, 10**400)), 2, InvalidFrames, "frames_indices", "beyond any video"),
        (FrameSequenceInfo(total_num_frames=10**400), 2, InvalidFrames, "total_num_frames", "at most"),
        (FrameSequenceInfo(frames_indices=(0, 1, 2)), 4, InvalidFrames, "frames_indices",
         "3 indices but the sequence holds 4"),
        (FrameSequenceInfo(frames_indices=(0, 10, 20, 99), total_num_frames=50), 4, InvalidFrames, "frames_indices",
         "beyond the video"),
        (FrameSequenceInfo(total_num_frames=2), 4, InvalidFrames, "total_num_frames", "less than the 4 frames"),
        (FrameSequenceInfo(fps=1, duration=60), 4, InvalidFrames, "duration", "contradicts"),
        (FrameSequenceInfo(fps=1, total_num_frames=25, duration=25), 4, FramesOverBudget, "duration", "at most 20 s"),
        (FrameSequenceInfo(fps=1, frames_indices=(0, 1, 2, 24)), 4, FramesOverBudget, "total_num_frames",
         "at most 20 s"),
        (FrameSequenceInfo(fps=1000), 4, FramesOverBudget, "fps", "max_source_fps"),
        (FrameSequenceInfo(do_sample_frames=True, frames_indices=(0, 2, 4, 6)), 4, InvalidFrames, "do_sample_frames",
         "every frame of the video"),
    ],
)  # fmt: skip
def test_inconsistent_metadata_names_the_field(
    meta: FrameSequenceInfo, sent: int, error: type[Exception], field: str, needle: str
) -> None:
    with pytest.raises(error) as info:
        plan_frames(meta, sent, BUDGET, LIMITS)
    assert info.value.status == 400 and info.value.param == f"{IO}.{field}"  # type: ignore[attr-defined]
    assert needle in info.value.message  # type: ignore[attr-defined]


def test_more_frames_than_the_budget_priced() -> None:
    """maxFrames 16 and 20 s at 2 fps: 16 frames priced; 17 JPEGs (18 once padded) are refused."""
    assert plan_frames(FrameSequenceInfo(), 16, BUDGET, LIMITS).nframes == 16
    with pytest.raises(FramesOverBudget) as info:
        plan_frames(FrameSequenceInfo(), 17, BUDGET, LIMITS)
    assert info.value.param == "video_url" and "at most 16 per video (maxFrames (--max-frames) 16" in info.value.message


def test_only_jpeg_data_urls_are_sequences() -> None:
    assert is_frame_sequence("data:video/jpeg;base64,AAAA,BBBB")
    assert is_frame_sequence("DATA:Video/JPEG;base64,AAAA")
    assert not is_frame_sequence("data:video/mp4;base64,AAAA")
    assert not is_frame_sequence("https://example.com/video/jpeg")


# -- the real pipeline behind a real server (fake engine) ---------------------------------------------


@pytest.fixture(scope="module")
def frames_server() -> Iterator[tuple[ThreadedServer, FakeEngine]]:
    engine = FakeEngine(words=("ok",))
    with fake_engine_server(engine, max_seconds=20, fps=2, max_frames=8, decode_workers=1) as server:
        yield server, engine


def counter(server: ThreadedServer, name: str) -> float:
    """A counter's value from ``/metrics`` (0 when it has no sample yet)."""
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _post(server: ThreadedServer, payload: Any, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(payload).encode(), timeout=60)


def test_frames_reach_the_engine_with_the_clients_timestamps(frames_server: tuple[ThreadedServer, FakeEngine]) -> None:
    server, engine = frames_server
    before = counter(server, "videomodel_frame_sequence_videos_total")
    indices = [0, 30, 60, 90, 120, 150]
    resp = _post(
        server,
        body(frames_url([jpeg(i) for i in indices]), fps=30, frames_indices=indices, total_num_frames=180),
    )
    assert resp.status_code == 200, resp.text
    (video,) = resp.json()["videomodel"]["media"]
    assert video["source"] == "frames" and video["frames"] == 6
    assert video["timestamps"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert video["duration_seconds"] == 6.0 and video["binding"][0] == "frames set by the client (6 JPEG frames)"
    # resized like any video: smart_resize under the budget's per-frame cap
    resolved = server_settings().budget.resolved(QWEN2)
    assert resolved.min_pixels is not None and resolved.max_pixels is not None
    assert (video["height"], video["width"]) == smart_resize(240, 320, 28, resolved.min_pixels, resolved.max_pixels)
    assert video["budget_tokens"] == video_tokens(QWEN2, 6, video["height"], video["width"], 6.0)
    sent = engine.inputs[-1].videos[0]
    assert sent.frames.shape == (6, video["height"], video["width"], 3) and sent.frames.dtype == np.uint8
    assert [frame_index_of(f) for f in sent.frames] == indices
    assert sent.metadata == {
        "fps": 30.0,
        "duration": 6.0,
        "total_num_frames": 180,
        "frames_indices": indices,
        "do_sample_frames": False,
    }
    assert counter(server, "videomodel_frame_sequence_videos_total") == before + 1


def test_do_sample_frames_decodes_only_the_samples(frames_server: tuple[ThreadedServer, FakeEngine]) -> None:
    """40 frames of a 4 s 10 fps video, do_sample_frames: 8 frames (2 fps), the same indices as a video's."""
    server, engine = frames_server
    resp = _post(server, body(frames_url([jpeg(i, 64, 48) for i in range(40)]), fps=10, do_sample_frames=True))
    assert resp.status_code == 200, resp.text
    (video,) = resp.json()["videomodel"]["media"]
    sent = engine.inputs[-1].videos[0]
    assert video["frames"] == 8 == sent.frames.shape[0]
    assert [frame_index_of(f) for f in sent.frames] == sent.metadata["frames_indices"]
    assert sent.metadata["frames_indices"][0] == 0 and sent.metadata["frames_indices"][-1] == 39


def test_estimate_reads_headers_only(frames_server: tuple[ThreadedServer, FakeEngine]) -> None:
    server, _ = frames_server
    payload = body(frames_url([jpeg(i) for i in range(4)]), fps=2)
    estimate = _post(server, payload, "/v1/videomodel/estimate").json()
    assert estimate["fits"] is True, estimate
    (video,) = estimate["videomodel"]["media"]
    assert video["source"] == "frames" and video["timestamps"] == [0.0, 0.5, 1.0, 1.5]


def _garbage_between() -> str:
    parts = [base64.b64encode(jpeg(i)).decode() for i in range(4)]
    parts.insert(2, base64.b64encode(b"<html>not a frame</html>").decode())
    return "data:video/jpeg;base64," + ",".join(parts)


def _not_base64_between() -> str:
    parts = [base64.b64encode(jpeg(i)).decode() for i in range(4)]
    parts.insert(1, "!!not base64!!")
    return "data:video/jpeg;base64," + ",".join(parts)


def _corrupt_jpeg_between() -> str:
    bad = jpeg(9)[:200]  # a JPEG header, then nothing
    return frames_url([jpeg(0), bad, jpeg(2), jpeg(3)])


def _over_pixels() -> str:
    """Two 8192x4096 JPEGs (33.6 megapixels each; the source cap is 7680x4320 = 33.2)."""
    big = io.BytesIO()
    Image.new("RGB", (8192, 4096), (90, 90, 90)).save(big, format="JPEG", quality=10)
    return frames_url([big.getvalue(), big.getvalue()])


def _mixed_sizes() -> str:
    return frames_url([jpeg(0), jpeg(1), jpeg(2, 160, 120), jpeg(3)])


HOSTILE: list[tuple[str, Callable[[], dict[str, Any]], str, str]] = [
    ("decreasing-indices", lambda: body(frames_url([jpeg(i) for i in range(4)]), frames_indices=[0, 9, 5, 12]),
     f"{IO}.frames_indices", "strictly increasing"),
    ("indices-beyond-total", lambda: body(frames_url([jpeg(i) for i in range(4)]), fps=10,
                                          frames_indices=[0, 10, 20, 500], total_num_frames=100),
     f"{IO}.frames_indices", "beyond the video"),
    ("indices-count-mismatch", lambda: body(frames_url([jpeg(i) for i in range(4)]), frames_indices=[0, 1]),
     f"{IO}.frames_indices", "2 indices but the sequence holds 4"),
    ("over-pixel-cap", lambda: body(_over_pixels()), "messages[0].content[0].video_url", "max_source_pixels"),
    ("more-jpegs-than-max-frames", lambda: body(frames_url([jpeg(i, 32, 32) for i in range(10)])),
     "messages[0].content[0].video_url", "at most 8 per video (maxFrames (--max-frames) 8"),
    ("duration-over-max-seconds", lambda: body(frames_url([jpeg(i) for i in range(4)]), fps=1,
                                               total_num_frames=30, duration=30),
     f"{IO}.duration", "at most 20 s (maxSeconds (--max-seconds))"),
    ("duration-contradicts-frames", lambda: body(frames_url([jpeg(i) for i in range(4)]), fps=1, duration=19),
     f"{IO}.duration", "contradicts"),
    ("garbage-between-jpegs", lambda: body(_garbage_between()), "messages[0].content[0].video_url",
     "frame 2 of the sequence is not a JPEG"),
    ("not-base64-between-jpegs", lambda: body(_not_base64_between()), "messages[0].content[0].video_url",
     "frame 1 of the sequence is not valid base64"),
    ("truncated-jpeg-between", lambda: body(_corrupt_jpeg_between()), "messages[0].content[0].video_url",
     "frame 1 of the sequence is corrupt or truncated"),
    ("mixed-frame-sizes", lambda: body(_mixed_sizes()), "messages[0].content[0].video_url",
     "every frame must have the same size"),
    ("sequence-fields-without-a-sequence",
     lambda: {**body("https://videos.example/clip.mp4"), "media_io_kwargs": {"video": {"frames_indices": [0, 1]}}},
     f"{IO}.frames_indices", "the request has none"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "param", "needle"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_sequences_are_400_naming_the_field(
    frames_server: tuple[ThreadedServer, FakeEngine], name: str, build: Callable[[], Any], param: str, needle: str
) -> None:
    server, _ = frames_server
    resp = _post(server, build())
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and needle in error["message"], error
    assert "/9j/" not in error["message"]  # no JPEG base64 echoed
    # ... and the server still serves
    ok = _post(server, body(frames_url([jpeg(0), jpeg(1)])))
    assert ok.status_code == 200, ok.text


# -- the real engine: the engine's count equals the budget's price, every family -----------------------


@pytest.mark.engine
@pytest.mark.parametrize(("count", "indices"), [(8, [0, 40, 80, 120, 160, 200, 240, 280]), (5, [3, 70, 140, 200, 290])])
def test_engine_count_equals_the_budget_price(
    family_server: tuple[Family, ServerProcess], count: int, indices: list[int]
) -> None:
    """Frames from a 10 s 30 fps source (Qwen3-VL labels read 9.3 s, not 3.5 s): the engine's prompt
    tokens for the video are the budget module's price of that frame count, geometry and timestamps."""
    family, proc = family_server
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    url = frames_url([jpeg(i, 320, 240) for i in indices])
    messages: Any = [
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "?"}]}
    ]
    out = client.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=2,
        extra_body={"media_io_kwargs": {"video": {"fps": 30, "frames_indices": indices, "total_num_frames": 300}}},
    )
    (video,) = (out.model_extra or {})["videomodel"]["media"]
    padded = count + count % 2
    assert video["source"] == "frames" and video["frames"] == padded
    times = [i / 30 for i in indices] + ([indices[-1] / 30] if count % 2 else [])
    assert video["timestamps"] == pytest.approx(times, abs=1e-4)
    geometry = FAMILIES[family]
    budget = FAMILY_BUDGETS[family]
    assert budget.min_pixels is not None and budget.max_pixels is not None
    height, width = smart_resize(240, 320, geometry.factor, budget.min_pixels, budget.max_pixels)
    assert (video["height"], video["width"]) == (height, width)
    price = video_tokens(geometry, padded, height, width, 10.0, frame_times=tuple(video["timestamps"]))
    assert video["budget_tokens"] == price
    assert video["engine_tokens"] == price, video
