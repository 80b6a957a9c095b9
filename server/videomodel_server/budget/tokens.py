"""How many prompt tokens a video or an image costs, per family.

Qwen2-VL and Qwen2.5-VL: one ``<|video_pad|>`` per merged cell of every temporal group, inside
one ``<|vision_start|>...<|vision_end|>`` pair. Qwen3-VL: the chat template's outer start/end pair
stays, and inside it every temporal group gets its own ``<t seconds>`` text and its own start/end
pair (transformers 5.19's ``Qwen3VLProcessor`` and vLLM 0.32 expand only the bare video token).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .geometry import FRAME_FACTOR
from .models import FamilyGeometry

VISION_DELIMITERS = 2
"""``<|vision_start|>`` and ``<|vision_end|>`` around each media item (or each Qwen3 group)."""

TIMESTAMP_FIXED_TOKENS = 5
"""``<``, ``.``, the tenths digit, `` seconds`` and ``>``: the Qwen tokenizer splits digits one
per token and keeps the common word whole, so ``<12.5 seconds>`` is 2 + 5 = 7 tokens."""


def timestamp_tokens(max_seconds: float) -> int:
    """Worst-case tokens of one Qwen3-VL ``<t seconds>`` label in a video of ``max_seconds``.

    Every label is bounded by the longest one (``t < duration``, printed with one decimal), so
    the bound over-counts only the few groups before the last power of ten.
    """
    integer_part = math.floor(max_seconds + 0.05)
    return len(str(integer_part)) + TIMESTAMP_FIXED_TOKENS


def timestamp_label_tokens(seconds: float) -> int:
    """Exact tokens of the label ``f"<{seconds:.1f} seconds>"``."""
    return len(f"{seconds:.1f}".split(".")[0]) + TIMESTAMP_FIXED_TOKENS


def group_time_bound(group: int, nframes: int, max_seconds: float) -> float:
    """An upper bound on the ``<t seconds>`` time of temporal group ``group`` (0-based).

    The server samples frame ``i`` at index ``round(i * s)``, ``s = (T-1)/(n-1)``, from a source of
    T >= n frames at ``fps`` lasting ``T / fps <= max_seconds``; the first and last index are exact,
    the others off by at most half a frame. A group's time is the mean of its two frames' times,
    ``(idx[2g] + idx[2g+1]) / (2 fps)``; with ``s / fps < max_seconds / (n-1)`` and
    ``1 / fps <= max_seconds / n`` that is below the value returned.
    """
    if nframes < FRAME_FACTOR:
        return max_seconds
    first, second = 2 * group, min(2 * group + 1, nframes - 1)
    rounding = sum(0.5 for i in (first, second) if 0 < i < nframes - 1)
    bound = ((first + second) / (nframes - 1) + rounding / nframes) * max_seconds / 2
    return min(max_seconds, bound * (1 + 1e-9))


def video_tokens(
    geometry: FamilyGeometry,
    nframes: int,
    height: int,
    width: int,
    max_seconds: float,
    *,
    frame_times: Sequence[float] | None = None,
) -> int:
    """Prompt tokens of one video sampled to ``nframes`` frames of ``height`` x ``width``.

    For Qwen3-VL ``max_seconds`` bounds the video's duration: each group's label is priced at the
    longest it can be for its position (:func:`group_time_bound`), exact except near a power of ten.
    With ``frame_times`` (each frame's time in seconds, as the engine is given them: a concrete
    video, a time window) the labels are priced exactly: a group's label is the mean of its frames'.
    """
    groups = math.ceil(nframes / FRAME_FACTOR)
    cells = (height // geometry.factor) * (width // geometry.factor)
    if geometry.timestamps_per_group and frame_times is not None and len(frame_times) == nframes:
        times = [*frame_times, frame_times[-1]]  # an odd last group repeats its frame, as the processor does
        labels = sum(timestamp_label_tokens((times[2 * g] + times[2 * g + 1]) / 2) for g in range(groups))
        return VISION_DELIMITERS + groups * (cells + VISION_DELIMITERS) + labels
    if geometry.timestamps_per_group:
        labels = sum(timestamp_tokens(group_time_bound(g, nframes, max_seconds)) for g in range(groups))
        return VISION_DELIMITERS + groups * (cells + VISION_DELIMITERS) + labels
    return groups * cells + VISION_DELIMITERS


def image_tokens(geometry: FamilyGeometry, height: int, width: int) -> int:
    """Prompt tokens of one image resized to ``height`` x ``width``."""
    return (height // geometry.factor) * (width // geometry.factor) + VISION_DELIMITERS
