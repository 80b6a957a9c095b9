"""Properties of the budget arithmetic that need no model: the worst case really is the worst.

The oracle tests (tests/oracle/) check the same numbers against the real processors and engine;
these check, over many random budgets and videos, that no in-budget video can cost more tokens
than the Plan says, which is what keeps every in-budget request from failing at request time.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from videomodel_server.budget import (
    BUILTIN_MODELS,
    FAMILIES,
    Family,
    GeometryError,
    GpuSpec,
    VideoBudget,
    derive,
    fetch_timeout,
    frame_pixel_cap,
    price_video,
    smart_nframes,
    smart_resize,
    video_tokens,
)
from videomodel_server.budget.tokens import timestamp_label_tokens, timestamp_tokens

MODELS = [BUILTIN_MODELS["Qwen2-VL-7B"], BUILTIN_MODELS["Qwen2.5-VL-7B"], BUILTIN_MODELS["Qwen3-VL-8B"]]


@st.composite
def budgets(draw: st.DrawFn) -> VideoBudget:
    f2 = 28 * 28
    min_cells = draw(st.integers(4, 256))
    max_cells = draw(st.integers(min_cells, 1024))
    total = draw(st.one_of(st.none(), st.integers(16, 40000).map(lambda c: c * f2)))
    return VideoBudget(
        max_seconds=draw(st.floats(1, 900).map(lambda x: round(x, 1))),
        fps=draw(st.sampled_from([0.5, 1.0, 2.0, 4.0])),
        max_frames=draw(st.integers(2, 768)),
        min_pixels=min_cells * f2,
        max_pixels=max_cells * f2,
        total_pixels=total,
    )


def _real_video_tokens(budget: VideoBudget, family: Family, seconds: float, src_fps: float, h: int, w: int) -> int:
    """What the server's pipeline charges for one concrete video (sampling, per-frame cap, resize)."""
    total_frames = max(2, round(seconds * src_fps))
    return price_video(
        budget, FAMILIES[family], total_frames=total_frames, source_fps=src_fps, height=h, width=w
    ).tokens


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    budget=budgets(),
    model_index=st.integers(0, 2),
    fraction=st.floats(0.001, 1.0),
    src_fps=st.sampled_from([5.0, 12.5, 23.976, 25.0, 30.0, 60.0]),
    height=st.integers(1, 4000),
    aspect=st.floats(1 / 200, 200),
)
def test_no_in_budget_video_costs_more_than_the_plan(
    budget: VideoBudget, model_index: int, fraction: float, src_fps: float, height: int, aspect: float
) -> None:
    model = MODELS[model_index]
    plan = derive(budget, model)
    width = max(1, round(height * aspect))
    seconds = budget.max_seconds * fraction
    try:
        real = _real_video_tokens(budget, model.family, seconds, src_fps, height, width)
    except GeometryError:
        return  # rejected by the server with a 4xx; costs nothing
    assert real <= plan.tokens_per_video


@settings(max_examples=200, deadline=None)
@given(budget=budgets(), model_index=st.integers(0, 2))
def test_the_plans_worst_case_frame_is_real(budget: VideoBudget, model_index: int) -> None:
    """The plan's worst-case source frame reproduces its worst-case cost exactly (no padding)."""
    model = MODELS[model_index]
    plan = derive(budget, model)
    frame = plan.worst_case_frame
    resolved = budget.resolved(model.geometry)
    assert resolved.min_pixels is not None
    cap = frame_pixel_cap(plan.frames_per_video, resolved.min_pixels, plan.frame_max_pixels, resolved.total_pixels)
    try:
        size = smart_resize(
            frame["source_height"], frame["source_width"], model.geometry.factor, resolved.min_pixels, cap
        )
    except GeometryError:
        assume(False)
    assume(size == (frame["height"], frame["width"]))  # a few tiny-cap upscale cases have no integer source
    assert video_tokens(model.geometry, plan.frames_per_video, *size, budget.max_seconds) == plan.tokens_per_video


def test_worked_examples_of_budget_md() -> None:
    """docs/budget.md#worked-examples: 10 s 1080p at 2 fps -> 20 frames at 560x1008, 7,200 tokens (Qwen2.5 geometry)."""
    qwen25 = FAMILIES[Family.QWEN2_5_VL]
    default = VideoBudget(min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28, max_frames=768, max_seconds=600)
    total = int(128000 * 28 * 28 * 0.9)
    n = smart_nframes(300, 30.0, 2.0, 768)
    cap = frame_pixel_cap(n, 128 * 784, 768 * 784, total)
    assert (n, smart_resize(1080, 1920, 28, 128 * 784, cap)) == (20, (560, 1008))
    assert video_tokens(qwen25, n, 560, 1008, 10) == 7200 + 2
    n60 = smart_nframes(1800, 30.0, 2.0, 768)
    cap60 = frame_pixel_cap(n60, 128 * 784, 768 * 784, total)
    h, w = smart_resize(720, 1280, 28, 128 * 784, cap60)
    assert n60 == 120 and video_tokens(qwen25, n60, h, w, 60) == 43200 + 2
    assert default.max_frames == 768


