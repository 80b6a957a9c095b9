"""Pre-extracted frame sequences: a video sent as JPEG frames the client already picked.

The wire form is vLLM's (``vllm/multimodal/media/video.py``, ``VideoMediaIO.load_base64``): a
``data:video/jpeg;base64,`` URL whose payload is the frames' base64 texts joined by commas
(``data:video/jpeg;base64,<frame 0>,<frame 1>,...``), with the request's
``media_io_kwargs.video`` describing where the frames come from:

- ``fps``: the source video's frame rate (default 1, as vLLM);
- ``frames_indices``: each frame's index in the source video (default ``0..n-1``), so frame i was
  shown at ``frames_indices[i] / fps`` seconds: the timestamps the engine is given;
- ``total_num_frames``: frames in the source video (default: the last index + 1);
- ``duration``: the source video's length in seconds (default ``total_num_frames / fps``);
- ``do_sample_frames``: true when the frames are *the whole video* for the server to sample (as
  vLLM hands the flag to the processor): they are then sampled down exactly like a decoded video
  (the budget's fps and frame cap, the same indices), and only the sampled JPEGs are decoded.

Every field is checked against the budget before any JPEG is decoded (:func:`plan_frames`, pure):
the frame count against the frames the plan priced, the declared length against ``maxSeconds``,
the indices strictly increasing and below ``total_num_frames``, one index per JPEG, the bytes
against ``maxVideoBytes``. A field that contradicts another or the JPEGs is a 400 naming it
(:class:`~.errors.InvalidFrames`); one past the budget is a 400 too
(:class:`~.errors.FramesOverBudget`): it is the request, not a fetched file, that is over.

The JPEGs are decoded in the decode pool (:func:`decode_jpeg_frames`, a ``"frames"`` job), each
header read first and its size checked (``max_source_pixels``, every frame the same size) before
its pixels are decoded, then resized like a decoded video's frames: ``smart_resize`` under the
budget's per-frame cap for that frame count, bicubic (area averaging past 2x). An odd count is
padded by repeating the last frame and its index, as vLLM's loaders do (the model merges frames
in pairs). The API process's side, the checks then the job, is
:func:`~.pipeline.load_frame_sequence`; this module is the pool's and the pipeline's shared part.
"""

from __future__ import annotations

import binascii
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from videomodel_server.budget import (
    FRAME_FACTOR,
    GeometryError,
    label,
    sample_indices,
    smart_nframes,
    smart_resize,
)
from videomodel_server.budget.sequence import FrameSequenceInfo

from .errors import FramesOverBudget, InvalidFrames, TooLarge
from .limits import MediaLimits, SamplingBudget

FRAMES_MEDIA_TYPE = "video/jpeg"
DEFAULT_FPS = 1.0
"""vLLM's default when a sequence comes without ``fps``."""
DURATION_SLACK_SECONDS = 1.0
"""A declared ``duration`` may differ from ``total_num_frames / fps`` by this much (or 10%)."""
JPEG_SOI = b"\xff\xd8\xff"
MAX_FRAME_INDEX = 10**9
"""No source video has this many frames (600 s at 480 fps is 288,000): past it an index or a frame
count is refused before any arithmetic on it (a JSON integer may have hundreds of digits)."""

IO_FIELD = "media_io_kwargs.video"
"""Where a sequence's metadata is in the request (errors name ``media_io_kwargs.video.<field>``)."""


@dataclass(frozen=True)
class FramesPlan:
    """Which JPEGs to decode and what the engine is told about them (pure result of the checks).

    ``positions``: the JPEGs (0-based, in the payload) to decode, in order, the last one repeated
    when the count was odd; ``indices``: their frames' indices in the source video (same length);
    ``fps``/``total_frames``/``duration``: the source video as declared (checked).
    """

    positions: tuple[int, ...]
    indices: tuple[int, ...]
    fps: float
    total_frames: int
    duration: float
    sent: int
    """JPEGs in the payload."""
    sampled: bool
    """``do_sample_frames``: the positions were sampled from every frame of the video."""
    clamped: tuple[str, ...] = ()
    binding: tuple[str, ...] = ()

    @property
    def nframes(self) -> int:
        return len(self.positions)

    @property
    def timestamps(self) -> tuple[float, ...]:
        """Seconds from the start of the source video of each frame (``index / fps``)."""
        return tuple(i / self.fps for i in self.indices)

    @property
    def sample_fps(self) -> float:
        """Frames per second of video the sequence covers (as a decoded video's: ``n / span * fps``)."""
        span = self.indices[-1] - self.indices[0] + 1
        return self.nframes / span * self.fps

    def metadata(self) -> dict[str, Any]:
        """vLLM's video metadata for these frames (``do_sample_frames`` off: they are the samples)."""
        return {
            "fps": self.fps,
            "duration": self.duration,
            "total_num_frames": self.total_frames,
            "frames_indices": list(self.indices),
            "do_sample_frames": False,
        }


