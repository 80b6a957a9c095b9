"""How many prompt tokens a video or an image costs, per family.

Qwen2-VL and Qwen2.5-VL: one ``<|video_pad|>`` per merged cell of every temporal group, inside
one ``<|vision_start|>...<|vision_end|>`` pair. Qwen3-VL: every temporal group gets its own
``<t seconds>`` text and its own start/end pair (transformers' ``Qwen3VLProcessor``).
"""

from __future__ import annotations

import math

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


def video_tokens(geometry: FamilyGeometry, nframes: int, height: int, width: int, max_seconds: float) -> int:
    """Prompt tokens of one video sampled to ``nframes`` frames of ``height`` x ``width``."""
    groups = math.ceil(nframes / FRAME_FACTOR)
    cells = (height // geometry.factor) * (width // geometry.factor)
    if geometry.timestamps_per_group:
        return groups * (cells + VISION_DELIMITERS + timestamp_tokens(max_seconds))
    return groups * cells + VISION_DELIMITERS


def image_tokens(geometry: FamilyGeometry, height: int, width: int) -> int:
    """Prompt tokens of one image resized to ``height`` x ``width``."""
    return (height // geometry.factor) * (width // geometry.factor) + VISION_DELIMITERS