def test_tiny_frames_are_upscaled_and_priced() -> None:
    """An 8-frame 224x224 clip costs Qwen2-VL 576 video tokens, not 256 (upscaled to min_pixels)."""
    geometry = FAMILIES[Family.QWEN2_VL]
    h, w = smart_resize(224, 224, 28, 128 * 784, 768 * 784)
    assert (h, w) == (336, 336)
    assert video_tokens(geometry, 8, h, w, 4) - 2 == 576


def test_extreme_aspect_upscale_is_priced_above_the_cap() -> None:
    """A 1x127 source is upscaled past a cap of 1.05 x min_pixels; the plan must count it."""
    budget = VideoBudget(max_seconds=10, fps=2, max_frames=20, min_pixels=128 * 784, max_pixels=134 * 784)
    plan = derive(budget, BUILTIN_MODELS["Qwen2-VL-7B"])
    assert plan.tokens_per_frame_group == 256
    assert plan.worst_case_frame["source_height"] * 127 == plan.worst_case_frame["source_width"]


@pytest.mark.parametrize(("seconds", "tokens"), [(0.4, 6), (9.9, 6), (10.0, 7), (99.9, 7), (123.4, 8)])
def test_qwen3_timestamp_labels(seconds: float, tokens: int) -> None:
    assert timestamp_label_tokens(seconds) == tokens


@given(st.floats(0.1, 10000))
def test_timestamp_bound_covers_every_label(max_seconds: float) -> None:
    labels = [max_seconds * k / 50 for k in range(50)]
    assert all(timestamp_label_tokens(t) <= timestamp_tokens(max_seconds) for t in labels)


def test_kv_and_concurrency_for_qwen2_vl_7b_on_80g() -> None:
    plan = derive(VideoBudget(), BUILTIN_MODELS["Qwen2-VL-7B"], GpuSpec(count=1, memory_bytes=80 * 1024**3))
    assert plan.kv_bytes_per_token == 57344
    assert plan.concurrent_requests is not None
    assert plan.kv_cache_bytes_available is not None
    assert plan.concurrent_requests == plan.kv_cache_bytes_available // plan.kv_bytes_per_request
    assert plan.concurrent_requests >= 1 and plan.feasible


def test_weights_that_do_not_fit_say_so() -> None:
    plan = derive(VideoBudget(), BUILTIN_MODELS["Qwen2.5-VL-72B"], GpuSpec(count=1, memory_bytes=80 * 1024**3))
    assert not plan.feasible
    assert "do not fit" in plan.problems[0] and "tensor parallel" in plan.problems[0]


def test_memory_infeasible_suggests_what_fits() -> None:
    budget = VideoBudget(max_seconds=600, fps=2, max_frames=768, max_pixels=768 * 784)
    plan = derive(budget, BUILTIN_MODELS["Qwen2.5-VL-7B"], GpuSpec(count=1, memory_bytes=24 * 1024**3))
    assert not plan.feasible
    message = " ".join(plan.problems)
    assert "lower maxFrames to" in message and "GPUs" in message


def test_suggested_max_frames_really_fits() -> None:
    budget = VideoBudget(max_seconds=300, fps=2, max_frames=768, max_pixels=768 * 784)
    model = BUILTIN_MODELS["Qwen2-VL-7B"]
    plan = derive(budget, model)
    suggested = int(plan.problems[0].split("lower maxFrames to ")[1].split()[0].replace(",", ""))
    from dataclasses import replace

    assert derive(replace(budget, max_frames=suggested), model).feasible
    assert not derive(replace(budget, max_frames=suggested + 2), model).feasible


def test_invalid_budget_reports_every_problem() -> None:
    plan = derive(VideoBudget(fps=0, min_pixels=10_000, max_pixels=5_000), BUILTIN_MODELS["Qwen2-VL-2B"])
    assert not plan.feasible
    assert any("fps (--fps) must be positive" in p for p in plan.problems)
    assert any("minPixels (--min-pixels) = 10000 is above maxPixels (--max-pixels) = 5000" in p for p in plan.problems)


