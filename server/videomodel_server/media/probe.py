"""Probe: what the container header says, and the over-budget checks made before decoding.

:class:`ProbeResult` is plain data; :func:`check_probe` is pure and raises the 4xx that names
the limit ("video is 312.4 s long; this model accepts at most 300 s (maxSeconds (--max-seconds))").
:func:`read_probe` reads an opened file with PyAV and runs only inside a decode-pool worker
(FFmpeg's demuxers parse hostile bytes there, not in the API process). It checks the header
first and decodes a single frame only after the header passed: PyAV exposes the display
matrix (rotation) on decoded frames only, and that first frame also proves the codec decodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING

from videomodel_server.budget import label

from .errors import InvalidVideo, MediaOverBudget, NoVideoStream
from .limits import MediaLimits

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream


@dataclass(frozen=True)
class ProbeResult:
    """Header facts about one video. Sizes are as stored (before rotation); seconds are floats.

    ``fps`` is the average frame rate (None when the container does not know it);
    ``frame_count`` None when the header does not say; ``rotation`` is the display-matrix angle
    in degrees counter-clockwise, normalised to 0/90/180/270; ``start_time`` is the stream's
    first timestamp in seconds (frames are addressed relative to it).
    """

    container: str
    codec: str
    width: int
    height: int
    duration: float | None
    fps: float | None
    frame_count: int | None
    rotation: int
    video_streams: int
    audio_streams: int
    total_streams: int
    stream_index: int
    start_time: float = 0.0
    base_fps: float | None = None
    """The stream's base (r_frame_rate) rate; far from ``fps`` hints at variable frame rate."""
    file_bytes: int = 0

    @property
    def display_width(self) -> int:
        return self.height if self.rotation % 180 else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation % 180 else self.height

    @property
    def variable_frame_rate(self) -> bool:
        """Header hint only (reliable for MP4; Matroska often reports a nominal rate)."""
        if self.fps is None or self.base_fps is None:
            return self.fps is None
        return abs(self.fps - self.base_fps) > 0.01 * self.base_fps


def check_probe(probe: ProbeResult, limits: MediaLimits, *, need_duration: bool = True) -> None:
    """Refuse, before any frame is decoded, what the limits do not accept (4xx, named limit)."""
    if probe.video_streams == 0 and probe.audio_streams == 0:
        raise InvalidVideo("the file has no audio or video stream (corrupt, or not a video)")
    if probe.video_streams == 0:
        audio = f" ({probe.audio_streams} audio stream{'s' if probe.audio_streams != 1 else ''})"
        raise NoVideoStream(f"the file has no video stream{audio if probe.audio_streams else ''}")
    if probe.total_streams > limits.max_streams:
        raise MediaOverBudget(
            f"the video file has {probe.total_streams} streams; at most {limits.max_streams} are accepted (max_streams)"
        )
    if probe.width <= 0 or probe.height <= 0:
        raise InvalidVideo("the video stream has no frame size (corrupt or unsupported header)")
    if probe.width > limits.max_source_width or probe.height > limits.max_source_height:
        raise MediaOverBudget(
            f"video frames are {probe.width}x{probe.height}; at most "
            f"{limits.max_source_width}x{limits.max_source_height} are accepted (max_source_width/height)"
        )
    pixels = probe.width * probe.height
    if pixels > limits.max_source_pixels:
        raise MediaOverBudget(
            f"video frames are {probe.width}x{probe.height} ({pixels / 1e6:.1f} megapixels); at most "
            f"{limits.max_source_pixels / 1e6:.1f} megapixels are accepted (max_source_pixels)"
        )
    if probe.fps is not None and probe.fps > limits.max_source_fps:
        raise MediaOverBudget(
            f"video declares {probe.fps:.6g} frames per second; at most {limits.max_source_fps:g} are accepted "
            "(max_source_fps)"
        )
    if probe.duration is not None:
        if not math.isfinite(probe.duration) or probe.duration < 0:
            raise InvalidVideo("the video header declares an invalid duration")
        if probe.duration > limits.max_seconds:
            raise MediaOverBudget(
                f"video is {probe.duration:.1f} s long; "
                f"this model accepts at most {limits.max_seconds:g} s ({label('max_seconds')})"
            )
    elif need_duration:
        raise InvalidVideo("the video's duration cannot be determined (no timing in the container)")
    max_frames = math.ceil(limits.max_seconds * limits.max_source_fps)
    if probe.frame_count is not None and probe.frame_count > max_frames:
        raise MediaOverBudget(
            f"video has {probe.frame_count} frames; at most {max_frames} are accepted "
            f"({label('max_seconds')} x max_source_fps)"
        )


# -- reading (inside a worker process only) -------------------------------------------------------


NO_PROTOCOLS = {"protocol_whitelist": "none"}
"""Container options that leave FFmpeg no protocol to open: the bytes arrive through our own file
object, and a demuxer that opens more (HLS segments, concat entries, an SDP file's RTP/UDP
sockets, MOV references) would otherwise reach the network or the filesystem from the worker."""


