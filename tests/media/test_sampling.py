"""Sampling and geometry (pure): exactly the budget module's numbers, chosen by timestamp."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from videomodel_server.budget import frame_pixel_cap, sample_indices, smart_nframes, smart_resize
from videomodel_server.budget.knobs import KnobConflict
from videomodel_server.media import (
    MediaLimits,
    MediaOverBudget,
    ProbeResult,
    SamplingBudget,
    SamplingOverrides,
    apply_overrides,
    check_probe,
    plan_sampling,
)
from videomodel_server.media.errors import InvalidVideo, NoVideoStream

BUDGET = SamplingBudget(fps=2.0, max_frames=64, min_pixels=128 * 28 * 28, max_pixels=256 * 28 * 28, factor=28)
TOTAL_BUDGET = replace(BUDGET, total_pixels=20 * 256 * 28 * 28, max_pixels=768 * 28 * 28)


def probe(**changes: object) -> ProbeResult:
    base = ProbeResult(
        container="mov,mp4",
        codec="h264",
        width=1280,
        height=720,
        duration=10.0,
        fps=30.0,
        frame_count=300,
        rotation=0,
        video_streams=1,
        audio_streams=0,
        total_streams=1,
        stream_index=0,
        base_fps=30.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_worked_example_from_budget_md() -> None:
    """10 s of 1080p at 2 fps: 20 frames at 560x1008 under qwen-vl-utils defaults (768 tokens max)."""
    budget = replace(BUDGET, max_pixels=768 * 28 * 28, max_frames=768)
    plan = plan_sampling(probe(width=1920, height=1080), budget)
    assert (plan.nframes, plan.height, plan.width) == (20, 560, 1008)


@settings(max_examples=300)
@given(
    duration=st.floats(0.3, 600),
    fps=st.sampled_from([1.0, 8.0, 24.0, 25.0, 30000 / 1001, 30.0, 60.0]),
    width=st.integers(16, 3840),
    height=st.integers(16, 2160),
    rotation=st.sampled_from([0, 90, 180, 270]),
    budget=st.sampled_from([BUDGET, TOTAL_BUDGET, replace(BUDGET, factor=32, fps=1.0, max_frames=16)]),
)
def test_plan_matches_budget_module(
    duration: float, fps: float, width: int, height: int, rotation: int, budget: SamplingBudget
) -> None:
    total = round(duration * fps)
    assume(total >= 2 and max(width, height) / min(width, height) <= 200)
    p = probe(width=width, height=height, duration=duration, fps=fps, frame_count=total, rotation=rotation)
    plan = plan_sampling(p, budget)
    n = smart_nframes(total, fps, budget.fps, budget.max_frames)
    assert plan.nframes == n and list(plan.indices) == sample_indices(total, n)
    cap = frame_pixel_cap(n, budget.min_pixels, budget.max_pixels, budget.total_pixels)
    dh, dw = (width, height) if rotation % 180 else (height, width)
    assert (plan.height, plan.width) == smart_resize(dh, dw, budget.factor, budget.min_pixels, cap)
    assert plan.target_times == tuple(i / fps for i in plan.indices)
    assert plan.sample_fps == pytest.approx(n / total * fps)
    meta = plan.metadata([i / fps for i in plan.indices])
    assert meta["frames_indices"] == list(plan.indices) and meta["do_sample_frames"] is False
    assert meta["total_num_frames"] == total and meta["fps"] == fps


def test_rotation_swaps_the_target_geometry() -> None:
    upright = plan_sampling(probe(), BUDGET)
    rotated = plan_sampling(probe(rotation=90), BUDGET)
    assert (rotated.height, rotated.width) == (upright.width, upright.height)
    assert rotated.coded_size == (upright.width, upright.height)


def test_unknown_fps_uses_count_over_duration() -> None:
    plan = plan_sampling(probe(fps=None, frame_count=100, duration=10.0), BUDGET)
    assert plan.source_fps == 10.0 and plan.nframes == 20
    plan = plan_sampling(probe(fps=None, frame_count=None, duration=4.0), BUDGET)
    assert plan.source_fps == 1000.0 and plan.nframes == 8
    assert plan.target_times == pytest.approx([i * 4.0 * (3999 / 4000) / 7 for i in range(8)], abs=1e-3)


def test_metadata_indices_reproduce_actual_times() -> None:
    plan = plan_sampling(probe(fps=14.08, base_fps=20.0, frame_count=50, duration=3.55), BUDGET)
    assert plan.variable_rate
    actual = [0.0, 0.7, 1.4, 2.0, 2.6, 3.4]
    meta = plan.metadata(actual)
    for index, t in zip(meta["frames_indices"], actual, strict=True):
        assert abs(index / meta["fps"] - t) <= 0.5 / meta["fps"]


def test_too_few_frames_and_extreme_aspect() -> None:
    with pytest.raises(MediaOverBudget, match="at least 2"):
        plan_sampling(probe(frame_count=1, duration=0.04), BUDGET)
    with pytest.raises(MediaOverBudget, match="aspect ratio 250:1") as info:
        plan_sampling(probe(width=5000, height=20), BUDGET)
    assert info.value.status == 422


# -- overrides ----------------------------------------------------------------------------------


def test_overrides_inside_budget_are_honoured() -> None:
    clamp = apply_overrides(BUDGET, SamplingOverrides(fps=1.0, num_frames=8, max_pixels=64 * 28 * 28))
    assert clamp.clamped == [] and clamp.budget.fps == 1.0 and clamp.num_frames == 8
    plan = plan_sampling(probe(), clamp.budget, clamp.num_frames)
    assert plan.nframes == 8 and plan.height * plan.width <= 128 * 28 * 28 * 1.05


def test_overrides_beyond_budget_are_clamped_visibly() -> None:
    limits = replace(BUDGET, max_seconds=60)
    clamp = apply_overrides(limits, SamplingOverrides(fps=30, num_frames=10_000, max_pixels=10**8, min_pixels=10**7))
    assert clamp.budget.fps == 2.0 and clamp.num_frames == 64
    assert clamp.budget.max_pixels == BUDGET.max_pixels and clamp.budget.min_pixels == BUDGET.min_pixels
    # The request path's notes (budget.knobs.narrow), in the form the README documents.
    assert clamp.clamped == [
        "fps=30->2",
        "max_pixels=100000000->200704",
        "min_pixels=10000000->100352",
        "num_frames=10000->64",
    ]
    clamp = apply_overrides(BUDGET, SamplingOverrides(num_frames=9))
    assert clamp.num_frames == 8 and clamp.clamped == ["num_frames=9->8"]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"fps": -1.0}, "fps must be above 0"),
        ({"fps": float("nan")}, "fps must be above 0"),
        ({"num_frames": 0}, "num_frames must be at least 2"),
        ({"max_pixels": 0}, "max_pixels must be above 0"),
    ],
)
def test_out_of_range_overrides_are_refused(knobs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingOverrides(**knobs)  # type: ignore[arg-type]


def test_a_floor_above_the_cap_is_a_conflict() -> None:
    with pytest.raises(KnobConflict, match=r"min_pixels \(50000\) is above max_pixels \(40000\)"):
        apply_overrides(BUDGET, SamplingOverrides(min_pixels=50_000, max_pixels=40_000))
    clamp = apply_overrides(BUDGET, SamplingOverrides(max_pixels=40_000))  # the floor follows the cap
    assert (clamp.budget.min_pixels, clamp.budget.max_pixels) == (40_000, 40_000) and clamp.clamped == []


@given(
    fps=st.floats(0.01, 100),
    num=st.integers(2, 10_000),
    maxp=st.integers(1, 10**7),
    minp=st.integers(1, 10**7),
    total=st.integers(1, 10**8),
)
def test_overrides_never_exceed_budget(fps: float, num: int, maxp: int, minp: int, total: int) -> None:
    knobs = SamplingOverrides(fps=fps, num_frames=num, max_pixels=maxp, min_pixels=minp, total_pixels=total)
    if min(minp, TOTAL_BUDGET.min_pixels) > min(maxp, TOTAL_BUDGET.max_pixels):
        with pytest.raises(KnobConflict):
            apply_overrides(TOTAL_BUDGET, knobs)
        return
    clamp = apply_overrides(TOTAL_BUDGET, knobs)
    b = clamp.budget
    assert 0 < b.fps <= TOTAL_BUDGET.fps and b.max_pixels <= TOTAL_BUDGET.max_pixels
    assert b.min_pixels <= TOTAL_BUDGET.min_pixels and b.min_pixels <= b.max_pixels
    assert b.total_pixels is not None and b.total_pixels <= TOTAL_BUDGET.total_pixels  # type: ignore[operator]
    assert clamp.num_frames is not None and 2 <= clamp.num_frames <= TOTAL_BUDGET.frame_cap
    assert clamp.num_frames % 2 == 0


# -- probe checks ---------------------------------------------------------------------------------


def test_duration_message_names_the_limit_and_value() -> None:
    with pytest.raises(MediaOverBudget) as info:
        check_probe(probe(duration=312.4, frame_count=None), MediaLimits(max_seconds=300))
    assert info.value.message == "video is 312.4 s long; this model accepts at most 300 s (maxSeconds (--max-seconds))"
    assert info.value.status == 422


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"video_streams": 0, "audio_streams": 1}, NoVideoStream, "no video stream (1 audio stream)"),
        ({"video_streams": 0, "total_streams": 0}, InvalidVideo, "no audio or video stream"),
        ({"total_streams": 40}, MediaOverBudget, "40 streams; at most 8 are accepted (max_streams)"),
        ({"width": 16384, "height": 16}, MediaOverBudget, "max_source_width/height"),
        ({"width": 8000, "height": 8000}, MediaOverBudget, "64.0 megapixels"),
        ({"fps": 29155.0}, MediaOverBudget, "29155 frames per second; at most 480 are accepted (max_source_fps)"),
        ({"frame_count": 10**9}, MediaOverBudget, "maxSeconds (--max-seconds) x max_source_fps"),
        ({"duration": None}, InvalidVideo, "duration cannot be determined"),
        ({"width": 0}, InvalidVideo, "no frame size"),
    ],
)
def test_probe_rejections(changes: dict[str, object], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_probe(probe(**changes), MediaLimits())


def test_settings_from_a_declared_budget() -> None:
    from videomodel_server.budget import VideoBudget, lookup
    from videomodel_server.media import ImageBudget

    model = lookup("Qwen2-VL-7B")
    assert model is not None
    declared = VideoBudget(max_seconds=120, fps=1, max_frames=96, images_per_prompt=1)
    sampling = SamplingBudget.from_budget(declared, model.geometry)
    assert (sampling.fps, sampling.max_frames, sampling.factor) == (1, 96, 28)
    assert (sampling.min_pixels, sampling.max_pixels) == (128 * 28 * 28, 256 * 28 * 28)
    assert sampling.frame_cap == 96
    limits = MediaLimits.from_budget(declared, allow_http=False)
    assert limits.max_seconds == 120 and limits.max_video_bytes == declared.max_video_bytes
    assert limits.fetch_timeout_seconds > 0 and not limits.allow_http
    image = ImageBudget.from_budget(declared, model.geometry)
    assert (image.min_pixels, image.max_pixels, image.factor) == (4 * 28 * 28, 1280 * 28 * 28, 28)
