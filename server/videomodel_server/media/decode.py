"""Decode only the sampled frames, straight to the target size (runs in a pool worker).

:func:`decode_frames` walks the stream once in presentation order, seeking forward over gaps
longer than :data:`SEEK_GAP_SECONDS` (to the keyframe before the next target), and for each
target time keeps the frame on screen at that instant: the last frame whose time is <= the
target. That frame is scaled by swscale directly from the decoder's YUV frame to the target RGB
size (bicubic, like qwen-vl-utils' resize), then rotated by the display matrix. At most one
full-resolution frame (the current candidate) is alive at a time; the output is preallocated
``(T, H, W, 3)`` uint8. Corrupt packets are skipped (up to a bound); a stream that ends long
before its header said is refused as truncated rather than padded with repeats.

Runs only inside a :class:`~.pool.DecodePool` worker process (FFmpeg parses untrusted bytes).
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidVideo
from .probe import open_container
from .sampling import SamplingPlan

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

SEEK_GAP_SECONDS = 1.0
"""Seek (to the keyframe before the target) instead of decoding through gaps longer than this;
seeking stops for the rest of a file as soon as one seek fails to move forward."""
MAX_CORRUPT_PACKETS = 32
TRUNCATION_SLACK = 0.1
"""A stream may end this fraction of its duration (or 1 s) before its last target."""


@dataclass(frozen=True)
class DecodedFrames:
    """Frames ``(T, H, W, 3)`` uint8 RGB, and each frame's actual time (stream clock, s)."""

    frames: npt.NDArray[np.uint8]
    times: tuple[float, ...]
    peak_rss_bytes: int = 0
    """The worker's peak resident set during this job (VmHWM, reset before each job)."""
    frames_decoded: int = 0
    """Frames the decoder produced to find these (the work done; seeking lowers it)."""
    seeks: int = 0


def decode_frames(file: IO[bytes], plan: SamplingPlan, threads: int = 1) -> DecodedFrames:
    """Decode the frames ``plan`` asks for from an open file (PyAV; worker process only)."""
    import av

    coded_w, coded_h = plan.coded_size
    out = np.empty((plan.nframes, plan.height, plan.width, 3), dtype=np.uint8)
    times: list[float] = []
    targets = plan.target_times
    eps = plan.tolerance
    k = 0  # next target to fill
    prev: VideoFrame | None = None
    prev_time = -1.0
    count = 0
    errors = 0
    seeks = 0

    def emit(frame: VideoFrame, t: float) -> None:
        nonlocal k
        rgb: npt.NDArray[Any] = frame.to_ndarray(width=coded_w, height=coded_h, format="rgb24", interpolation="BICUBIC")
        if plan.rotation:
            rgb = np.rot90(rgb, k=plan.rotation // 90)
        out[k] = rgb
        times.append(t)
        k += 1

    with open_container(file) as container:
        stream = container.streams[plan.stream_index]
        if not isinstance(stream, av.video.stream.VideoStream):
            raise InvalidVideo("the video stream changed between probe and decode")
        cc = stream.codec_context
        cc.thread_count = max(1, threads)
        cc.thread_type = "AUTO" if threads > 1 else "SLICE"
        tb = stream.time_base
        can_seek = True
        seek_origin: float | None = None
        last_seek_target = -1.0
        while k < plan.nframes:
            seek_to: float | None = None
            try:
                for packet in container.demux(stream):
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError:
                        errors += 1
                        if errors > MAX_CORRUPT_PACKETS:
                            raise InvalidVideo("the video is corrupt: too many undecodable packets") from None
                        continue
                    for frame in decoded:
                        if not isinstance(frame, av.VideoFrame):
                            continue
                        if frame.pts is not None and tb is not None:
                            t = float(frame.pts * tb)
                        else:
                            t = plan.start_time + count / plan.source_fps
                        count += 1
                        # Every target before this frame is shown by the previous frame.
                        while k < plan.nframes and t > targets[k] + eps:
                            emit(prev if prev is not None else frame, prev_time if prev is not None else t)
                        if seek_origin is not None:
                            # First frame after a seek: if it did not land past where we were,
                            # keyframes are too sparse for seeking to pay off; stop seeking.
                            can_seek = can_seek and t > seek_origin
                            seek_origin = None
                        prev, prev_time = frame, t
                        if (
                            k < plan.nframes
                            and can_seek
                            and targets[k] - t > SEEK_GAP_SECONDS
                            and targets[k] != last_seek_target  # already landed on its keyframe
                        ):
                            seek_to = last_seek_target = targets[k]
                    if k >= plan.nframes or seek_to is not None:
                        break
            except av.error.FFmpegError:
                break  # the demuxer cannot go on: treat as the end of the stream (checked below)
            if seek_to is None or tb is None:
                break  # end of stream
            try:
                container.seek(int(seek_to / tb), stream=stream, backward=True, any_frame=False)
                seeks += 1
                seek_origin = prev_time
                prev = None  # the decoder was flushed: the frames after the seek are the candidates
            except av.error.FFmpegError:
                can_seek = False
        # End of stream: the last frame stays on screen for any targets left.
        try:
            for frame in stream.decode(None):
                t = float(frame.pts * tb) if frame.pts is not None and tb is not None else prev_time
                while k < plan.nframes and t > targets[k] + eps:
                    emit(prev if prev is not None else frame, prev_time if prev is not None else t)
                prev, prev_time = frame, t
        except av.error.FFmpegError:
            pass
        if prev is None and k == 0:
            raise InvalidVideo("no frame of the video could be decoded (corrupt or truncated)")
        slack = max(1.0, TRUNCATION_SLACK * plan.duration, 2 / plan.source_fps)
        if k < plan.nframes and prev_time < targets[-1] - slack:
            raise InvalidVideo(
                f"the video ends at {prev_time - plan.start_time:.1f} s but its header says "
                f"{plan.duration:.1f} s: the file is truncated or corrupt"
            )
        while k < plan.nframes:
            assert prev is not None
            emit(prev, prev_time)
    return DecodedFrames(out, tuple(times), peak_rss_bytes(), count, seeks)


def reset_peak_rss() -> None:
    """Start a new high-water mark for this process (Linux: write 5 to /proc/self/clear_refs).

    Workers live for many jobs; without this, one hostile file's peak would be reported for
    every later job. Silently does nothing where the kernel does not offer it.
    """
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def peak_rss_bytes() -> int:
    """Peak resident memory since the last :func:`reset_peak_rss` (VmHWM), else since start."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
