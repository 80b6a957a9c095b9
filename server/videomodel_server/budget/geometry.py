"""Frame sampling and frame geometry with qwen-vl-utils 0.0.14 semantics.

Pure integer/float arithmetic only. Every function here is checked against qwen-vl-utils'
``smart_nframes`` / ``smart_resize`` / ``fetch_video`` by the oracle tests, so the server samples
and resizes exactly what the budget priced.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

FRAME_FACTOR = 2
"""Frames are sampled in pairs: the vision tower's temporal patch is 2."""
FPS_MIN_FRAMES = 4
MAX_ASPECT_RATIO = 200
MIN_PIXELS_SLACK = 1.05
"""qwen-vl-utils never lets the per-frame cap fall below 1.05 x min_pixels."""


class GeometryError(ValueError):
    """A frame or video that the Qwen-VL preprocessing cannot represent."""


def round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: float) -> tuple[int, int]:
    """Target (height, width): multiples of ``factor`` with area in [min_pixels, max_pixels].

    Same arithmetic as qwen-vl-utils: round each side to the factor; if the area is over the
    cap scale down (floor), if under the floor scale up (ceil). Note that the upscaling branch
    can land *above* ``max_pixels`` for extreme aspect ratios; :func:`max_frame_cells` accounts
    for that.
    """
    if height <= 0 or width <= 0:
        raise GeometryError(f"frame size must be positive, got {width}x{height}")
    if max_pixels < min_pixels:
        raise GeometryError(f"max_pixels ({max_pixels}) is below min_pixels ({min_pixels})")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise GeometryError(f"aspect ratio {ratio:.1f} exceeds the maximum of {MAX_ASPECT_RATIO}")
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    if h_bar == 0 or w_bar == 0:
        # qwen-vl-utils would hand a zero-sized frame to the resizer; refuse it plainly.
        raise GeometryError(f"a {width}x{height} frame is too thin to fit {int(max_pixels)} pixels")
    return h_bar, w_bar


def smart_nframes(total_frames: int, video_fps: float, fps: float, max_frames: int) -> int:
    """How many frames to sample from a video (qwen-vl-utils ``smart_nframes`` in fps mode).

    ``total_frames / video_fps`` is the duration; the result is ``duration * fps`` clamped to
    [4, min(max_frames, total_frames)] and rounded down to an even count.
    """
    if total_frames < FRAME_FACTOR:
        raise GeometryError(f"video has {total_frames} frame(s); at least {FRAME_FACTOR} are needed")
    if video_fps <= 0:
        raise GeometryError(f"video frame rate must be positive, got {video_fps}")
    min_frames = ceil_by_factor(FPS_MIN_FRAMES, FRAME_FACTOR)
    cap = floor_by_factor(min(max_frames, total_frames), FRAME_FACTOR)
    nframes = total_frames / video_fps * fps
    nframes = min(min(max(nframes, min_frames), cap), total_frames)
    result = floor_by_factor(nframes, FRAME_FACTOR)
    if not FRAME_FACTOR <= result <= total_frames:
        raise GeometryError(f"cannot sample an even number of frames in [2, {total_frames}] (got {result})")
    return result


def most_sampled_frames(max_seconds: float, fps: float, max_frames: int) -> int:
    """Frames sampled from the longest in-budget video: ``floor2(min(max(maxSeconds*fps, 4), maxFrames))``.

    The 4-frame floor of :func:`smart_nframes` applies: a 1 s budget at 1 fps still samples 4.
    """
    longest = max(max_seconds * fps, FPS_MIN_FRAMES)
    return max(FRAME_FACTOR, floor_by_factor(min(longest, max_frames), FRAME_FACTOR))


def sample_indices(total_frames: int, nframes: int) -> list[int]:
    """Evenly spaced frame indices: ``i * (total - 1) / (nframes - 1)`` rounded half to even.

    The exact rational value of qwen-vl-utils' ``torch.linspace(0, total-1, n).round()``. Torch
    computes it in float32 (vectorised differently per CPU), so its result is off by one frame
    wherever the exact value lies within float32 noise of a half; the sampled count, and so
    every token count, is the same.
    """
    if nframes == 1:
        return [0]
    span, steps = total_frames - 1, nframes - 1
    indices = []
    for i in range(nframes):
        quotient, remainder = divmod(i * span, steps)
        if 2 * remainder > steps or (2 * remainder == steps and quotient % 2 == 1):
            quotient += 1
        indices.append(quotient)
    return indices


def frame_pixel_cap(nframes: int, min_pixels: int, max_pixels: int, total_pixels: int | None) -> float:
    """The per-frame pixel cap for a video of ``nframes`` frames (qwen-vl-utils ``fetch_video``).

    With a total budget, each frame gets ``total_pixels / nframes * 2`` (frames are merged in
    pairs), never less than 1.05 x min_pixels, never more than ``max_pixels``.
    """
    per_frame = float(max_pixels) if total_pixels is None else min(max_pixels, total_pixels / nframes * FRAME_FACTOR)
    return min(float(max_pixels), max(per_frame, int(min_pixels * MIN_PIXELS_SLACK)))


