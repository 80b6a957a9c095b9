"""Synthetic test videos, encoded with PyAV (bundled FFmpeg) at test time and cached on disk.

Why synthetic: no video corpus can be downloaded here or in CI, and a generated clip lets a
test know *exactly* what each frame holds. Every frame carries its own index, written as a
grid of grey cells (luma only, so chroma subsampling and lossy coding cannot blur it), so a
test can check WHICH frame a decoder returned, even after resizing: see
:func:`frame_index_of`. The lower half is a moving colour gradient so the clip is visibly
alive.

Layout of one frame (in the stored, un-rotated orientation)::

    +----+----+----+----+
    | b0 | b1 | b2 | b3 |   top half: 2 x 4 cells, each one of 4 grey levels = 2 bits,
    +----+----+----+----+   cell k holds bits 2k..2k+1 of the frame index (16 bits total)
    | b4 | b5 | b6 | b7 |
    +----+----+----+----+
    |  moving gradient  |   bottom half: colour gradient shifted by the index
    +-------------------+

:class:`VideoSpec` describes a clip; :func:`make_video` encodes it once and caches it under
``cache_dir("videos")`` keyed by the spec (and :data:`GENERATOR_VERSION`), so reruns are free.
The ``*_file`` functions (named in :data:`HOSTILE`) build malformed inputs for the hostile corpus
(docs/security.md#how-it-is-tested).

Conventions: ``rotation`` is the display-matrix angle in degrees *counter-clockwise*, the value
PyAV's ``VideoFrame.rotation`` reads back (a phone's "rotate=90" tag is ``rotation=-90``).
``width``/``height`` are the stored (coded) size; a player shows the frame rotated.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from .cache import cache_dir

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import OutputContainer
    from av.video.stream import VideoStream

GENERATOR_VERSION = 3
"""Bump when the frame content or encoding changes: it is part of every cache key."""

Codec = Literal["h264", "vp9", "hevc", "av1"]
Container = Literal["mp4", "webm", "mkv", "mov"]

CODE_ROWS = 2
CODE_COLS = 4
CODE_LEVELS = (16, 96, 176, 255)
"""Grey levels of the index cells: 80 apart, so +-40 of coding noise still reads right."""
BITS_PER_CELL = 2
MAX_INDEX = 1 << (CODE_ROWS * CODE_COLS * BITS_PER_CELL)
"""Frame indices are stored modulo this (65,536); longer clips wrap."""

ENCODERS: dict[str, str] = {"h264": "libx264", "vp9": "libvpx-vp9", "hevc": "libx265", "av1": "libsvtav1"}
"""Codec name -> the FFmpeg encoder used. All ship in PyAV's wheels."""
DECODED_NAMES: dict[str, tuple[str, ...]] = {
    "h264": ("h264",),
    "vp9": ("vp9", "libvpx-vp9"),
    "hevc": ("hevc",),
    "av1": ("av1", "libdav1d", "libaom-av1"),
}
"""Codec names a decoder may report back for each codec."""


