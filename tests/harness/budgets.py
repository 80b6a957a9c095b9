"""Budgets and predictions shared by the server tests: the per-family test budget, the budget
module's price of a synthetic video, a probe of a clip for the pure planning tests."""

from __future__ import annotations

from videomodel_devtools.synthetic_videos import VideoSpec
from videomodel_server.budget import FAMILIES, Family, VideoBudget, price_video
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