@dataclass(frozen=True)
class FramesJob:
    """A ``"frames"`` job for a pool worker: which JPEGs of the file, and the size rules."""

    spans: tuple[tuple[int, int], ...]
    """``(offset, length)`` in the file of each JPEG to decode, in output order."""
    positions: tuple[int, ...]
    """Each one's position in the sequence (for messages)."""
    factor: int
    min_pixels: int
    pixel_cap: float
    max_source_pixels: int
    headers_only: bool = False


@dataclass(frozen=True)
class JpegFrames:
    """What a ``"frames"`` job produced: ``(T, H, W, 3)`` uint8 RGB (empty for ``headers_only``)."""

    frames: npt.NDArray[np.uint8]
    source_width: int
    source_height: int
    height: int
    width: int


# -- the URL -------------------------------------------------------------------------------------


def is_frame_sequence(url: str) -> bool:
    """Whether ``url`` is a ``data:video/jpeg`` URL (header only; nothing is decoded)."""
    if not isinstance(url, str) or url[:5].lower() != "data:":
        return False
    header = url[5:261].partition(",")[0]
    return header.split(";")[0].strip().lower() == FRAMES_MEDIA_TYPE


def count_frames(url: str) -> int:
    """How many frames the URL holds (commas + 1), without splitting it."""
    return url.count(",")  # the header's comma separates it from frame 0


def split_frames(url: str, limits: MediaLimits) -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """The JPEGs of a frame-sequence URL, concatenated, and each one's ``(offset, length)``.

    Raises :class:`~.errors.TooLarge` (413) past ``max_video_bytes`` (measured on the base64
    text before decoding anything) and :class:`~.errors.InvalidFrames` for a header that is not
    ``;base64``, an empty frame, a frame that is not base64, or bytes that do not start as a JPEG.
    """
    header, comma, payload = url[5:].partition(",")
    if not comma or len(header) > 256:
        raise InvalidFrames("the frame-sequence data URL has no header", param="video_url")
    if header.split(";")[-1].strip().lower() != "base64":
        raise InvalidFrames(
            "a frame-sequence data URL must be base64 (data:video/jpeg;base64,<frame>,<frame>,...)", param="video_url"
        )
    cap = limits.max_video_bytes
    # Measured before decoding anything: each frame's base64 decodes to 3/4 of its unpadded length.
    unpadded = len(payload) - payload.count(",") - payload.count("=")
    if unpadded * 3 // 4 - payload.count(",") - 1 > cap:
        raise TooLarge(
            f"the frame sequence decodes to about {len(payload) * 3 // 4} bytes; the limit is {cap} bytes "
            f"({label('max_video_bytes')})",
            param="video_url",
        )
    blob = bytearray()
    spans: list[tuple[int, int]] = []
    for position, text in enumerate(payload.split(",")):
        try:
            data = binascii.a2b_base64(text.strip(), strict_mode=True)
        except (binascii.Error, ValueError):
            raise InvalidFrames(f"frame {position} of the sequence is not valid base64", param="video_url") from None
        if not data.startswith(JPEG_SOI):
            raise InvalidFrames(f"frame {position} of the sequence is not a JPEG image", param="video_url")
        spans.append((len(blob), len(data)))
        blob += data
        if len(blob) > cap:
            raise TooLarge(
                f"the frame sequence is more than {cap} bytes ({label('max_video_bytes')})", param="video_url"
            )
    return bytes(blob), tuple(spans)


# -- the checks (pure) ---------------------------------------------------------------------------------