@dataclass(frozen=True)
class FrameGeometry:
    """A source frame size and the size it is resized to."""

    source_height: int
    source_width: int
    height: int
    width: int

    def cells(self, factor: int) -> int:
        """Tokens one temporal group of this frame costs (one token per factor x factor cell)."""
        return (self.height // factor) * (self.width // factor)


def _largest_product_at_most(limit: int) -> tuple[int, int]:
    """Factor pair (a <= b) maximising a*b <= limit with b/a within the aspect limit."""
    best = (1, 1)
    for a in range(1, math.isqrt(limit) + 1):
        b = limit // a
        if b / a > MAX_ASPECT_RATIO - 1:
            continue
        if a * b > best[0] * best[1] or (a * b == best[0] * best[1] and b - a < best[1] - best[0]):
            best = (a, b)
    return best


def _upscale_candidates(factor: int, min_pixels: int) -> list[float]:
    """Aspect ratios (>= 1) at which the upscaling branch's ceil() jumps: the only maxima."""
    m = min_pixels / factor**2
    ratios = {1.0, float(MAX_ASPECT_RATIO)}
    eps = 1e-9
    k = 1
    while k * k / m <= MAX_ASPECT_RATIO:
        r = k * k / m * (1 + eps)
        if r >= 1:
            ratios.add(r)
        k += 1
    j = 1
    while m / (j * j) >= 1:
        r = m / (j * j) * (1 - eps)
        if r <= MAX_ASPECT_RATIO:
            ratios.add(r)
        j += 1
    return sorted(ratios)


def max_frame_cells_count(factor: int, min_pixels: int, max_pixel_cap: float) -> int:
    """Cells of :func:`max_frame_cells`, without building the geometry (cheap, cached)."""
    a, b = _largest_product_at_most(int(max_pixel_cap // factor**2))
    upscaled = _max_upscaled(factor, min_pixels)
    return max(a * b, upscaled.cells(factor) if upscaled else 0)


def max_frame_cells(factor: int, min_pixels: int, max_pixel_cap: float) -> FrameGeometry:
    """The resized frame of the most cells any in-budget source frame can reach.

    Two branches of :func:`smart_resize` can produce the maximum: a frame at or under the cap
    (at most ``floor(cap / factor^2)`` cells, realised by a near-square factor pair), and a tiny
    frame of extreme aspect ratio that is *upscaled* to ``min_pixels`` and, by rounding both
    sides up, lands above it. The result is never below what a real frame can cost, and its
    source size reproduces it exactly.
    """
    a, b = _largest_product_at_most(int(max_pixel_cap // factor**2))
    best = FrameGeometry(a * factor, b * factor, a * factor, b * factor)
    upscaled = _max_upscaled(factor, min_pixels)
    if upscaled is not None and upscaled.cells(factor) > best.cells(factor):
        return upscaled
    return best


@functools.lru_cache(maxsize=256)
def _max_upscaled(factor: int, min_pixels: int) -> FrameGeometry | None:
    """The costliest frame the upscaling branch produces (it does not depend on the cap).

    Candidate grids come from the aspect ratios where the branch's ceil() jumps; a grid counts
    only if some integer source frame reaches it (the real-valued analysis names grids no frame
    produces, e.g. any upscaled grid when min_pixels is a single cell).
    """
    m = min_pixels / factor**2
    grids = {
        (math.ceil(math.sqrt(m / r)), math.ceil(math.sqrt(m * r))) for r in _upscale_candidates(factor, min_pixels)
    }
    for short_cells, long_cells in sorted(grids, key=lambda g: (-g[0] * g[1], g)):
        source = _realise_upscale(factor, min_pixels, short_cells, long_cells)
        if source is not None:
            return FrameGeometry(source[0], source[1], short_cells * factor, long_cells * factor)
    return None


def _realise_upscale(factor: int, min_pixels: int, short_cells: int, long_cells: int) -> tuple[int, int] | None:
    """An integer source frame (h, w) that smart_resize upscales to the given cell grid."""
    for short in range(1, math.isqrt(min_pixels) + 1):
        # beta*short must land in ((short_cells-1)f, short_cells*f] and beta*long in the same
        # window for long_cells; with beta^2 = min/(short*long) that bounds long directly.
        for long_side in _long_sides(short, factor, min_pixels, long_cells):
            if not short <= long_side <= short * MAX_ASPECT_RATIO:
                continue
            h_bar = max(factor, round_by_factor(short, factor))
            w_bar = max(factor, round_by_factor(long_side, factor))
            if h_bar * w_bar >= min_pixels:
                continue
            try:
                resized = smart_resize(short, long_side, factor, min_pixels, min_pixels)
            except GeometryError:
                continue
            if resized == (short_cells * factor, long_cells * factor):
                return short, long_side
    return None


def _long_sides(short: int, factor: int, min_pixels: int, long_cells: int) -> range:
    # beta*long = sqrt(min*long/short) in ((long_cells-1)f, long_cells*f]
    low = ((long_cells - 1) * factor) ** 2 * short / min_pixels
    high = (long_cells * factor) ** 2 * short / min_pixels
    return range(max(short, math.floor(low)), math.ceil(high) + 1)