@dataclass(frozen=True)
class VideoSpec:
    """What to encode. Frozen and hashable: it is the cache key.

    ``fps`` is the nominal rate; with ``vfr=True`` the first half of the clip runs at ``fps``
    and the second half at ``fps / 4`` (explicit pts), so sampling by index and by timestamp
    give visibly different frames. ``audio`` adds a mono sine track (AAC, or Opus in WebM).
    """

    codec: Codec = "h264"
    container: Container = "mp4"
    width: int = 160
    height: int = 120
    fps: float = 10.0
    seconds: float = 2.0
    vfr: bool = False
    rotation: int = 0
    audio: bool = False
    crf: int = 20
    keyframe_interval: int | None = None
    """GOP length in frames (None: the encoder default). Long GOPs make seeking costlier."""
    bframes: bool = True
    faststart: bool = False
    """MP4/MOV only: put the index (moov) first, as streaming sites do; truncation then keeps it."""

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ValueError(f"unknown codec {self.codec!r}")
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even and >= 2 (yuv420p)")
        if not self.fps > 0 or not self.seconds > 0:
            raise ValueError("fps and seconds must be positive")
        if self.rotation % 90:
            raise ValueError("rotation must be a multiple of 90")

    @property
    def suffix(self) -> str:
        return "." + self.container

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after the rotation."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    def frame_times(self) -> list[float]:
        """Presentation time (s) of every frame, as encoded (before container rounding)."""
        return [float(t) for t in self._frame_times_exact()]

    def _frame_times_exact(self) -> list[Fraction]:
        rate = Fraction(self.fps).limit_denominator(1001)
        end = Fraction(self.seconds).limit_denominator(1000)
        times: list[Fraction] = []
        t = Fraction(0)
        if not self.vfr:
            n = max(1, round(end * rate))
            return [Fraction(i) / rate for i in range(n)]
        half = end / 2
        while t < end - Fraction(1, 10**6):
            times.append(t)
            t += (1 / rate) if t < half else (4 / rate)
        return times

    @property
    def frame_count(self) -> int:
        return len(self._frame_times_exact())

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one."""
        times = self._frame_times_exact()
        last_step = (1 / Fraction(self.fps).limit_denominator(1001)) * (4 if self.vfr and len(times) > 1 else 1)
        return float(times[-1] + last_step)

    def key(self) -> str:
        payload = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def filename(self) -> str:
        w, h = self.width, self.height
        tags = "".join(
            [
                "_vfr" if self.vfr else "",
                f"_rot{self.rotation}" if self.rotation else "",
                "_audio" if self.audio else "",
            ]
        )
        return f"{self.codec}_{w}x{h}_{self.fps:g}fps_{self.seconds:g}s{tags}_{self.key()}{self.suffix}"


# -- frame content ----------------------------------------------------------------------------


def frame_pixels(index: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The RGB frame (height, width, 3) for frame ``index``: index cells on top, gradient below."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    top = height // 2
    code = index % MAX_INDEX
    for cell in range(CODE_ROWS * CODE_COLS):
        r, c = divmod(cell, CODE_COLS)
        level = CODE_LEVELS[(code >> (BITS_PER_CELL * cell)) & 3]
        y0, y1 = r * top // CODE_ROWS, (r + 1) * top // CODE_ROWS
        x0, x1 = c * width // CODE_COLS, (c + 1) * width // CODE_COLS
        img[y0:y1, x0:x1] = level
    rows = height - top
    if rows:
        xs = (np.arange(width, dtype=np.int64) * 256 // max(width, 1) + 8 * index) % 256
        ys = np.arange(rows, dtype=np.int64) * 256 // max(rows, 1)
        img[top:, :, 0] = xs[None, :].astype(np.uint8)
        img[top:, :, 1] = ys[:, None].astype(np.uint8)
        img[top:, :, 2] = (255 - xs)[None, :].astype(np.uint8)
    return img


def frame_index_of(rgb: npt.NDArray[Any], rotation: int = 0) -> int:
    """Read back the index written by :func:`frame_pixels` from a decoded RGB frame.

    Works on frames resized to any size where a cell keeps a few pixels. ``rotation`` is the
    counter-clockwise display rotation that was *applied* to the frame (the video's
    ``rotation``); it is undone first so the cells are where they were drawn.
    """
    if rotation % 360:
        # Undo a counter-clockwise rotation by rotating clockwise.
        rgb = np.rot90(rgb, k=-(rotation // 90) % 4)
    luma = rgb.astype(np.float32).mean(axis=2)
    height, width = luma.shape
    top = height // 2
    code = 0
    levels = np.array(CODE_LEVELS, dtype=np.float32)
    for cell in range(CODE_ROWS * CODE_COLS):
        r, c = divmod(cell, CODE_COLS)
        y0, y1 = r * top // CODE_ROWS, (r + 1) * top // CODE_ROWS
        x0, x1 = c * width // CODE_COLS, (c + 1) * width // CODE_COLS
        # The middle half of the cell: away from edges blurred by scaling and chroma.
        dy, dx = max(0, (y1 - y0) // 4), max(0, (x1 - x0) // 4)
        patch = luma[y0 + dy : max(y1 - dy, y0 + dy + 1), x0 + dx : max(x1 - dx, x0 + dx + 1)]
        value = float(np.median(patch))
        code |= int(np.argmin(np.abs(levels - value))) << (BITS_PER_CELL * cell)
    return code


# -- encoding ---------------------------------------------------------------------------------


def _encoder_options(spec: VideoSpec) -> dict[str, str]:
    big = spec.width * spec.height * spec.frame_count > 60_000_000
    gop = {} if spec.keyframe_interval is None else {"g": str(spec.keyframe_interval)}
    if spec.codec == "h264":
        opts = {"preset": "ultrafast" if big else "veryfast", "crf": str(spec.crf)}
        if not spec.bframes:
            opts["bf"] = "0"
        return {**opts, **gop}
    if spec.codec == "hevc":
        params = "log-level=error" + ("" if spec.bframes else ":bframes=0")
        if spec.keyframe_interval is not None:
            params += f":keyint={spec.keyframe_interval}"
        return {"preset": "ultrafast", "crf": str(spec.crf), "x265-params": params}
    if spec.codec == "vp9":
        return {"deadline": "realtime", "cpu-used": "8", "crf": str(spec.crf + 10), "b": "0", "row-mt": "1", **gop}
    # SVT-AV1 is chatty on stderr and its presets above 11 are aliases.
    return {"preset": "11", "crf": str(spec.crf + 10), "svtav1-params": "enable-overlays=0", **gop}


def _atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; moved into place only on success."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cached(name: str, build: Callable[[Path], None]) -> Path:
    path = cache_dir("videos") / name
    if path.exists():
        return path
    for tmp in _atomic_output(path):
        build(tmp)
    return path


def make_video(spec: VideoSpec) -> Path:
    """Encode ``spec`` (once; cached by its key) and return the file's path."""
    return _cached(spec.filename(), lambda out: encode_video(spec, out))


