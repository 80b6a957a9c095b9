"""One call from a media URL to model-ready frames: fetch -> probe -> sample -> decode.

:func:`load_video` (and its dry run, ``decode=False``), :func:`load_image` and
:func:`load_frame_sequence` (a ``data:video/jpeg`` URL of JPEG frames, :mod:`.frames`).

For the API layer::

    limits = MediaLimits(max_seconds=plan.max_seconds, max_video_bytes=plan.max_video_bytes,
                         fetch_timeout_seconds=plan.fetch_timeout_seconds, ...)
    budget = SamplingBudget.from_budget(video_budget, model.geometry)
    async with DecodePool.from_limits(limits) as pool:       # once, in the app lifespan
        fetcher = Fetcher()                                   # once; holds the TLS context
        video = await load_video(url, limits, budget, pool, fetcher=fetcher,
                                 overrides=SamplingOverrides(fps=1, num_frames=16))
        engine_input = (video.frames, video.metadata)         # multi_modal_data={"video": [...]}
        # pass video.sample_fps as the processor's fps (Qwen2.5-VL second_per_grid_ts)
        # video.clamped: sentences to surface (header/field); video.stats: stage seconds

Errors: everything this raises on purpose is a :class:`~.errors.MediaError` with ``status``,
``code``, ``message`` (safe to show; never contains the URL, bytes or addresses) and
``param`` (None here, or the media option at fault; the loader prefixes the request field, e.g.
``messages[0].content[1]``). Anything else
is a bug (500). Cancellation (client disconnect) propagates: an in-flight download stops and a
worker mid-decode is killed and replaced.

Guarantees, in order: the URL is validated and fetched under ``limits`` (SSRF guard, byte cap,
deadlines); the header is probed in a worker and over-budget media is refused before any frame
is decoded; frames are chosen by timestamp exactly as the budget module computes; only those
frames are decoded, straight to the target size, in an isolated worker with a time and memory
limit.

Repeated videos: with ``pool.cache`` on (``MediaLimits.decode_cache_bytes``, via
``DecodePool.from_limits``), the fetched bytes are hashed and a video already decoded under the
same budget is returned without probing or decoding (``stats.cache_hit``); its frames are then
shared and read-only. An http(s) URL fetched before with a strong validator, whose frames are
still cached, is fetched conditionally: on ``304 Not Modified`` nothing is downloaded either
(``stats.revalidated``; see :mod:`.validators`).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from videomodel_server.budget import frame_pixel_cap
from videomodel_server.budget.sequence import FrameSequenceInfo

from .cache import CachedVideo, CacheKey, content_digest
from .errors import InvalidFrames
from .fetch import FetchedMedia, Fetcher
from .frames import FramesJob, FramesPlan, JpegFrames, count_frames, plan_frames, split_frames
from .images import DecodedImage, ImageBudget
from .limits import MediaLimits, SamplingBudget, SamplingOverrides, apply_overrides
from .pool import DecodePool
from .probe import ProbeResult
from .sampling import SamplingPlan, Window, plan_sampling


@dataclass(frozen=True)
class StageTimings:
    """Wall-clock seconds per stage (for the per-stage latency histograms), and whether the
    decoded-video cache answered (then probe and decode took no time; see ``pool.cache.stats``
    for the running hit/miss/eviction counters)."""

    fetch_s: float
    probe_s: float = 0.0
    decode_s: float = 0.0
    hash_s: float = 0.0
    """Hashing the fetched bytes for the cache key (0 with the cache off)."""
    cache_hit: bool | None = None
    """True: served from the cache; False: decoded (a miss); None: the cache is off."""
    revalidated: bool = False
    """The URL's origin answered ``304 Not Modified``: the cached frames were served, no bytes
    downloaded (``fetch_s`` is the round trip)."""


@dataclass(frozen=True)
class LoadedVideo:
    """Model-ready frames and everything needed to hand them to vLLM.

    ``frames``: (T, H, W, 3) uint8 RGB at the budget geometry, T even (T is 0 for the dry run,
    ``load_video(decode=False)``: the plan without its pixels). ``metadata``: vLLM's
    video metadata (``fps``, ``duration``, ``total_num_frames``, ``frames_indices``,
    ``do_sample_frames=False``); ``frames_indices[i] / fps`` is frame i's true timestamp.
    ``sample_fps``: the rate the frames were sampled at (pass it as the processor's fps).
    ``clamped``: one sentence per client knob that was cut back to the budget.
    """

    frames: npt.NDArray[np.uint8]
    metadata: dict[str, Any]
    sample_fps: float
    stats: StageTimings
    clamped: list[str] = field(default_factory=list)
    probe: ProbeResult | None = None
    plan: SamplingPlan | None = None
    source_bytes: int = 0
    timestamps: tuple[float, ...] = ()
    """Seconds from the start of the video of each returned frame."""
    worker_peak_rss_bytes: int = 0
    frames_decoded: int = 0
    """Frames the decoder walked to produce ``frames`` (for metrics: decode work)."""
    cache_key: CacheKey | None = None
    recovered_frames: tuple[int, ...] = ()
    """Positions of frames that frame recovery filled with the next good frame (see :mod:`.decode`)."""
    """The decoded-video cache's key of these frames (None with the cache off): what a client's
    ``uuid`` is bound to, and what the engine's stable id is made of."""


@dataclass(frozen=True)
class LoadedImage:
    """One image as the pool decoded it (``decoded.pixels`` go to the engine), and the stage seconds."""

    decoded: DecodedImage
    stats: StageTimings


@dataclass(frozen=True)
class LoadedFrames:
    """A decoded frame sequence (:mod:`.frames`): the plan's JPEGs as the pool decoded them
    (``decoded.frames`` go to the engine; empty for the dry run), the plan the receipt reports
    (its ``clamped`` notes included), and the stage seconds."""

    decoded: JpegFrames
    plan: FramesPlan
    source_bytes: int
    parse_s: float
    decode_s: float


async def load_video(
    url: str,
    limits: MediaLimits,
    budget: SamplingBudget,
    pool: DecodePool,
    *,
    fetcher: Fetcher | None = None,
    overrides: SamplingOverrides | None = None,
    window: Window | None = None,
    fps_ceiling: float | None = None,
    frame_recovery: bool = False,
    decode: bool = True,
) -> LoadedVideo:
    """Fetch, probe, sample and decode one video. See the module docstring for the contract.

    ``window`` and ``fps_ceiling``: see :func:`~.sampling.plan_sampling` (a time window; the
    budget's fps as a ceiling on an exact ``num_frames``). ``frame_recovery``: fill a target
    frame that fails to decode with the next good one (see :mod:`.decode`); a cached decode made
    under the other setting is not reused.

    ``decode=False`` is the dry run: the same fetch, probe and plan, stopped before decoding. Its
    video has no frames (``frames`` is empty, ``timestamps`` are the plan's targets) and the
    decoded-video cache is neither read nor filled (a plain fetch; nothing hashed)."""
    fetcher = fetcher or Fetcher()
    clamp = apply_overrides(budget, overrides)
    cache = pool.cache
    caching = decode and cache.enabled

    def key_of(digest: str) -> CacheKey:
        return CacheKey.of(digest, clamp, window, fps_ceiling)

    def usable(video: CachedVideo | None) -> CachedVideo | None:
        # Decoded under the other frame-recovery setting: decode again.
        return video if video is not None and video.serves(frame_recovery) else None

    started = time.perf_counter()
    key: CacheKey | None = None
    video: CachedVideo | None = None
    # Only http(s) URLs are remembered (a data URL may be megabytes: not worth hashing for nothing).
    remembered = caching and url[:8].lower().startswith(("http://", "https://"))
    known = cache.url_validators(url) if remembered else None
    if known is not None and usable(cache.peek(key_of(known[1]))) is not None:
        media: FetchedMedia = await fetcher.fetch(url, limits, "video", validators=known[0])
        if media.not_modified:
            key = key_of(known[1])
            video = usable(cache.revalidated(key))
            if video is None:  # evicted while the request was out: fetch the bytes after all
                media = await fetcher.fetch(url, limits, "video")
    else:
        media = await fetcher.fetch(url, limits, "video")
    with media:
        fetched = time.perf_counter()
        if caching and video is None:
            loop = asyncio.get_running_loop()
            digest = await loop.run_in_executor(None, content_digest, media.fd, media.size)
            key = key_of(digest)
            video = usable(cache.get(key))
            if media.source == "http":
                cache.remember_url(url, media.validators, digest)
        hashed = time.perf_counter()
        cached = video is not None
        if video is None:
            probe = await pool.probe(media.fd, limits, size=media.size)
            probed = time.perf_counter()
            plan = plan_sampling(
                probe,
                clamp.budget,
                clamp.num_frames,
                window=window,
                fps_ceiling=fps_ceiling,
                frame_recovery=frame_recovery,
            )
            if decode:
                decoded = await pool.decode(media.fd, plan, limits.decode_timeout_seconds)
                video = CachedVideo(
                    decoded.frames,
                    decoded.times,
                    probe,
                    plan,
                    decoded.frames_decoded,
                    decoded.peak_rss_bytes,
                    decoded.recovered,
                )
            else:  # the dry run: the plan's targets, no pixels
                nothing = np.empty((0, plan.height, plan.width, 3), dtype=np.uint8)
                video = CachedVideo(nothing, plan.target_times, probe, plan, 0, 0)
            if key is not None:
                video = cache.put(key, video)
        else:
            probed = hashed
        done = time.perf_counter()
    plan = video.plan
    return LoadedVideo(
        frames=video.frames,
        metadata=plan.metadata(video.times),
        sample_fps=plan.sample_fps,
        stats=StageTimings(
            fetch_s=fetched - started,
            probe_s=probed - hashed,
            decode_s=done - probed,
            hash_s=hashed - fetched,
            cache_hit=cached if caching else None,
            revalidated=media.not_modified and cached,
        ),
        clamped=clamp.clamped,
        probe=video.probe,
        plan=plan,
        source_bytes=media.size,
        timestamps=tuple(t - plan.start_time for t in video.times),
        worker_peak_rss_bytes=0 if cached else video.worker_peak_rss_bytes,
        frames_decoded=0 if cached else video.frames_decoded,
        cache_key=key,
        recovered_frames=video.recovered,
    )


async def load_image(
    url: str,
    limits: MediaLimits,
    budget: ImageBudget,
    pool: DecodePool,
    *,
    fetcher: Fetcher | None = None,
) -> LoadedImage:
    """Fetch one image (same guards as videos, ``max_image_bytes``) and decode it in the pool."""
    fetcher = fetcher or Fetcher()
    started = time.perf_counter()
    media = await fetcher.fetch(url, limits, "image")
    with media:
        fetched = time.perf_counter()
        image = await pool.decode_image(media.fd, budget, limits)
        done = time.perf_counter()
    return LoadedImage(image, StageTimings(fetch_s=fetched - started, decode_s=done - fetched))


async def load_frame_sequence(
    url: str,
    meta: FrameSequenceInfo,
    limits: MediaLimits,
    budget: SamplingBudget,
    pool: DecodePool,
    *,
    decode: bool = True,
) -> LoadedFrames:
    """Check, decode and resize a ``data:video/jpeg`` frame sequence (see :mod:`.frames`): every
    check before any JPEG is decoded, the decode in the pool.

    ``decode=False`` (the dry run) reads only the first frame's header: the geometry, no pixels.
    """
    started = time.perf_counter()
    if not limits.allow_data_urls:
        raise InvalidFrames("data: video URLs are disabled on this server (allow_data_urls)", param="video_url")
    sent = count_frames(url)
    if not meta.do_sample_frames and sent > budget.frame_cap + 1:
        plan_frames(meta, sent, budget, limits)  # refuses with the field named, before splitting anything
    blob, spans = split_frames(url, limits)
    plan = plan_frames(meta, len(spans), budget, limits)
    cap = frame_pixel_cap(plan.nframes, budget.min_pixels, budget.max_pixels, budget.total_pixels)
    job = FramesJob(
        spans=tuple(spans[p] for p in plan.positions),
        positions=plan.positions,
        factor=budget.factor,
        min_pixels=budget.min_pixels,
        pixel_cap=cap,
        max_source_pixels=limits.max_source_pixels,
        headers_only=not decode,
    )
    fd = os.memfd_create("videomodel-jpeg-frames", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as sink:
            sink.write(blob)
        del blob
        parsed = time.perf_counter()
        result = await pool.decode_frame_sequence(fd, job, limits.decode_timeout_seconds)
    finally:
        os.close(fd)
    done = time.perf_counter()
    return LoadedFrames(
        decoded=result,
        plan=plan,
        source_bytes=sum(length for _, length in spans),
        parse_s=parsed - started,
        decode_s=done - parsed,
    )
