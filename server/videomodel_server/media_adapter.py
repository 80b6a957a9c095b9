"""The production :class:`~videomodel_server.loading.MediaLoader`: ``videomodel_server.media``.

Builds the media pipeline's limits from the server's settings and the Plan once, and turns each
request's already-clamped :class:`~videomodel_server.jobs.VideoOptions` into that pipeline's
sampling budget. The pipeline's errors are the server's own (:mod:`videomodel_server.media.errors`
is a branch of the one tree), so they pass through as they are, with the request field at fault
as their ``param``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .budget import label
from .budget.knobs import clamp_note
from .jobs import MediaRef, VideoOptions
from .loading import CacheSource, LoadedMedia, MediaEstimate, SamplingReceipt
from .settings import ServerSettings

if TYPE_CHECKING:
    from .media import (
        DecodePool,
        Fetcher,
        ImageBudget,
        MediaError,
        MediaLimits,
        ProbeResult,
        SamplingBudget,
        SamplingPlan,
        StageTimings,
    )
    from .wiring import Resolved


def media_limits(settings: ServerSettings, resolved: Resolved) -> MediaLimits:
    from .media import MediaLimits

    return MediaLimits(
        max_video_bytes=settings.budget.max_video_bytes,
        max_image_bytes=settings.media.max_image_bytes,
        max_seconds=settings.budget.max_seconds,
        allow_http=settings.media.allow_http,
        allowed_domains=settings.media.allowed_media_domains,
        allowed_local_root=settings.media.allowed_local_media_path,
        exempt_networks=settings.media.media_exempt_networks,
        fetch_timeout_seconds=resolved.fetch_timeout,
        max_redirects=settings.media.max_redirects,
        decode_workers=settings.admission.decode_workers,
        decode_timeout_seconds=settings.admission.decode_timeout,
        decode_threads=settings.admission.decode_threads,
        decode_cache_bytes=settings.admission.decode_cache_bytes,
        frame_recovery=settings.media.frame_recovery,
    )


class PipelineLoader:
    """:class:`MediaLoader` over ``videomodel_server.media`` (one decode pool per process)."""

    def __init__(self, limits: MediaLimits, budget: SamplingBudget, images: ImageBudget) -> None:
        from .media import DecodePool, Fetcher

        self.limits = limits
        self.budget = budget
        self.images = images
        self.pool: DecodePool = DecodePool.from_limits(limits)
        self.fetcher: Fetcher = Fetcher()

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    def sampling_budget(self, options: VideoOptions) -> SamplingBudget:
        """The request's sampling: the budget narrowed by the client's (already clamped) knobs."""
        from .media import apply_overrides

        return apply_overrides(self.budget, options).budget

    def check(self, ref: MediaRef) -> None:
        """Refuse ``ref`` for its URL's text, as :meth:`load` would before fetching anything
        (:func:`~videomodel_server.media.urls.check_url`; http(s) URLs only)."""
        from .media import MediaError
        from .media.urls import check_url

        try:
            check_url(ref.url, self.limits, ref.kind)
        except MediaError as exc:
            raise _at(exc, ref) from None

    async def load(self, ref: MediaRef) -> LoadedMedia:
        return await self._load(ref, decode=True)

    async def estimate(self, ref: MediaRef) -> MediaEstimate:
        """A load stopped before decoding (fetch, probe, plan); media over the budget comes back
        with its problem. Images are not fetched: their receipt is None."""
        from .media import MediaOverBudget

        if ref.kind == "image":
            return MediaEstimate(ref)
        try:
            loaded = await self._load(ref, decode=False)
        except MediaOverBudget as exc:
            return MediaEstimate(ref, problem=f"{ref.where}: {exc.message}" if ref.where else exc.message)
        assert loaded.receipt is not None
        return MediaEstimate(ref, loaded.receipt, timings=loaded.timings, clamped=loaded.clamped)

    async def _load(self, ref: MediaRef, *, decode: bool) -> LoadedMedia:
        """The one dispatch of a media item: an image, a frame sequence, the uuid-only form, a video
        URL. ``decode=False`` is the dry run: every stage up to the decode, no frames (see
        :func:`~videomodel_server.media.load_video`); the cache, frame recovery and the uuid binding
        belong to a decode and are left out of its receipt."""
        from .media import MediaError, load_image, load_video
        from .media.cache import IdKey
        from .media.frames import is_frame_sequence

        try:
            if ref.kind == "image":
                image = await load_image(ref.url, self.limits, self.images, self.pool, fetcher=self.fetcher)
                return LoadedMedia(
                    ref,
                    image.decoded.pixels,
                    timings={"fetch": image.stats.fetch_s, "decode": image.stats.decode_s},
                )
            if is_frame_sequence(ref.url):
                return await self._load_frames(ref, decode=decode)
            if not ref.url:
                return self._load_by_id(ref, decode=decode)
            # The request's knobs, narrowed by translation already: narrowing them again against the
            # same budget in the pipeline changes nothing and notes nothing.
            video = await load_video(
                ref.url,
                self.limits,
                self.budget,
                self.pool,
                fetcher=self.fetcher,
                overrides=ref.options,
                window=ref.options.window if ref.options is not None else None,
                fps_ceiling=self.budget.fps,
                frame_recovery=self._frame_recovery(ref),
                decode=decode,
            )
        except MediaError as exc:
            raise _at(exc, ref) from None
        assert video.plan is not None and video.probe is not None
        receipt, notes = self._receipt(ref, video.probe, video.plan, video.timestamps)
        if decode:
            if ref.uuid is not None and video.cache_key is not None:
                self.pool.cache.bind(IdKey.of(ref.uuid, video.cache_key), video.cache_key)
            hit = video.stats.cache_hit
            source: CacheSource | None = None
            if hit is not None:
                source = "revalidated" if video.stats.revalidated else "content" if hit else "miss"
            receipt = replace(
                receipt,
                cache=source,
                frame_recovery=video.plan.frame_recovery,
                recovered_frames=video.recovered_frames,
            )
        return LoadedMedia(
            ref,
            video.frames,
            metadata=video.metadata,
            sample_fps=video.sample_fps,
            duration=video.plan.duration,
            timings=_timings(video.stats, decode=decode),
            clamped=(*video.clamped, *notes),
            receipt=receipt,
            engine_id=video.cache_key.stable_id if video.cache_key is not None else None,
        )

    def _frame_recovery(self, ref: MediaRef) -> bool:
        """The request's ``frame_recovery``, else the server's default (``--frame-recovery``)."""
        asked = ref.options.frame_recovery if ref.options is not None else None
        return self.limits.frame_recovery if asked is None else asked

    async def _load_frames(self, ref: MediaRef, *, decode: bool) -> LoadedMedia:
        """A pre-extracted JPEG frame sequence (``data:video/jpeg``): checked against the budget,
        decoded in the pool, handed to the engine with the client's timestamps."""
        from .budget.sequence import FrameSequenceInfo
        from .errors import InvalidRequest
        from .media import load_frame_sequence

        options = ref.options
        budget = self.sampling_budget(options) if options is not None else self.budget
        if options is not None and options.window is not None:
            raise InvalidRequest(
                f"{ref.where}: video_start/video_end do not apply to a frame sequence; send only the frames wanted",
                param=ref.where or None,
            )
        meta = options.frames if options is not None and options.frames is not None else FrameSequenceInfo()
        loaded = await load_frame_sequence(ref.url, meta, self.limits, budget, self.pool, decode=decode)
        plan, decoded = loaded.plan, loaded.decoded
        binding = list(plan.binding)
        f = budget.factor
        rounded = max(f, round(decoded.source_height / f) * f) * max(f, round(decoded.source_width / f) * f)
        if rounded > decoded.height * decoded.width and decoded.height * decoded.width <= budget.max_pixels:
            binding.append(f"frame size capped by {label('max_pixels')}={budget.max_pixels}")
        receipt = SamplingReceipt(
            frames=plan.nframes,
            height=decoded.height,
            width=decoded.width,
            sample_fps=plan.sample_fps,
            duration=plan.duration,
            timestamps=tuple(round(t, 4) for t in plan.timestamps),
            label_seconds=plan.duration,
            binding=tuple(binding),
            source="frames",
        )
        return LoadedMedia(
            ref,
            decoded.frames,
            metadata=plan.metadata(),
            sample_fps=plan.sample_fps,
            duration=plan.duration,
            timings={"fetch": loaded.parse_s, "decode": loaded.decode_s},
            clamped=plan.clamped,
            receipt=receipt,
        )

    def _load_by_id(self, ref: MediaRef, *, decode: bool) -> LoadedMedia:
        """The uuid-only form: the video the client's id names under this sampling, from the
        decoded-video cache, with no fetch and no decode; a miss is a 400 (never a fetch)."""
        from .errors import InvalidRequest
        from .media import StageTimings, apply_overrides
        from .media.cache import CacheKey, IdKey

        assert ref.uuid is not None
        clamp = apply_overrides(self.budget, ref.options)
        window = ref.options.window if ref.options is not None else None
        sampling = CacheKey.of("", clamp, window, self.budget.fps)
        found = self.pool.cache.lookup(IdKey.of(ref.uuid, sampling))
        if found is None:
            raise InvalidRequest(
                "no video is cached under this uuid with this sampling (never sent with a URL, sent with "
                "other sampling knobs, or evicted); send the video URL with the uuid again",
                param=ref.where or None,
                code="media_uuid_not_found",
            )
        key, video = found
        plan = video.plan
        wanted = self._frame_recovery(ref)
        if not video.serves(wanted):
            raise InvalidRequest(
                f"the video cached under this uuid was decoded with frame_recovery={str(plan.frame_recovery).lower()} "
                f"and this request asks for frame_recovery={str(wanted).lower()}; send the video URL with the "
                "uuid again",
                param=ref.where or None,
                code="media_uuid_not_found",
            )
        timestamps = tuple(t - plan.start_time for t in video.times)
        receipt, notes = self._receipt(ref, video.probe, plan, timestamps)
        return LoadedMedia(
            ref,
            video.frames,
            metadata=plan.metadata(video.times),
            sample_fps=plan.sample_fps,
            duration=plan.duration,
            timings=_timings(StageTimings(fetch_s=0.0), decode=decode),
            clamped=(*clamp.clamped, *notes),
            receipt=replace(receipt, cache="uuid"),
            engine_id=key.stable_id,
        )

    def cache_lookups(self) -> dict[str, int]:
        stats = self.pool.cache.stats
        return {
            "hit": stats.hits,
            "miss": stats.misses,
            "revalidated": stats.revalidated,
            "uuid_hit": stats.id_hits,
            "uuid_miss": stats.id_misses,
            "eviction": stats.evictions,
        }

    def _receipt(
        self, ref: MediaRef, probe: ProbeResult, plan: SamplingPlan, timestamps: tuple[float, ...]
    ) -> tuple[SamplingReceipt, list[str]]:
        """The sampling receipt of one planned video, and the clamp notes the plan implies."""
        from .media.estimate import binding_limits

        options = ref.options
        budget = self.sampling_budget(options) if options else self.budget
        asked = options.num_frames if options else None
        binding = binding_limits(probe, plan, budget, self.budget, asked, self.budget.fps)
        notes: list[str] = []
        if asked is not None and plan.nframes < asked:
            notes.append(clamp_note("num_frames", asked, plan.nframes, binding[0].removeprefix("frames capped by ")))
        length = min(plan.duration, plan.total_frames / plan.source_fps) if plan.duration > 0 else plan.duration
        window: tuple[float, float] | None = None
        label_seconds = plan.duration
        if options is not None and options.window is not None:
            start = options.video_start or 0.0
            end = options.video_end if options.video_end is not None else length
            if end > length:
                notes.append(clamp_note("video_end", end, f"{length:.2f}", "the video's end"))
                end = length
            window = (start, end)
            label_seconds = end
        receipt = SamplingReceipt(
            frames=plan.nframes,
            height=plan.height,
            width=plan.width,
            sample_fps=plan.sample_fps,
            duration=plan.duration,
            timestamps=tuple(round(t, 4) for t in timestamps),
            label_seconds=label_seconds,
            window=window,
            binding=tuple(binding),
        )
        return receipt, notes