def encode_video(spec: VideoSpec, out: Path) -> None:
    """Encode ``spec`` to ``out`` unconditionally (no cache)."""
    import av  # heavy: imported lazily so the module loads without it

    _quiet_av_logs()
    times = spec._frame_times_exact()
    rate = Fraction(spec.fps).limit_denominator(1001)
    time_base = Fraction(1, 90_000) if spec.vfr else 1 / rate
    options = {"movflags": "+faststart"} if spec.faststart and spec.container in ("mp4", "mov") else {}
    with av.open(str(out), "w", format=_muxer(spec.container), options=options) as container:
        stream = cast(
            "VideoStream", container.add_stream(ENCODERS[spec.codec], rate=rate, options=_encoder_options(spec))
        )
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.time_base = time_base
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        audio = None
        if spec.audio:
            acodec = "libopus" if spec.container == "webm" else "aac"
            audio = cast("AudioStream", container.add_stream(acodec, rate=48_000))
            audio.layout = "mono"
        samples_done = 0
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, spec.width, spec.height), format="rgb24")
            frame.pts = round(t / time_base)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            if audio is not None:
                samples_done = _mux_audio(container, audio, samples_done, float(t) + 1 / spec.fps)
        container.mux(stream.encode(None))
        if audio is not None:
            _mux_audio(container, audio, samples_done, spec.duration)
            container.mux(audio.encode(None))


def _mux_audio(container: OutputContainer, audio: AudioStream, done: int, until_s: float) -> int:
    """Encode a 440 Hz tone from sample ``done`` up to ``until_s`` seconds; return samples done."""
    import av

    rate, chunk = 48_000, 960
    while done + chunk <= until_s * rate:
        t = (np.arange(done, done + chunk) / rate).astype(np.float32)
        samples = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, done
        container.mux(audio.encode(frame))
        done += chunk
    return done


