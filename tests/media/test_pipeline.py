"""load_video / load_image end to end: http (loopback), data: and file: URLs, clamps, stats."""

from __future__ import annotations

import base64
import io
from dataclasses import replace

import numpy as np
import pytest

from tests.harness.media import MediaServer, loopback_resolver
from videomodel_devtools import synthetic_videos as sv
from videomodel_devtools.synthetic_videos import STANDARD, frame_index_of
from videomodel_server.budget import smart_resize
from videomodel_server.media import (
    DecodePool,
    Fetcher,
    ImageBudget,
    MediaError,
    MediaLimits,
    SamplingBudget,
    SamplingOverrides,
    load_image,
    load_video,
)
from videomodel_server.media.errors import ForbiddenAddress, InvalidImage, TooLarge

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_http_url(http_server: MediaServer, pool: DecodePool, budget: SamplingBudget) -> None:
    limits = MediaLimits(exempt_networks=("127.0.0.1/32",))
    video = await load_video(http_server.href("/files/small.mp4"), limits, budget, pool)
    assert video.frames.shape == (4, 280, 392, 3)
    assert [frame_index_of(f) for f in video.frames] == video.metadata["frames_indices"] == [0, 6, 13, 19]
    assert video.metadata == {
        "fps": 10.0,
        "duration": 2.0,
        "total_num_frames": 20,
        "frames_indices": [0, 6, 13, 19],
        "do_sample_frames": False,
    }
    assert video.sample_fps == 2.0 and video.clamped == []
    assert video.stats.fetch_s > 0 and video.stats.probe_s > 0 and video.stats.decode_s > 0
    assert video.source_bytes == len(http_server.files["small.mp4"])


async def test_dry_run_stops_before_decoding(budget: SamplingBudget) -> None:
    """``decode=False``: the load's fetch, probe and plan, no decode job, the cache neither read nor filled."""
    path = sv.make_video(STANDARD["h264_mp4"])
    limits = MediaLimits(allowed_local_root=path.parent, decode_cache_bytes=1024**3)
    async with DecodePool.from_limits(replace(limits, decode_workers=1)) as pool:
        dry = await load_video(path.as_uri(), limits, budget, pool, decode=False)
        assert pool.stats.jobs == 1  # the probe
        assert (pool.cache.stats.hits, pool.cache.stats.misses, pool.cache.stats.entries) == (0, 0, 0)
        assert dry.frames.shape[0] == 0 and dry.stats.cache_hit is None and dry.frames_decoded == 0
        video = await load_video(path.as_uri(), limits, budget, pool)
        assert dry.plan == video.plan and dry.metadata == video.metadata
        assert dry.frames.shape[1:] == video.frames.shape[1:]
        assert dry.timestamps == pytest.approx(video.timestamps, abs=0.05)
        again = await load_video(path.as_uri(), limits, budget, pool, decode=False)
        assert again.stats.cache_hit is None and pool.stats.jobs == 4  # probed again, not served from the cache


async def test_http_url_by_name_via_resolver(
    http_server: MediaServer, pool: DecodePool, budget: SamplingBudget
) -> None:
    limits = MediaLimits(exempt_networks=("127.0.0.1/32",))
    fetcher = Fetcher(resolver=loopback_resolver({"videos.example.com": "127.0.0.1"}))
    url = f"http://videos.example.com:{http_server.port}/redirect?to=/files/vfr.mp4"
    video = await load_video(url, replace(limits, allowed_domains=("example.com",)), budget, pool, fetcher=fetcher)
    assert video.frames.shape[0] == 6


async def test_default_limits_refuse_loopback(
    http_server: MediaServer, pool: DecodePool, budget: SamplingBudget
) -> None:
    before = pool.stats.jobs
    with pytest.raises(ForbiddenAddress):
        await load_video(http_server.href("/files/small.mp4"), MediaLimits(), budget, pool)
    assert pool.stats.jobs == before


async def test_data_url_and_overrides(pool: DecodePool, budget: SamplingBudget) -> None:
    raw = sv.make_video(STANDARD["ntsc_29_97"]).read_bytes()
    url = "data:video/mp4;base64," + base64.b64encode(raw).decode()
    video = await load_video(url, MediaLimits(), budget, pool, overrides=SamplingOverrides(fps=1.0))
    assert video.frames.shape[0] == 4 and video.clamped == []  # 3 s at 1 fps -> 4 (the minimum)
    video = await load_video(url, MediaLimits(), budget, pool, overrides=SamplingOverrides(num_frames=10, fps=8))
    assert video.frames.shape[0] == 10
    assert video.clamped == ["fps=8->2"]
    assert [frame_index_of(f) for f in video.frames] == video.metadata["frames_indices"]
    with pytest.raises(TooLarge):
        await load_video(url, MediaLimits(max_video_bytes=1000), budget, pool)


async def test_total_pixel_budget_applied(pool: DecodePool) -> None:
    """Unlike vLLM's own Qwen2.5-VL path, the total budget shrinks frames of long videos."""
    path = sv.make_video(STANDARD["hd_720p"])
    budget = SamplingBudget(
        fps=2,
        max_frames=64,
        min_pixels=16 * 28 * 28,
        max_pixels=768 * 28 * 28,
        factor=28,
        total_pixels=2 * 28 * 28 * 64,
    )
    video = await load_video(path.as_uri(), MediaLimits(allowed_local_root=path.parent), budget, pool)
    _, h, w, _ = video.frames.shape
    assert h * w <= 28 * 28 * 64 * 2 / 4 * 2  # total/N*2 per frame
    assert h % 28 == 0 and w % 28 == 0


# -- images -----------------------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(sv.frame_pixels(1234, width, height)).save(buf, format="PNG")
    return buf.getvalue()


async def test_image_data_url(pool: DecodePool) -> None:
    url = "data:image/png;base64," + base64.b64encode(_png(640, 480)).decode()
    budget = ImageBudget(min_pixels=4 * 28 * 28, max_pixels=256 * 28 * 28, factor=28)
    image = await load_image(url, MediaLimits(), budget, pool)
    pixels = image.decoded.pixels
    assert pixels.shape == (*smart_resize(480, 640, 28, 4 * 28 * 28, 256 * 28 * 28), 3)
    assert pixels.dtype == np.uint8
    assert frame_index_of(pixels) == 1234
    assert (image.decoded.source_width, image.decoded.source_height) == (640, 480)


async def test_image_limits(pool: DecodePool) -> None:
    budget = ImageBudget(min_pixels=4 * 28 * 28, max_pixels=256 * 28 * 28, factor=28)
    url = "data:image/png;base64," + base64.b64encode(_png(640, 480)).decode()
    with pytest.raises(TooLarge, match="max_image_pixels") as info:
        await load_image(url, MediaLimits(max_image_pixels=100_000), budget, pool)
    assert info.value.status == 413
    with pytest.raises(InvalidImage):
        await load_image(
            "data:image/png;base64," + base64.b64encode(b"not a png").decode(), MediaLimits(), budget, pool
        )
    with pytest.raises(MediaError) as error:
        await load_image("data:video/mp4;base64,AAAA", MediaLimits(), budget, pool)
    assert error.value.status == 400