def test_fetch_timeout_is_bytes_over_bandwidth_plus_slack_clamped() -> None:
    assert fetch_timeout(VideoBudget(max_video_bytes=100 * 2**20, min_fetch_bandwidth=2**20)) == 105.0
    assert fetch_timeout(VideoBudget(max_video_bytes=1, min_fetch_bandwidth=2**30)) == 10.0
    assert fetch_timeout(VideoBudget(max_video_bytes=2**40, min_fetch_bandwidth=1)) == 900.0


def test_limit_mm_per_prompt_carries_the_profile_dummy() -> None:
    """vLLM reads the video limits as its profile's dummy options (they only shrink its dummy)."""
    plan = derive(VideoBudget(images_per_prompt=2), BUILTIN_MODELS["Qwen3-VL-8B"])
    video = plan.limit_mm_per_prompt["video"]
    profile = plan.profile_video
    assert video == {"count": 1, "num_frames": 2, "width": profile["width"], "height": profile["height"]}
    assert plan.limit_mm_per_prompt["image"]["count"] == 2
    assert math.isclose(plan.max_seconds, 60.0)


def test_profile_of_the_a100_example_is_ten_worst_case_frame_dummies() -> None:
    """vLLM caps a Qwen2-VL dummy video at 14 frames; 10 of them at the budget's 448x448 frame
    (140 frames, 17,920 vision tokens) go through the encoder at once when the batch holds them."""
    budget = VideoBudget(max_seconds=120, fps=2, max_frames=128, min_pixels=100352, max_pixels=200704)
    plan = derive(budget, BUILTIN_MODELS["Qwen2-VL-7B"])
    assert plan.profile_video == {
        "items": 10,
        "frames_per_item": 14,
        "frames": 140,
        "height": 448,
        "width": 448,
        "tokens": 17920,
        "covers": 1,
    }
    assert plan.max_num_batched_tokens == 17920
    assert plan.limit_mm_per_prompt["video"] == {"count": 1, "num_frames": 14, "width": 448, "height": 448}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget=budgets(), videos=st.integers(1, 3), model=st.sampled_from(MODELS))
def test_vllm_profile_covers_every_feasible_worst_case(budget: VideoBudget, videos: int, model: object) -> None:
    assert isinstance(model, type(MODELS[0]))
    plan = derive(dataclasses.replace(budget, videos_per_prompt=videos), model)
    assume(plan.feasible)
    profile = plan.profile_video
    worst = plan.frames_per_video // 2 * plan.tokens_per_frame_group
    assert profile["covers"] == 1 and profile["tokens"] >= worst
    assert plan.max_num_batched_tokens >= max(profile["tokens"], plan.tokens_per_video, 2048)
    # vLLM encodes encoder-budget // one-dummy of them: exactly the plan's items or more.
    assert plan.max_num_batched_tokens // (profile["tokens"] // profile["items"]) >= profile["items"]
    cells = (profile["height"] // 28) * (profile["width"] // 28)
    if not model.geometry.timestamps_per_group and cells <= plan.tokens_per_frame_group:
        # Frames no larger than the worst case's: at least as many of them.
        assert profile["frames"] >= plan.frames_per_video


@pytest.mark.parametrize("name", ["Qwen2-VL-7B", "Qwen2.5-VL-7B", "Qwen3-VL-8B"])
def test_memory_model_is_weights_plus_the_measured_overheads_per_gpu(name: str) -> None:
    """KV cache = usable memory - weights - per GPU (non-torch + the family's measured activation
    per batched token + CUDA graphs + the model's per-batch buffers). How close it comes to vLLM
    on real GPUs is tests/unit/test_memory_model.py."""
    from videomodel_server.budget.plan import (
        ACTIVATION_BYTES_PER_BATCHED_TOKEN,
        CUDA_GRAPH_BYTES,
        ENGINE_NON_TORCH_BYTES,
    )

    gib = 1024**3
    model = BUILTIN_MODELS[name]
    gpu = GpuSpec(count=2, memory_bytes=80 * gib, memory_utilization=0.9)
    plan = derive(VideoBudget(), model, gpu)
    assert plan.weights_bytes is not None
    batched = plan.max_num_batched_tokens
    activation = batched * ACTIVATION_BYTES_PER_BATCHED_TOKEN[model.family]
    buffers = model.deepstack_levels * batched * model.hidden_size * 2
    assert (buffers > 0) == (model.family is Family.QWEN3_VL)
    overhead = ENGINE_NON_TORCH_BYTES + activation + CUDA_GRAPH_BYTES + buffers
    assert plan.kv_cache_bytes_available == int(2 * 80 * gib * 0.9 - plan.weights_bytes - 2 * overhead)