def _muxer(container: str) -> str:
    return {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska"}[container]


_av_logs_quiet = False


def _quiet_av_logs() -> None:
    global _av_logs_quiet
    if not _av_logs_quiet:
        import av.logging

        av.logging.set_level(av.logging.PANIC)
        _av_logs_quiet = True


# -- the standard set -------------------------------------------------------------------------


STANDARD: dict[str, VideoSpec] = {
    "h264_mp4": VideoSpec("h264", "mp4", 320, 240, 10, 2.0),
    "vp9_webm": VideoSpec("vp9", "webm", 320, 240, 10, 2.0),
    "hevc_mp4": VideoSpec("hevc", "mp4", 320, 240, 10, 2.0),
    "av1_mp4": VideoSpec("av1", "mp4", 320, 240, 10, 2.0),
    "av1_webm": VideoSpec("av1", "webm", 160, 128, 10, 1.0),
    "portrait": VideoSpec("h264", "mp4", 180, 320, 15, 1.0),
    "extreme_1x10": VideoSpec("h264", "mp4", 40, 400, 8, 1.0),
    "extreme_10x1": VideoSpec("vp9", "webm", 400, 40, 8, 1.0),
    "hd_720p": VideoSpec("h264", "mp4", 1280, 720, 30, 2.0),
    "short_half_second": VideoSpec("h264", "mp4", 160, 120, 30, 0.5),
    "ntsc_29_97": VideoSpec("h264", "mp4", 160, 120, 30000 / 1001, 3.0),
    "long_3min_tiny": VideoSpec("h264", "mp4", 64, 48, 5, 180.0),
    "long_6min_tiny": VideoSpec("vp9", "webm", 64, 48, 2, 360.0),
    "vfr": VideoSpec("h264", "mp4", 160, 120, 20, 4.0, vfr=True),
    "vfr_webm": VideoSpec("vp9", "webm", 160, 120, 20, 4.0, vfr=True),
    "rotated_90": VideoSpec("h264", "mp4", 320, 180, 10, 1.0, rotation=90),
    "rotated_270": VideoSpec("h264", "mp4", 320, 180, 10, 1.0, rotation=-90),
    "rotated_180": VideoSpec("hevc", "mp4", 160, 120, 10, 1.0, rotation=180),
    "with_audio": VideoSpec("h264", "mp4", 160, 120, 10, 2.0, audio=True),
    "with_audio_webm": VideoSpec("vp9", "webm", 160, 120, 10, 2.0, audio=True),
}
"""Named specs tests can ask for by name (the ``standard_video`` fixture)."""


def hd_clip(seconds: float = 60.0, fps: float = 30.0) -> VideoSpec:
    """A 1280x720 H.264 clip for timing runs (60 s x 30 fps encodes in ~10-20 s, then cached)."""
    return VideoSpec("h264", "mp4", 1280, 720, fps, seconds, keyframe_interval=int(fps * 2), crf=28)


# -- hostile and malformed inputs (docs/security.md#how-it-is-tested) ------------------------


def truncated_file(spec: VideoSpec | None = None, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of a valid file's bytes (MP4 loses its index, WebM its tail)."""
    spec = spec or VideoSpec(seconds=2.0)
    source = make_video(spec)
    data = source.read_bytes()
    name = f"truncated_{int(keep * 1000)}_{source.name}"

    def build(out: Path) -> None:
        out.write_bytes(data[: max(1, int(len(data) * keep))])

    return _cached(name, build)


def bit_flipped_file(spec: VideoSpec | None = None, flips: int = 200, seed: int = 0, skip_header: int = 64) -> Path:
    """A valid file with ``flips`` random bits flipped after the first ``skip_header`` bytes."""
    spec = spec or VideoSpec(seconds=2.0)
    source = make_video(spec)
    data = bytearray(source.read_bytes())
    rng = random.Random(seed)
    for _ in range(flips):
        pos = rng.randrange(min(skip_header, len(data) - 1), len(data))
        data[pos] ^= 1 << rng.randrange(8)
    name = f"bitflip_{flips}_{seed}_{skip_header}_{source.name}"

    def build(out: Path) -> None:
        out.write_bytes(bytes(data))

    return _cached(name, build)


def not_a_video_file(kind: Literal["random", "text", "html", "empty", "png"] = "random") -> Path:
    """Bytes that are not a video at all."""

    def build(out: Path) -> None:
        if kind == "random":
            out.write_bytes(random.Random(1).randbytes(64 * 1024))
        elif kind == "text":
            out.write_text("this is not a video\n" * 100)
        elif kind == "html":
            out.write_text("<!doctype html><html><body>Not found</body></html>")
        elif kind == "empty":
            out.write_bytes(b"")
        else:
            import av

            with av.open(str(out), "w", format="image2", options={"update": "1"}) as c:
                s = c.add_stream("png", rate=1)
                s.width, s.height, s.pix_fmt = 64, 64, "rgb24"
                f = av.VideoFrame.from_ndarray(frame_pixels(7, 64, 64), format="rgb24")
                c.mux(s.encode(f))
                c.mux(s.encode(None))

    suffix = {"html": ".html", "text": ".txt", "png": ".png"}.get(kind, ".bin")
    return _cached(f"not_a_video_{kind}_v{GENERATOR_VERSION}{suffix}", build)


def audio_only_file(seconds: float = 2.0) -> Path:
    """An M4A (MP4) with one AAC track and no video stream."""

    def build(out: Path) -> None:
        import av

        _quiet_av_logs()
        with av.open(str(out), "w", format="mp4") as c:
            a = c.add_stream("aac", rate=48_000)
            a.layout = "mono"
            _mux_audio(c, a, 0, seconds)
            c.mux(a.encode(None))

    return _cached(f"audio_only_{seconds:g}s_v{GENERATOR_VERSION}.m4a", build)


def many_streams_file(video_streams: int = 3, audio_streams: int = 40) -> Path:
    """A Matroska file with many tiny streams (stream-count limits, demuxer load)."""

    def build(out: Path) -> None:
        import av

        _quiet_av_logs()
        with av.open(str(out), "w", format="matroska") as c:
            vids = []
            for _ in range(video_streams):
                s = c.add_stream("libx264", rate=5, options={"preset": "ultrafast"})
                s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
                vids.append(s)
            auds = []
            for _ in range(audio_streams):
                a = c.add_stream("aac", rate=48_000)
                a.layout = "mono"
                auds.append(a)
            for i in range(5):
                for s in vids:
                    f = av.VideoFrame.from_ndarray(frame_pixels(i, 32, 32), format="rgb24")
                    f.pts = i
                    c.mux(s.encode(f))
            for s in vids:
                c.mux(s.encode(None))
            for a in auds:
                _mux_audio(c, a, 0, 1.0)
                c.mux(a.encode(None))

    return _cached(f"many_streams_{video_streams}v_{audio_streams}a_v{GENERATOR_VERSION}.mkv", build)


def hours_long_file(hours: float = 3.0, fps: float = 0.5, size: int = 16) -> Path:
    """A genuinely hours-long clip at tiny size and a low rate (3 h at 0.5 fps: 5,400 frames)."""
    spec = VideoSpec("h264", "mp4", size, size, fps, hours * 3600, crf=40, keyframe_interval=600, bframes=False)
    return make_video(spec)


def absurd_fps_file(fps: int = 1_000_000, frames: int = 30) -> Path:
    """An MP4 whose timestamps declare ``fps`` frames per second (30 frames in 30 us)."""

    def build(out: Path) -> None:
        _encode_with_pts(out, list(range(frames)), Fraction(1, fps), "mp4", 1000)

    return _cached(f"absurd_fps_{fps}_{frames}_v{GENERATOR_VERSION}.mp4", build)


def zero_fps_file() -> Path:
    """An MP4 whose sample table gives every frame duration 0 (all 20 frames at t=0; the
    header still says 2 s): a zero frame rate."""
    source = make_video(VideoSpec(seconds=2.0, bframes=False))

    def build(out: Path) -> None:
        data = bytearray(source.read_bytes())
        at = data.find(b"stts")
        entries = int.from_bytes(data[at + 8 : at + 12], "big")
        for e in range(entries):
            delta = at + 12 + e * 8 + 4
            data[delta : delta + 4] = b"\0\0\0\0"
        out.write_bytes(bytes(data))

    return _cached(f"zero_fps_{source.name}", build)


def no_timing_file() -> Path:
    """A raw Annex-B H.264 elementary stream: no container timing at all (fps unknown)."""

    def build(out: Path) -> None:
        import av

        _quiet_av_logs()
        with av.open(str(out), "w", format="h264") as c:
            s = c.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
            s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
            for i in range(20):
                f = av.VideoFrame.from_ndarray(frame_pixels(i, 64, 64), format="rgb24")
                f.pts = i
                c.mux(s.encode(f))
            c.mux(s.encode(None))

    return _cached(f"no_timing_v{GENERATOR_VERSION}.h264", build)


def sparse_pts_file(gap_seconds: float = 3600.0, frames: int = 4) -> Path:
    """A few frames an hour apart: hours of declared duration, almost no data."""

    def build(out: Path) -> None:
        _encode_with_pts(out, [round(i * gap_seconds * 1000) for i in range(frames)], Fraction(1, 1000), "matroska", 1)

    return _cached(f"sparse_pts_{gap_seconds:g}_{frames}_v{GENERATOR_VERSION}.mkv", build)


def huge_dimensions_file(width: int = 8192, height: int = 8192) -> Path:
    """Two flat frames of a very large declared size (pixel-limit checks before decoding)."""

    def build(out: Path) -> None:
        import av

        _quiet_av_logs()
        with av.open(str(out), "w", format="mp4") as c:
            s = c.add_stream("libx264", rate=1, options={"preset": "ultrafast", "crf": "51"})
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            for i in range(2):
                f = av.VideoFrame(width, height, "yuv420p")
                for plane in f.planes:
                    np.frombuffer(plane, dtype=np.uint8)[:] = 128  # type: ignore[call-overload]
                f.pts = i
                c.mux(s.encode(f))
            c.mux(s.encode(None))

    return _cached(f"huge_{width}x{height}_v{GENERATOR_VERSION}.mp4", build)


def live_webm_file(seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (160, 120)) -> Path:
    """A WebM written to a non-seekable sink, as browsers' MediaRecorder does: no duration in
    the header and no cues (index), so a reader must walk packets to learn the length."""

    class _Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, chunk: bytes) -> int:
            self.data += bytes(chunk)
            return len(chunk)

        def seekable(self) -> bool:
            return False

    def build(out: Path) -> None:
        import av

        _quiet_av_logs()
        sink = _Sink()
        width, height = size
        with av.open(sink, "w", format="webm") as c:
            s = c.add_stream("libvpx-vp9", rate=fps, options={"deadline": "realtime", "cpu-used": "8"})
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            for i in range(round(seconds * fps)):
                f = av.VideoFrame.from_ndarray(frame_pixels(i, width, height), format="rgb24")
                f.pts = i
                c.mux(s.encode(f))
            c.mux(s.encode(None))
        out.write_bytes(bytes(sink.data))

    return _cached(f"live_{seconds:g}s_{fps}fps_{size[0]}x{size[1]}_v{GENERATOR_VERSION}.webm", build)


def _encode_with_pts(out: Path, pts: list[int], time_base: Fraction, muxer: str, rate: int) -> None:
    import av

    _quiet_av_logs()
    with av.open(str(out), "w", format=muxer) as c:
        s = c.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "bf": "0"})
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        s.codec_context.time_base = time_base
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(frame_pixels(i, 64, 64), format="rgb24")
            f.pts, f.time_base = p, time_base
            c.mux(s.encode(f))
        c.mux(s.encode(None))