def plan_frames(meta: FrameSequenceInfo, sent: int, budget: SamplingBudget, limits: MediaLimits) -> FramesPlan:
    """Check a sequence of ``sent`` JPEGs and its metadata against the budget; say what to decode.

    ``budget`` is the request's sampling budget (the server's, narrowed by the client's knobs); its
    ``frame_cap`` is the most frames the plan priced for one video.
    """
    fps = _fps(meta, limits)
    if sent < 1:
        raise InvalidFrames("the frame sequence holds no frame", param="video_url")
    indices = _indices(meta, sent)
    total = _total(meta, indices)
    duration = _duration(meta, total, fps, indices, limits)
    clamped: list[str] = []
    binding: list[str] = []
    if meta.do_sample_frames:
        if sent != total or indices != tuple(range(sent)):
            raise InvalidFrames(
                f"do_sample_frames asks the server to sample the frames, so they must be every frame of the "
                f"video: {sent} JPEGs, total_num_frames {total}",
                param=f"{IO_FIELD}.do_sample_frames",
            )
        if sent < FRAME_FACTOR:
            raise InvalidFrames(f"the video has {sent} frame; at least {FRAME_FACTOR} are needed", param="video_url")
        try:
            nframes = smart_nframes(sent, fps, budget.fps, min(budget.max_frames, budget.frame_cap))
        except GeometryError as exc:
            raise InvalidFrames(f"the frame sequence cannot be sampled: {exc}", param="video_url") from None
        positions = tuple(sample_indices(sent, nframes))
        binding.append(f"frames sampled by fps (--fps)={budget.fps:g} from {sent} frames")
        return FramesPlan(positions, positions, fps, total, duration, sent, True, tuple(clamped), tuple(binding))
    padded = sent + sent % FRAME_FACTOR
    cap = min(budget.frame_cap, budget.max_frames)
    if padded > cap:
        raise FramesOverBudget(
            f"the frame sequence holds {sent} frames; this model accepts at most {cap} per video "
            f"({label('max_frames')} {budget.max_frames}, {label('max_seconds')} {budget.max_seconds:g} at "
            f"fps {budget.fps:g})",
            param="video_url",
        )
    positions = tuple(range(sent))
    if padded != sent:
        positions += (sent - 1,)
        indices += (indices[-1],)
        clamped.append(f"frames={sent}->{padded} (the last frame repeated: frames are merged in pairs)")
    binding.append(f"frames set by the client ({sent} JPEG frames)")
    return FramesPlan(positions, indices, fps, total, duration, sent, False, tuple(clamped), tuple(binding))


def _fps(meta: FrameSequenceInfo, limits: MediaLimits) -> float:
    fps = DEFAULT_FPS if meta.fps is None else float(meta.fps)
    if not math.isfinite(fps) or fps <= 0:
        raise InvalidFrames("fps must be a positive number of frames per second", param=f"{IO_FIELD}.fps")
    if fps > limits.max_source_fps:
        raise FramesOverBudget(
            f"fps is {fps:g}; source frame rates above {limits.max_source_fps:g} are not accepted (max_source_fps)",
            param=f"{IO_FIELD}.fps",
        )
    return fps


def _indices(meta: FrameSequenceInfo, sent: int) -> tuple[int, ...]:
    param = f"{IO_FIELD}.frames_indices"
    if meta.frames_indices is None:
        return tuple(range(sent))
    indices = tuple(meta.frames_indices)
    if len(indices) != sent:
        raise InvalidFrames(
            f"frames_indices lists {len(indices)} indices but the sequence holds {sent} JPEG frames; "
            "give one index per frame",
            param=param,
        )
    for i, index in enumerate(indices):
        if index < 0:
            raise InvalidFrames(f"frames_indices[{i}] is negative", param=param)
        if index > MAX_FRAME_INDEX:
            raise InvalidFrames(f"frames_indices[{i}] is beyond any video (over {MAX_FRAME_INDEX})", param=param)
        if i and index <= indices[i - 1]:
            raise InvalidFrames(
                f"frames_indices must be strictly increasing: frames_indices[{i}] ({index}) follows {indices[i - 1]}",
                param=param,
            )
    return indices


