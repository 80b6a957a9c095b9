"""Build a budget's worst-case video the way the server will, and count it with real processors.

Shared by the transformers oracle (in-process) and the vLLM oracle (in a subprocess).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from videomodel_server.budget import BUILTIN_MODELS, Family, ModelSpec, Plan
from videomodel_server.budget.geometry import sample_indices, smart_nframes, smart_resize

MODELS: dict[Family, ModelSpec] = {
    Family.QWEN2_VL: BUILTIN_MODELS["Qwen2-VL-7B"],
    Family.QWEN2_5_VL: BUILTIN_MODELS["Qwen2.5-VL-7B"],
    Family.QWEN3_VL: BUILTIN_MODELS["Qwen3-VL-8B"],
}
"""Any model of the family prices video the same way; these give each family its real context."""

VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"
USER_TEXT = "Describe this video."
FALLBACK_SOURCE_FPS = (30.0, 24.0, 25.0, 60.0, 120.0)


@dataclass
class Video:
    frames: np.ndarray  # (T, H, W, 3) uint8, already at the target geometry
    metadata: dict[str, Any]  # what the server passes to vLLM


def worst_case_video(plan: Plan, family: Family, source_fps: float, max_frames: int, fps: float) -> Video:
    """``plan.frames_per_video`` frames of the plan's worst-case geometry, from the longest source.

    The source frame size named by the plan must resize (qwen-vl-utils semantics, the plan's
    per-frame cap) to exactly the worst-case frame, and the source video is the longest one (at most
    ``max_seconds``) that samples exactly that many frames, so Qwen3-VL's timestamps are as long as
    they get.
    """
    geometry = MODELS[family].geometry
    wc = plan.worst_case_frame
    resized = smart_resize(
        wc["source_height"], wc["source_width"], geometry.factor, plan.frame_min_pixels, plan.frame_max_pixels
    )
    assert resized == (wc["height"], wc["width"]), (resized, wc)
    n = plan.frames_per_video
    # A 12 s budget at 2 fps prices 24 frames, but a 29.97 fps source of at most 12 s has 359
    # frames and samples 22: then take a source rate that does reach the priced count.
    for rate in (source_fps, *FALLBACK_SOURCE_FPS):
        total = _longest_source(plan.max_seconds, rate, fps, max_frames, n)
        if total is not None:
            source_fps = rate
            break
    else:
        raise AssertionError(f"no source of at most {plan.max_seconds}s samples {n} frames")
    indices = sample_indices(total, n)
    frames = np.zeros((n, wc["height"], wc["width"], 3), dtype=np.uint8)
    frames[:, ::2, ::3] = 255  # not blank, in case a processor ever short-cuts constant frames
    metadata = {
        "fps": source_fps,
        "duration": total / source_fps,
        "total_num_frames": total,
        "frames_indices": indices,
        "do_sample_frames": False,
    }
    return Video(frames, metadata)


def _longest_source(max_seconds: float, source_fps: float, fps: float, max_frames: int, n: int) -> int | None:
    """Largest source frame count within ``max_seconds`` that samples exactly ``n`` frames."""
    total = max(2, math.floor(max_seconds * source_fps))
    while total >= 2:
        sampled = smart_nframes(total, source_fps, fps, max_frames)
        if sampled == n:
            return total
        if sampled < n:
            return None
        total -= 1
    return None


def prompt_pair(processor: Any) -> tuple[str, str]:
    """The chat prompt with one video, and the same prompt with the video's placeholder removed."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": USER_TEXT}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert VIDEO_PLACEHOLDER in prompt
    return prompt, prompt.replace(VIDEO_PLACEHOLDER, "", 1)


def processor_kwargs(plan: Plan) -> dict[str, Any]:
    return {**plan.mm_processor_kwargs, "do_sample_frames": False}


def hf_metadata(video: Video) -> dict[str, Any]:
    """The metadata as transformers takes it (vLLM strips ``do_sample_frames`` the same way)."""
    return {k: v for k, v in video.metadata.items() if k != "do_sample_frames"}