HOSTILE: dict[str, Callable[[], Path]] = {
    "truncated": truncated_file,
    "truncated_header": lambda: truncated_file(keep=0.02),
    "truncated_faststart": lambda: truncated_file(VideoSpec(seconds=2.0, faststart=True), keep=0.5),
    "bit_flipped": bit_flipped_file,
    "bit_flipped_heavy": lambda: bit_flipped_file(flips=5000, seed=1, skip_header=0),
    "not_a_video_random": not_a_video_file,
    "not_a_video_text": lambda: not_a_video_file("text"),
    "not_a_video_html": lambda: not_a_video_file("html"),
    "empty": lambda: not_a_video_file("empty"),
    "image_png": lambda: not_a_video_file("png"),
    "audio_only": audio_only_file,
    "many_streams": many_streams_file,
    "hours_long": hours_long_file,
    "sparse_pts_hours": sparse_pts_file,
    "absurd_fps": absurd_fps_file,
    "zero_fps": zero_fps_file,
    "no_timing": no_timing_file,
}
"""Named hostile inputs (each a zero-argument builder returning a cached path)."""


__all__ = [
    "CODE_LEVELS",
    "DECODED_NAMES",
    "ENCODERS",
    "GENERATOR_VERSION",
    "HOSTILE",
    "MAX_INDEX",
    "STANDARD",
    "VideoSpec",
    "absurd_fps_file",
    "audio_only_file",
    "bit_flipped_file",
    "encode_video",
    "frame_index_of",
    "frame_pixels",
    "hd_clip",
    "hours_long_file",
    "huge_dimensions_file",
    "live_webm_file",
    "make_video",
    "many_streams_file",
    "no_timing_file",
    "not_a_video_file",
    "sparse_pts_file",
    "truncated_file",
    "zero_fps_file",
]
