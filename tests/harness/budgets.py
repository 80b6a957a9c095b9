"""Budgets and predictions shared by the server tests: the per-family test budget, the budget
module's price of a synthetic video, a probe of a clip for the pure planning tests, the request
limits of the pure translation tests."""

from __future__ import annotations

from videomodel_devtools.synthetic_videos import VideoSpec
from videomodel_server.budget import FAMILIES, Family, VideoBudget, price_video
from videomodel_server.jobs import RequestLimits
from videomodel_server.media import ProbeResult


def predicted_video_tokens(family: Family, spec: VideoSpec, budget: VideoBudget) -> int:
    """What the budget module says one video of ``spec`` costs under ``budget`` (qwen-vl-utils rules)."""
    price = price_video(
        budget,
        FAMILIES[family],
        total_frames=round(spec.seconds * spec.fps),
        source_fps=spec.fps,
        height=spec.height,
        width=spec.width,
    )
    return price.tokens


def family_budget(family: Family) -> VideoBudget:
    """The small budget of the per-family engine tests: 12 s at 2 fps, 12 frames of 4-48 tokens' pixels."""
    factor = FAMILIES[family].factor
    return VideoBudget(
        max_seconds=12,
        fps=2,
        max_frames=12,
        min_pixels=4 * factor * factor,
        max_pixels=48 * factor * factor,
        max_prompt_tokens=128,
        max_output_tokens=32,
    )


FAMILY_BUDGETS = {family: family_budget(family) for family in Family}


def probe_result(seconds: float = 5.0, fps: float = 30.0, width: int = 640, height: int = 360) -> ProbeResult:
    """What probing a one-stream H.264 MP4 of that length, rate and size reports."""
    return ProbeResult(
        container="mov,mp4",
        codec="h264",
        width=width,
        height=height,
        duration=seconds,
        fps=fps,
        frame_count=round(seconds * fps),
        rotation=0,
        video_streams=1,
        audio_streams=0,
        total_streams=1,
        stream_index=0,
        base_fps=fps,
    )


TRANSLATION_LIMITS = RequestLimits(
    model_name="m",
    budget=VideoBudget(
        fps=2,
        max_frames=64,
        min_pixels=100_352,
        max_pixels=200_704,
        videos_per_prompt=2,
        images_per_prompt=1,
        max_output_tokens=256,
        max_prompt_tokens=64,
    ),
    frames_per_video=40,
    max_text_bytes=64 * 32,
)
"""The limits of the pure translation tests (a request against a 64-frame, 2 fps budget)."""