def open_container(file: IO[bytes]) -> InputContainer:
    """Open a container from a file object, mapping every FFmpeg failure to a 400."""
    import av

    try:
        return av.open(
            file,
            mode="r",
            options={"probesize": str(5 * 1024 * 1024), "analyzeduration": "5000000"},
            container_options=NO_PROTOCOLS,
        )
    except (av.error.FFmpegError, ValueError, OSError, EOFError):
        raise InvalidVideo("the file is not a video this server can read (unknown format or corrupt header)") from None


def pick_video_stream(container: InputContainer) -> VideoStream | None:
    """The first real video stream (cover art / attached pictures skipped)."""
    import av

    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        return stream
    return None


def read_probe(file: IO[bytes], limits: MediaLimits, file_bytes: int = 0) -> ProbeResult:
    """Open, read the header, check it, then learn the rotation from the first frame."""
    with open_container(file) as container:
        stream = pick_video_stream(container)
        audio = len(container.streams.audio)
        total = len(container.streams)
        if stream is None:
            probe = ProbeResult(container.format.name, "", 0, 0, None, None, None, 0, 0, audio, total, -1)
            check_probe(probe, limits)
            raise AssertionError("unreachable")  # pragma: no cover
        cc = stream.codec_context
        codec = cc.codec.canonical_name if cc is not None and cc.codec is not None else ""
        tb = stream.time_base
        duration: float | None = None
        if stream.duration is not None and stream.duration > 0 and tb is not None:
            duration = float(stream.duration * tb)
        elif container.duration is not None and container.duration > 0:
            duration = container.duration / 1_000_000
        fps = _rate(stream.average_rate) or (_rate(stream.guessed_rate) if duration is not None else None)
        start = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
        probe = ProbeResult(
            container=container.format.name,
            codec=codec,
            width=cc.width if cc is not None else 0,
            height=cc.height if cc is not None else 0,
            duration=duration,
            fps=fps,
            frame_count=stream.frames or None,
            rotation=_rotation_from_metadata(stream.metadata),
            video_streams=len(container.streams.video),
            audio_streams=audio,
            total_streams=total,
            stream_index=stream.index,
            start_time=start,
            base_fps=_rate(stream.base_rate),
            file_bytes=file_bytes,
        )
        check_probe(probe, limits, need_duration=False)
        if not codec or cc is None or cc.codec is None or not cc.codec.is_decoder:
            raise InvalidVideo("the video codec is not supported by this server")
        if probe.duration is None:
            probe = _walk_for_duration(container, stream, probe, limits)
            check_probe(probe, limits)
            container.seek(0)
        first = _first_frame(container, stream)
        if first is None:
            raise InvalidVideo("no frame of the video could be decoded (corrupt or truncated)")
        rotation = first.rotation if first.rotation else probe.rotation
        return replace(probe, rotation=normalise_rotation(rotation))


def normalise_rotation(degrees: float) -> int:
    """Any angle to 0/90/180/270 (display matrices only ever hold multiples of 90 in practice)."""
    return round(degrees / 90.0) % 4 * 90


def _rate(rate: object) -> float | None:
    try:
        value = float(rate)  # type: ignore[arg-type,unused-ignore]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _rotation_from_metadata(metadata: dict[str, str]) -> int:
    # Old muxers wrote a clockwise "rotate" tag instead of a display matrix.
    try:
        return normalise_rotation(-float(metadata.get("rotate", "0")))
    except ValueError:
        return 0


def _walk_for_duration(
    container: InputContainer, stream: VideoStream, probe: ProbeResult, limits: MediaLimits
) -> ProbeResult:
    """Demux (not decode) packets to find the last timestamp when the header has no duration."""
    import av

    tb = stream.time_base
    count, first, last = 0, None, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if count > limits.max_probe_packets:
                raise MediaOverBudget(
                    f"the video has more than {limits.max_probe_packets} frames and no duration in its header "
                    "(max_probe_packets)"
                )
            if packet.pts is not None and tb is not None:
                end = float((packet.pts + (packet.duration or 0)) * tb)
                start = float(packet.pts * tb)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
    except av.error.FFmpegError:
        pass  # a damaged tail: use what was read
    if last is None or first is None:
        raise InvalidVideo("the video's duration cannot be determined (no timing in the container)")
    duration = last - first
    fps = probe.fps if probe.fps is not None else (count / duration if duration > 0 else None)
    return replace(probe, duration=duration, frame_count=count, fps=fps, start_time=first)


def _first_frame(container: InputContainer, stream: VideoStream) -> VideoFrame | None:
    import av

    errors = 0
    for packet in container.demux(stream):
        try:
            for frame in packet.decode():
                return frame  # type: ignore[return-value]
        except av.error.FFmpegError:
            errors += 1
            if errors > 8:
                return None
    try:
        for frame in stream.decode(None):
            return frame
    except av.error.FFmpegError:
        return None
    return None