def _timings(stats: StageTimings, *, decode: bool) -> dict[str, float]:
    """A video's stage seconds as a response reports them (a dry run has no decode stage)."""
    timings = {"fetch": stats.fetch_s, "probe": stats.probe_s}
    if decode:
        timings["decode"] = stats.decode_s
    return timings


def _at(exc: MediaError, ref: MediaRef) -> MediaError:
    """``exc`` with ``param`` naming the request field at fault (a window error names its own field;
    a frame sequence's metadata error names its top-level ``media_io_kwargs`` field)."""
    if exc.param and exc.param.startswith("media_io_kwargs"):
        return exc
    if exc.param and ref.where and not exc.param.startswith("messages"):
        exc.param = f"{ref.where}.{exc.param}"
    else:
        exc.param = exc.param or ref.where or None
    return exc


def build_loader(settings: ServerSettings, resolved: Resolved) -> PipelineLoader:
    from .media import ImageBudget, SamplingBudget

    budget = resolved.budget
    geometry = resolved.model.geometry
    assert budget.image_min_pixels is not None and budget.image_max_pixels is not None
    return PipelineLoader(
        media_limits(settings, resolved),
        SamplingBudget.from_budget(budget, geometry),
        ImageBudget(min_pixels=budget.image_min_pixels, max_pixels=budget.image_max_pixels, factor=geometry.factor),
    )
