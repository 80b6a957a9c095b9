"""vLLM's memory profile covers the declared worst case (issue 11).

vLLM caps a Qwen2-VL/2.5-VL profiling dummy video at 14 frames (``_MAX_FRAMES_PER_VIDEO``), so
one dummy cannot be the worst case's 128 frames. The plan instead makes vLLM encode enough
dummies of the worst case's own frame at once (``Plan.profile_video``, through
``max_num_batched_tokens``); Qwen3-VL's single 2-frame dummy carries the whole pixel budget. Here
vLLM's own ``MultiModalBudget`` (what its profile run encodes) is built from the plan on the tiny
checkpoints and must match the plan's account and cover the worst case.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from videomodel_server.budget import Family

from .probes import run_probe

PROBE_TIMEOUT = 600
FAMILIES = [Family.QWEN2_VL, Family.QWEN3_VL]
"""Qwen2.5-VL shares Qwen2-VL's processing info and dummy builder in vLLM."""


@pytest.mark.engine
@pytest.mark.parametrize("family", FAMILIES, ids=[f.value for f in FAMILIES])
def test_vllm_profile_covers_the_worst_case(family: Family, tiny_model_dir: Any) -> None:
    result, output = run_probe("profile_probe", family, tiny_model_dir, PROBE_TIMEOUT)
    plan = result["plan"]
    profile = plan["profile_video"]
    factor = 32 if family is Family.QWEN3_VL else 28
    patch = factor // 2
    t, h, w = result["grid_thw"]
    print(f"{family.value}: {json.dumps({k: v for k, v in result.items() if k != 'plan'})}, plan {profile}")

    # vLLM profiles exactly what the plan says it will.
    assert result["modality"] == "video"
    assert result["items"] == profile["items"]
    assert (t * 2, h * patch, w * patch) == (profile["frames_per_item"], profile["height"], profile["width"])
    assert result["items"] * t * h * w // 4 == profile["tokens"]
    # ... and that is at least the worst case: frames (Qwen2/2.5: frame for frame at its frame
    # size), and vision tokens through the encoder in one pass.
    worst = plan["frames_per_video"] // 2 * plan["tokens_per_frame_group"]
    assert profile["covers"] == 1 and profile["tokens"] >= worst
    assert profile["tokens"] <= plan["max_num_batched_tokens"] <= result["encoder_budget"]
    if family is not Family.QWEN3_VL:
        assert profile["frames"] >= plan["frames_per_video"]
        assert (profile["height"], profile["width"]) == (448, 448)
    # The dummy options are the dummy vLLM builds: none of them is ignored or shrinks it.
    for needle in ("video.num_frames override", "video.width override", "video.height override"):
        assert needle not in output
