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

from .jobs import MediaRef, VideoOptions
from .loading import LoadedMedia
from .settings import ServerSettings

if TYPE_CHECKING:
    from .media import DecodePool, Fetcher, ImageBudget, MediaLimits, SamplingBudget
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
        return replace(
            self.budget,
            fps=options.fps,
            max_frames=options.max_frames,
            min_pixels=options.min_pixels,
            max_pixels=options.max_pixels,
            total_pixels=options.total_pixels,
        )

    async def load(self, ref: MediaRef) -> LoadedMedia:
        from .media import MediaError, SamplingOverrides, load_image, load_video

        try:
            if ref.kind == "image":
                image = await load_image(ref.url, self.limits, self.images, self.pool, fetcher=self.fetcher)
                return LoadedMedia(
                    ref,
                    image.pixels,
                    timings={"fetch": image.stats.fetch_s, "decode": image.stats.decode_s},
                )
            budget = self.sampling_budget(ref.options) if ref.options else self.budget
            overrides = SamplingOverrides(num_frames=ref.options.num_frames) if ref.options else None
            video = await load_video(ref.url, self.limits, budget, self.pool, fetcher=self.fetcher, overrides=overrides)
        except MediaError as exc:
            exc.param = exc.param or ref.where or None
            raise
        duration = video.plan.duration if video.plan is not None else None
        return LoadedMedia(
            ref,
            video.frames,
            metadata=video.metadata,
            sample_fps=video.sample_fps,
            duration=duration,
            timings={"fetch": video.stats.fetch_s, "probe": video.stats.probe_s, "decode": video.stats.decode_s},
            clamped=tuple(video.clamped),
        )


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
