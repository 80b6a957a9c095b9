"""The budget's tokens per video against transformers' own processors (docs/budget.md#the-oracle).

For many budgets and each family: build the budget's worst-case video as the server will (the
plan's frame count, its worst-case source frame resized by qwen-vl-utils rules), run it through
``AutoProcessor`` of the family's tiny checkpoint with the plan's processor kwargs, and count the
video's prompt tokens. The plan must never be below the real count and at most 2% above it; the
processor must keep the frames exactly as given; Qwen2.5-VL's time step must follow the real
sampling rate.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from videomodel_server.budget import Family, VideoBudget, derive
from videomodel_server.budget.geometry import (
    GeometryError,
    frame_pixel_cap,
    sample_indices,
    smart_nframes,
    smart_resize,
)

from .summary import OracleSummary
from .worst_case import MODELS, hf_metadata, processor_kwargs, prompt_pair, worst_case_video

MAX_OVER = 0.02
EXAMPLES = int(os.environ.get("VIDEOMODEL_ORACLE_EXAMPLES", "40"))
"""Budgets per family (raise it for a deeper sweep; the default keeps the suite near two minutes)."""

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def processors(tiny_model_dir: Any) -> dict[Family, Any]:
    from transformers import AutoProcessor

    return {family: AutoProcessor.from_pretrained(tiny_model_dir(family)) for family in Family}


def count_video_tokens(processor: Any, frames: np.ndarray, metadata: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """Real prompt tokens of one video: the prompt with the video minus the prompt without it."""
    prompt, text_only = prompt_pair(processor)
    out = processor(text=[prompt], videos=[frames], video_metadata=[metadata], return_tensors="np", **kwargs)
    base = len(processor.tokenizer(text_only)["input_ids"])
    return out["input_ids"].shape[1] - base, out


@st.composite
def budgets(draw: st.DrawFn, family: Family) -> VideoBudget:
    f2 = MODELS[family].geometry.factor ** 2
    min_tokens = draw(st.integers(min_value=1, max_value=160))
    max_tokens = draw(st.integers(min_value=min_tokens, max_value=min_tokens + 200))
    total = draw(st.one_of(st.none(), st.integers(min_value=min_tokens, max_value=4000)))
    min_pixels = min_tokens * f2 + draw(st.integers(min_value=0, max_value=f2 - 1))
    return VideoBudget(
        max_seconds=draw(st.sampled_from([1.0, 2.5, 4.0, 9.9, 10.0, 12.0, 30.0, 60.0, 120.0, 150.0])),
        fps=draw(st.sampled_from([0.5, 1.0, 2.0, 4.0])),
        max_frames=draw(st.integers(min_value=2, max_value=48)),
        min_pixels=min_pixels,
        max_pixels=max(min_pixels, max_tokens * f2 + draw(st.integers(min_value=0, max_value=f2 - 1))),
        total_pixels=None if total is None else total * f2,
    )


SOURCE_FPS = st.sampled_from([24.0, 25.0, 29.97, 30.0, 60.0])


def check_worst_case(
    family: Family, budget: VideoBudget, source_fps: float, processors: dict[Family, Any], oracle: OracleSummary
) -> None:
    plan = derive(budget, MODELS[family])
    assert plan.frames_per_video > 0, plan.problems
    video = worst_case_video(plan, family, source_fps, budget.max_frames, budget.fps)
    real, out = count_video_tokens(processors[family], video.frames, hf_metadata(video), processor_kwargs(plan))
    context = {"family": family.value, "budget": budget, "source_fps": source_fps, "frame": plan.worst_case_frame}
    oracle.record(f"transformers worst case, {family.value}", plan.tokens_per_video, real, **context)

    geometry = MODELS[family].geometry
    n, h, w = plan.frames_per_video, plan.worst_case_frame["height"], plan.worst_case_frame["width"]
    # The processor kept the frames exactly as the server sized them.
    assert out["video_grid_thw"].tolist() == [[n // 2, h // geometry.patch_size, w // geometry.patch_size]]
    assert plan.tokens_per_video >= real, context
    assert plan.tokens_per_video <= real * (1 + MAX_OVER), context
    if family is Family.QWEN2_5_VL:
        sampled_fps = n / video.metadata["total_num_frames"] * video.metadata["fps"]
        assert out["second_per_grid_ts"] == pytest.approx([2 / sampled_fps])


def _family_test(family: Family) -> Any:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(budget=budgets(family), source_fps=SOURCE_FPS)
    @example(budget=VideoBudget(max_seconds=60, fps=2, max_frames=16), source_fps=30.0)  # family defaults
    @example(budget=VideoBudget(max_seconds=12, fps=2, max_frames=24), source_fps=29.97)  # labels cross 10 s
    def test(budget: VideoBudget, source_fps: float, processors: dict[Family, Any], oracle_record: OracleSummary):
        check_worst_case(family, budget, source_fps, processors, oracle_record)

    return test


test_worst_case_qwen2_vl = _family_test(Family.QWEN2_VL)
test_worst_case_qwen2_5_vl = _family_test(Family.QWEN2_5_VL)
test_worst_case_qwen3_vl = _family_test(Family.QWEN3_VL)


@settings(
    max_examples=EXAMPLES * 3 // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(
    family=st.sampled_from(list(Family)),
    data=st.data(),
    source_fps=SOURCE_FPS,
    height=st.integers(min_value=8, max_value=1080),
    width=st.integers(min_value=8, max_value=1920),
)
def test_no_in_budget_video_costs_more_than_the_plan(
    family: Family,
    data: st.DataObject,
    source_fps: float,
    height: int,
    width: int,
    processors: dict[Family, Any],
    oracle_record: OracleSummary,
) -> None:
    """Any video the budget admits, sampled and resized as the server will, fits the plan."""
    budget = data.draw(budgets(family))
    plan = derive(budget, MODELS[family])
    seconds = data.draw(st.floats(min_value=0.1, max_value=budget.max_seconds))
    total = max(2, int(seconds * source_fps))
    factor = MODELS[family].geometry.factor
    assert budget.max_frames is not None
    n = smart_nframes(total, source_fps, budget.fps, budget.max_frames)
    resolved = budget.resolved(MODELS[family].geometry)
    assert resolved.min_pixels is not None and resolved.max_pixels is not None
    cap = frame_pixel_cap(n, resolved.min_pixels, resolved.max_pixels, resolved.total_pixels)
    try:
        h, w = smart_resize(height, width, factor, resolved.min_pixels, cap)
    except GeometryError:
        return  # the server refuses frames that cannot be represented (too thin); nothing to price
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    metadata = {"fps": source_fps, "total_num_frames": total, "frames_indices": sample_indices(total, n)}
    metadata["duration"] = total / source_fps
    real, out = count_video_tokens(processors[family], frames, metadata, processor_kwargs(plan))
    assert out["video_grid_thw"].tolist() == [[n // 2, h // (factor // 2), w // (factor // 2)]]
    oracle_record.record(
        "transformers any in-budget video (must not exceed)", plan.tokens_per_video, real, upper_bound_only=True
    )
    assert real <= plan.tokens_per_video, (family, budget, n, h, w)


@pytest.mark.parametrize("family", list(Family))
def test_short_video_under_a_total_budget_keeps_its_larger_frames(
    family: Family, processors: dict[Family, Any], oracle_record: OracleSummary
) -> None:
    """A 2 s clip under a total-pixel budget gets 10x the per-frame pixels of the 20 s worst case;
    the plan's processor kwargs must still leave its frames alone."""
    f2 = MODELS[family].geometry.factor ** 2
    budget = VideoBudget(
        max_seconds=20, fps=2, max_frames=40, min_pixels=4 * f2, max_pixels=200 * f2, total_pixels=200 * f2
    )
    plan = derive(budget, MODELS[family])
    n, total, source_fps = 4, 60, 30.0
    cap = frame_pixel_cap(n, 4 * f2, 200 * f2, 200 * f2)
    assert cap > 5 * plan.frame_max_pixels
    factor = MODELS[family].geometry.factor
    h, w = smart_resize(720, 1280, factor, 4 * f2, cap)
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    metadata = {"fps": source_fps, "total_num_frames": total, "frames_indices": sample_indices(total, n), "duration": 2}
    real, out = count_video_tokens(processors[family], frames, metadata, processor_kwargs(plan))
    assert out["video_grid_thw"].tolist() == [[n // 2, h // (factor // 2), w // (factor // 2)]]
    oracle_record.record(
        "transformers any in-budget video (must not exceed)", plan.tokens_per_video, real, upper_bound_only=True
    )
    assert real <= plan.tokens_per_video
