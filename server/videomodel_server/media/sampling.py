"""Sampling and geometry (pure): which instants of a video to decode, and at what size.

Everything numeric comes from the budget module (``smart_nframes``, ``sample_indices``,
``frame_pixel_cap``, ``smart_resize``: qwen-vl-utils 0.0.14 semantics), so the server samples
exactly what the budget priced; this module only chooses their inputs from the probe.

Frames are addressed by **timestamp**, always: the plan lists target times, and the decoder
returns, for each, the frame on screen at that instant (the last frame whose time is <= the
target). For a constant-rate video the targets are exactly ``index / fps`` of the indices
qwen-vl-utils would pick, so index and timestamp sampling agree; for variable-rate video the
same targets are evenly spaced *in time* over the clip (not over frame numbers); when the fps
is unknown, the frame grid is taken as ``frame_count / duration`` (or a 1 kHz grid when even
the count is unknown).

The vLLM metadata is built after decoding from the *actual* times of the frames returned
(:meth:`SamplingPlan.metadata`): ``frames_indices[i] / fps`` is the true timestamp of frame i
(exact for constant rate; within half a source frame for variable rate), which is what
Qwen's M-RoPE time positions are built from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from videomodel_server.budget import (
    FRAME_FACTOR,
    GeometryError,
    frame_pixel_cap,
    sample_indices,
    smart_nframes,
    smart_resize,
)

from ..errors import InvalidRequest
from .errors import MediaError, MediaOverBudget
from .limits import SamplingBudget
from .probe import ProbeResult

TIMESTAMP_GRID_FPS = 1000.0
"""Frame grid assumed when neither the frame rate nor the frame count is known."""


@dataclass(frozen=True)
class SamplingPlan:
    """What to decode: ``nframes`` frames at ``target_times``, resized to ``height x width``.

    ``height``/``width`` are the displayed (rotated) size the model sees; the decoder scales
    the stored frame to the swapped size first when ``rotation`` is 90/270, then rotates.
    ``target_times`` are seconds on the stream's own clock (``start_time`` included).
    """

    nframes: int
    indices: tuple[int, ...]
    target_times: tuple[float, ...]
    height: int
    width: int
    rotation: int
    source_fps: float
    total_frames: int
    duration: float
    sample_fps: float
    start_time: float
    stream_index: int
    pixel_cap: float
    variable_rate: bool
    frame_recovery: bool = False
    """Fill a target whose frame fails to decode with the next good frame (see ``decode.py``)."""

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) to scale the *stored* frame to before rotating it."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    @property
    def tolerance(self) -> float:
        """A frame within this many seconds after a target still counts as 'at' the target."""
        return 0.25 / self.source_fps

    def frame_indices_for(self, times: Sequence[float]) -> list[int]:
        """Indices on the ``source_fps`` grid of frames shown at ``times`` (stream clock)."""
        top = max(self.total_frames - 1, 0)
        return [min(top, max(0, round((t - self.start_time) * self.source_fps))) for t in times]

    def metadata(self, actual_times: Sequence[float] | None = None) -> dict[str, Any]:
        """The video metadata vLLM takes with the frames (``do_sample_frames`` off).

        Pass the decoder's actual frame times: indices then reproduce the true timestamps.
        """
        indices = list(self.indices) if actual_times is None else self.frame_indices_for(actual_times)
        return {
            "fps": self.source_fps,
            "duration": self.duration,
            "total_num_frames": self.total_frames,
            "frames_indices": indices,
            "do_sample_frames": False,
        }


def plan_sampling(
    probe: ProbeResult,
    budget: SamplingBudget,
    num_frames: int | None = None,
    *,
    window: Window | None = None,
    fps_ceiling: float | None = None,
    frame_recovery: bool = False,
) -> SamplingPlan:
    """Choose frames and geometry for one probed video. Raises ``MediaOverBudget`` (422) when the
    video cannot be represented (too few frames, extreme aspect ratio).

    ``window`` (seconds, either end None for the video's own) samples only that part of the video,
    with the true timestamps and indices (see :func:`window_frames`); ``fps_ceiling`` caps an exact
    ``num_frames`` at what sampling at that rate would give (the budget's fps is a density ceiling);
    ``frame_recovery`` goes with the plan to the decoder (see :mod:`.decode`).
    """
    if probe.duration is None:
        raise MediaOverBudget("the video's duration is unknown")
    duration = max(probe.duration, 0.0)
    fps = probe.fps
    if probe.frame_count:
        total = probe.frame_count
        if fps is None:
            fps = total / duration if duration > 0 else TIMESTAMP_GRID_FPS
    elif fps is not None:
        total = max(1, math.floor(duration * fps + 0.5))
    else:
        fps = TIMESTAMP_GRID_FPS
        total = max(1, math.floor(duration * fps + 0.5))
    if total < FRAME_FACTOR:
        raise MediaOverBudget(f"the video has {total} frame; at least {FRAME_FACTOR} are needed")
    first, span = window_frames(window, total, fps, duration) if window is not None else (0, total)
    try:
        if num_frames is None:
            nframes = smart_nframes(span, fps, budget.fps, budget.max_frames)
        else:
            nframes = max(FRAME_FACTOR, min(round(num_frames / FRAME_FACTOR) * FRAME_FACTOR, span // 2 * 2))
            if fps_ceiling is not None:
                nframes = min(nframes, smart_nframes(span, fps, fps_ceiling, budget.max_frames))
        indices = [first + i for i in sample_indices(span, nframes)]
        cap = frame_pixel_cap(nframes, budget.min_pixels, budget.max_pixels, budget.total_pixels)
        display_h = probe.width if probe.rotation % 180 else probe.height
        display_w = probe.height if probe.rotation % 180 else probe.width
        height, width = smart_resize(display_h, display_w, budget.factor, budget.min_pixels, cap)
    except GeometryError:
        raise _geometry_error(probe, total) from None
    times = tuple(probe.start_time + i / fps for i in indices)
    return SamplingPlan(
        nframes=nframes,
        indices=tuple(indices),
        target_times=times,
        height=height,
        width=width,
        rotation=probe.rotation,
        source_fps=fps,
        total_frames=total,
        duration=duration,
        sample_fps=nframes / max(span, 1e-6) * fps,
        start_time=probe.start_time,
        stream_index=probe.stream_index,
        pixel_cap=cap,
        variable_rate=probe.variable_frame_rate,
        frame_recovery=frame_recovery,
    )


# -- time windows (issue 12 item 9) ------------------------------------------------------------------

Window = tuple[float | None, float | None]
"""``(video_start, video_end)`` in seconds from the start of the video; None: the video's own end."""


class InvalidWindow(MediaError, InvalidRequest):
    """A time window that selects no part of the video (400). ``param`` is the field at fault
    (``video_start`` or ``video_end``), relative to the content part."""

    code = "invalid_video_window"


def window_frames(window: Window, total: int, fps: float, duration: float) -> tuple[int, int]:
    """The first frame index and the frame count of ``window`` (qwen-vl-utils semantics).

    As ``calculate_video_frame_range``: the start is rounded up and the end down to the frame grid,
    an end past the video is the video's end. Refuses a window that starts at or after the end of
    the video or holds fewer than two frames (:class:`InvalidWindow`, 400 naming the field).
    """
    start, end = window
    length = min(duration, total / fps) if duration > 0 else total / fps
    first = 0
    if start is not None:
        if not math.isfinite(start) or start < 0:
            raise InvalidWindow(f"video_start ({start:g} s) must be a non-negative number", param="video_start")
        if start >= length:
            raise InvalidWindow(
                f"video_start ({start:g} s) is at or after the end of the video ({length:.2f} s long)",
                param="video_start",
            )
        first = math.ceil(start * fps - 1e-9)
    last = total - 1
    if end is not None:
        if not math.isfinite(end) or end <= (start or 0.0):
            raise InvalidWindow(f"video_end ({end:g} s) must be after video_start", param="video_end")
        last = min(last, math.floor(min(end, length) * fps + 1e-9))
    span = last - first + 1
    if span < FRAME_FACTOR:
        raise InvalidWindow(
            f"the window {start or 0:g}-{end if end is not None else length:g} s holds {max(span, 0)} frame(s) "
            f"of the video; at least {FRAME_FACTOR} are needed",
            param="video_end" if end is not None else "video_start",
        )
    return first, span


def _geometry_error(probe: ProbeResult, total: int) -> MediaOverBudget:
    w, h = probe.display_width, probe.display_height
    ratio = max(w, h) / max(1, min(w, h))
    if ratio > 200:
        return MediaOverBudget(f"video frames are {w}x{h} (aspect ratio {ratio:.0f}:1); at most 200:1 is supported")
    return MediaOverBudget(f"a {w}x{h} video of {total} frames cannot be sampled within the budget")
