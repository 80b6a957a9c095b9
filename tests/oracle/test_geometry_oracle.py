"""The budget's frame arithmetic agrees with qwen-vl-utils 0.0.14, the reference implementation.

Where qwen-vl-utils raises (or hands a zero-sized frame to the resizer), ours must raise
``GeometryError``; everywhere else the results must be identical.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from qwen_vl_utils import vision_process as qvu

from videomodel_server.budget.geometry import (
    FRAME_FACTOR,
    GeometryError,
    frame_pixel_cap,
    max_frame_cells,
    sample_indices,
    smart_nframes,
    smart_resize,
)

FACTORS = st.sampled_from([28, 32])
SIDES = st.integers(min_value=1, max_value=8192)


@settings(max_examples=3000, deadline=None)
@given(
    height=SIDES,
    width=SIDES,
    factor=FACTORS,
    min_tokens=st.integers(min_value=1, max_value=1024),
    max_tokens=st.integers(min_value=1, max_value=16384),
    max_extra=st.integers(min_value=0, max_value=10_000),
)
@example(height=1, width=201, factor=28, min_tokens=4, max_tokens=16, max_extra=0)  # aspect ratio 201
@example(height=1, width=200, factor=28, min_tokens=4, max_tokens=4, max_extra=0)  # too thin to fit
@example(height=10, width=2000, factor=28, min_tokens=128, max_tokens=256, max_extra=0)  # upscaled past max
@example(height=4, width=4, factor=32, min_tokens=8, max_tokens=4, max_extra=0)  # max < min
def test_smart_resize_matches_qwen_vl_utils(
    height: int, width: int, factor: int, min_tokens: int, max_tokens: int, max_extra: int
) -> None:
    min_pixels = min_tokens * factor * factor
    max_pixels = max_tokens * factor * factor + max_extra
    try:
        expected = qvu.smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except (ValueError, AssertionError):
        with pytest.raises(GeometryError):
            smart_resize(height, width, factor, min_pixels, max_pixels)
        return
    if 0 in expected:
        with pytest.raises(GeometryError):
            smart_resize(height, width, factor, min_pixels, max_pixels)
        return
    assert smart_resize(height, width, factor, min_pixels, max_pixels) == expected


@settings(max_examples=3000, deadline=None)
@given(
    total_frames=st.integers(min_value=0, max_value=200_000),
    video_fps=st.floats(min_value=0.05, max_value=240, allow_nan=False),
    fps=st.floats(min_value=0.05, max_value=60, allow_nan=False),
    max_frames=st.integers(min_value=1, max_value=2048),
)
@example(total_frames=1, video_fps=30, fps=2, max_frames=128)
@example(total_frames=3, video_fps=30, fps=2, max_frames=128)
@example(total_frames=300, video_fps=30, fps=2, max_frames=1)
def test_smart_nframes_matches_qwen_vl_utils(total_frames: int, video_fps: float, fps: float, max_frames: int) -> None:
    try:
        expected = qvu.smart_nframes({"fps": fps, "max_frames": max_frames}, total_frames, video_fps)
    except ValueError:
        with pytest.raises(GeometryError):
            smart_nframes(total_frames, video_fps, fps, max_frames)
        return
    assert smart_nframes(total_frames, video_fps, fps, max_frames) == expected


@settings(max_examples=2000, deadline=None)
@given(total=st.integers(min_value=2, max_value=100_000), data=st.data())
@example(total=4, data=None)  # linspace(0, 3, 3) has an exact tie at 1.5
def test_sample_indices_match_torch_linspace(total: int, data: st.DataObject | None) -> None:
    """Exactly round-half-even of the rational linspace; torch (float32) only differs at near-ties.

    qwen-vl-utils samples ``torch.linspace(0, total-1, n).round()`` in float32, so its index is one
    frame off wherever the exact value is within float32 noise of ``k + 0.5``. Ours is the exact
    value; any difference from torch must be such a near-tie, by one frame.
    """
    n = 3 if data is None else data.draw(st.integers(min_value=2, max_value=min(total, 1536)))
    ours = sample_indices(total, n)
    assert ours == [round(Fraction(i * (total - 1), n - 1)) for i in range(n)]  # Fraction rounds half to even
    torch_indices = torch.linspace(0, total - 1, n).round().long().tolist()
    noise = (total - 1) * 2.0**-21  # a few float32 ulps at this magnitude
    for i, (mine, theirs) in enumerate(zip(ours, torch_indices, strict=True)):
        if mine != theirs:
            exact = Fraction(i * (total - 1), n - 1)
            assert abs(mine - theirs) == 1
            assert abs(exact - math.floor(exact) - Fraction(1, 2)) <= noise, (i, exact, mine, theirs)


def _reference_pixel_cap(nframes: int, min_pixels: int, max_pixels: int, total_pixels: float, factor: int) -> float:
    """The ``max_pixels`` that qwen-vl-utils' ``fetch_video`` hands to ``smart_resize``."""
    video_frame_max_pixels = qvu.VIDEO_MAX_TOKEN_NUM * factor * factor
    cap = max(min(video_frame_max_pixels, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    return min(max_pixels, cap)


@settings(max_examples=3000, deadline=None)
@given(
    nframes=st.integers(min_value=1, max_value=768).map(lambda n: n * FRAME_FACTOR),
    factor=FACTORS,
    min_tokens=st.integers(min_value=1, max_value=512),
    max_tokens=st.integers(min_value=1, max_value=768),
    total_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=1_000_000)),
)
def test_frame_pixel_cap_matches_fetch_video(
    nframes: int, factor: int, min_tokens: int, max_tokens: int, total_tokens: int | None
) -> None:
    """Same cap as fetch_video for per-frame caps up to VIDEO_MAX_TOKEN_NUM (768 tokens).

    qwen-vl-utils also clamps every frame to 768 tokens' worth and always applies a total budget
    (``MODEL_SEQ_LEN`` x 0.9 tokens by default); the product lets a budget declare larger frames and
    no total, so those two clamps are not compared here (None is compared against an unbounded total).
    """
    f2 = factor * factor
    min_pixels, max_pixels = min_tokens * f2, max_tokens * f2
    assume(min_pixels <= max_pixels)
    total_pixels = None if total_tokens is None else total_tokens * f2
    expected = _reference_pixel_cap(
        nframes, min_pixels, max_pixels, math.inf if total_pixels is None else total_pixels, factor
    )
    assert frame_pixel_cap(nframes, min_pixels, max_pixels, total_pixels) == expected


@settings(max_examples=300, deadline=None)
@given(
    factor=FACTORS,
    min_tokens=st.integers(min_value=1, max_value=256),
    extra_tokens=st.integers(min_value=0, max_value=1024),
    height=SIDES,
    width=SIDES,
)
def test_no_frame_exceeds_max_frame_cells(
    factor: int, min_tokens: int, extra_tokens: int, height: int, width: int
) -> None:
    """The budget's worst-case frame costs at least as much as any real frame (qwen-vl-utils resize)."""
    min_pixels = min_tokens * factor * factor
    cap = float(min_pixels + extra_tokens * factor * factor)
    worst = max_frame_cells(factor, min_pixels, cap)
    assert smart_resize(worst.source_height, worst.source_width, factor, min_pixels, cap) == (worst.height, worst.width)
    try:
        h, w = qvu.smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=cap)
    except ValueError:
        return
    assert (h // factor) * (w // factor) <= worst.cells(factor)