def _total(meta: FrameSequenceInfo, indices: Sequence[int]) -> int:
    if meta.total_num_frames is None:
        return max(len(indices), indices[-1] + 1)
    total = meta.total_num_frames
    if not 1 <= total <= MAX_FRAME_INDEX:
        raise InvalidFrames(
            f"total_num_frames must be a positive integer of at most {MAX_FRAME_INDEX}",
            param=f"{IO_FIELD}.total_num_frames",
        )
    if total < len(indices):
        raise InvalidFrames(
            f"total_num_frames ({total}) is less than the {len(indices)} frames sent",
            param=f"{IO_FIELD}.total_num_frames",
        )
    if indices[-1] >= total:
        raise InvalidFrames(
            f"frames_indices[{len(indices) - 1}] ({indices[-1]}) is beyond the video: total_num_frames is {total}",
            param=f"{IO_FIELD}.frames_indices",
        )
    return total


def _duration(meta: FrameSequenceInfo, total: int, fps: float, indices: Sequence[int], limits: MediaLimits) -> float:
    length = total / fps
    param = f"{IO_FIELD}.duration"
    duration = length
    if meta.duration is not None:
        duration = float(meta.duration)
        if not math.isfinite(duration) or duration <= 0:
            raise InvalidFrames("duration must be a positive number of seconds", param=param)
        if abs(duration - length) > max(DURATION_SLACK_SECONDS, 0.1 * length):
            raise InvalidFrames(
                f"duration ({duration:g} s) contradicts total_num_frames / fps ({total} / {fps:g} = {length:.2f} s)",
                param=param,
            )
    longest = max(duration, length, indices[-1] / fps)
    if longest > limits.max_seconds:
        where = param if meta.duration is not None else f"{IO_FIELD}.total_num_frames"
        raise FramesOverBudget(
            f"the frame sequence covers a video of {longest:.1f} s; this model accepts at most "
            f"{limits.max_seconds:g} s ({label('max_seconds')})",
            param=where,
        )
    return duration


# -- decoding (worker side) --------------------------------------------------------------------------


def decode_jpeg_frames(file: IO[bytes], job: FramesJob) -> JpegFrames:
    """Decode and resize the JPEGs ``job`` names from ``file`` (pool worker only).

    Each header is read before its pixels (PIL's ``open`` decodes nothing): a frame that is not a
    JPEG, larger than ``max_source_pixels`` or not the size of the first is refused before it is
    decoded. The target size is fixed by the first frame (``smart_resize`` under ``pixel_cap``).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    from .decode import resize_rgb

    Image.MAX_IMAGE_PIXELS = job.max_source_pixels
    out: npt.NDArray[np.uint8] | None = None
    size: tuple[int, int] | None = None
    target = (0, 0)
    for slot, ((offset, length), position) in enumerate(zip(job.spans, job.positions, strict=True)):
        file.seek(offset)
        data = file.read(length)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data), formats=["JPEG"])
                width, height = image.size
                if width * height > job.max_source_pixels:
                    raise FramesOverBudget(
                        f"frame {position} of the sequence is {width}x{height} ({width * height / 1e6:.1f} "
                        f"megapixels); at most {job.max_source_pixels / 1e6:.1f} megapixels per frame are "
                        "accepted (max_source_pixels)",
                        param="video_url",
                    )
                if size is None:
                    size = (width, height)
                    try:
                        target = smart_resize(height, width, job.factor, job.min_pixels, job.pixel_cap)
                    except GeometryError:
                        raise FramesOverBudget(
                            f"frames of {width}x{height} cannot be resized within the budget", param="video_url"
                        ) from None
                    if job.headers_only:
                        break
                    out = np.empty((len(job.spans), target[0], target[1], 3), dtype=np.uint8)
                elif (width, height) != size:
                    raise InvalidFrames(
                        f"frame {position} of the sequence is {width}x{height} but frame {job.positions[0]} is "
                        f"{size[0]}x{size[1]}: every frame must have the same size",
                        param="video_url",
                    )
                assert out is not None
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
                resize_rgb(rgb, target[1], target[0], into=out[slot])
        except Image.DecompressionBombError:
            raise FramesOverBudget(
                f"frame {position} of the sequence has more than {job.max_source_pixels} pixels (max_source_pixels)",
                param="video_url",
            ) from None
        except UnidentifiedImageError:
            raise InvalidFrames(f"frame {position} of the sequence is not a JPEG image", param="video_url") from None
        except (OSError, ValueError, SyntaxError, EOFError):
            raise InvalidFrames(
                f"frame {position} of the sequence is corrupt or truncated", param="video_url"
            ) from None
    assert size is not None
    frames = out if out is not None else np.empty((0,), np.uint8)
    return JpegFrames(frames, size[0], size[1], target[0], target[1])
