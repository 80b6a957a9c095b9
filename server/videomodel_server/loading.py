"""The media seam: what the serving code needs from the media pipeline (fetch, probe, decode).

:class:`MediaLoader` turns one :class:`~videomodel_server.jobs.MediaRef` into decoded,
sampled, resized frames plus the metadata vLLM needs, or raises an error of the server's tree
(:class:`~videomodel_server.errors.ServerError`). The production implementation adapts
``videomodel_server.media`` (see :mod:`videomodel_server.media_adapter`); tests may use any
other implementation. Cancelling :meth:`MediaLoader.load` must stop the fetch/decode it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .jobs import MediaRef

CacheSource = Literal["uuid", "revalidated", "content", "miss"]
"""Where a video's frames came from (see :attr:`SamplingReceipt.cache`)."""


@dataclass(frozen=True)
class SamplingReceipt:
    """How one video was (or, for a dry run, would be) sampled, for the response's receipt.

    ``timestamps``: seconds from the start of the video of each frame (true times, window
    included); ``label_seconds``: the latest time a frame can have (the window's end, or the
    video's duration), which prices Qwen3-VL's timestamp labels; ``binding``: the limits that
    decided the frame count and size, in words.
    """

    frames: int
    height: int
    width: int
    sample_fps: float
    duration: float
    timestamps: tuple[float, ...]
    label_seconds: float
    window: tuple[float, float] | None = None
    binding: tuple[str, ...] = ()
    source: str = "video"
    """``"video"`` (a file decoded here) or ``"frames"`` (a pre-extracted JPEG frame sequence)."""
    frame_recovery: bool | None = None
    """Whether frame recovery was on for this video (None: not applicable, e.g. a frame sequence)."""
    recovered_frames: tuple[int, ...] = ()
    """Positions of the frames that frame recovery filled with the next good frame."""
    cache: CacheSource | None = None
    """Where the frames came from: ``"uuid"`` (the client's id, nothing fetched), ``"revalidated"``
    (the URL's origin answered 304 Not Modified: nothing downloaded), ``"content"`` (fetched; the
    same bytes were decoded before), ``"miss"`` (decoded now), None (cache off)."""


@dataclass(frozen=True)
class MediaEstimate:
    """A dry run of one media item: its receipt (None for images: they are not fetched), or the
    reason the budget refuses it (``problem``)."""

    ref: MediaRef
    receipt: SamplingReceipt | None = None
    problem: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    clamped: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedMedia:
    """One decoded media item.

    ``frames`` is T x H x W x 3 uint8 for a video, H x W x 3 for an image. ``timings`` holds
    the seconds each stage took (``fetch``, ``probe``, ``decode``); ``clamped`` notes where the
    pipeline sampled differently than asked (for example a video sampled sparser to fit
    ``max_frames``).
    """

    ref: MediaRef
    frames: npt.NDArray[np.uint8]
    metadata: dict[str, Any] = field(default_factory=dict)
    sample_fps: float | None = None
    duration: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    clamped: tuple[str, ...] = ()
    receipt: SamplingReceipt | None = None
    engine_id: str | None = None
    """A stable id of these frames for the engine's ``multi_modal_uuids`` (None: the engine hashes)."""

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0]) if self.ref.kind == "video" else 1

    @property
    def height(self) -> int:
        return int(self.frames.shape[-3])

    @property
    def width(self) -> int:
        return int(self.frames.shape[-2])


class MediaLoader(Protocol):
    def check(self, ref: MediaRef) -> None:
        """Refuse ``ref`` now if its URL's text is enough to (a forbidden IP-literal host, a bad
        scheme), with the error :meth:`load` would raise; pure, no I/O. The request translation
        calls it as it reads the request (``RequestLimits.check_media``), before any other work."""
        ...

    async def load(self, ref: MediaRef) -> LoadedMedia:
        """Fetch, check, sample and decode ``ref``; raise a :class:`ServerError` for bad media."""
        ...

    async def estimate(self, ref: MediaRef) -> MediaEstimate:
        """Fetch and probe ``ref`` and plan its sampling as :meth:`load` would, decoding nothing.

        Media the budget refuses comes back with its ``problem``; other errors are raised as by
        :meth:`load`.
        """
        ...

    def cache_lookups(self) -> dict[str, int]:
        """Decoded-video cache lookups so far by result (``hit``, ``miss``, ``uuid_hit``,
        ``uuid_miss``) and ``eviction``s: monotonic counts, read at scrape time."""
        ...

    async def start(self) -> None:
        """Start the worker pool (inside the running event loop, at app start-up)."""
        ...

    async def close(self) -> None:
        """Stop the worker pool (process shutdown)."""
        ...
