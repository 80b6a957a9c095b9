"""The decoded-video cache: byte-bounded LRU, keyed by content and budget; a repeat is not decoded."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from videomodel_devtools import synthetic_videos as sv
from videomodel_devtools.synthetic_videos import STANDARD
from videomodel_server.media import DecodePool, MediaLimits, SamplingBudget, load_video
from videomodel_server.media.cache import CachedVideo, CacheKey, VideoCache


def _video(nbytes: int) -> CachedVideo:
    frames = np.zeros((nbytes,), dtype=np.uint8)
    fake: Any = None
    return CachedVideo(frames, (), fake, fake, 0, 0)


def _key(name: str, budget: SamplingBudget) -> CacheKey:
    return CacheKey(name, budget, None)


def test_lru_is_bounded_in_bytes(budget: SamplingBudget) -> None:
    cache = VideoCache(100)
    for name in "abc":
        cache.put(_key(name, budget), _video(40))
    assert cache.stats.bytes == 80 and cache.stats.evictions == 1
    assert cache.get(_key("a", budget)) is None  # the oldest went first
    assert cache.get(_key("b", budget)) is not None  # b is now the most recent
    cache.put(_key("d", budget), _video(40))
    assert cache.get(_key("c", budget)) is None and cache.get(_key("b", budget)) is not None
    cache.put(_key("huge", budget), _video(101))  # larger than the whole cache: not stored
    assert cache.get(_key("huge", budget)) is None
    assert (cache.stats.hits, cache.stats.misses) == (2, 3)


def test_budget_is_part_of_the_key(budget: SamplingBudget) -> None:
    cache = VideoCache(1000)
    cache.put(_key("a", budget), _video(10))
    assert cache.get(_key("a", replace(budget, max_pixels=budget.max_pixels // 2))) is None
    assert cache.get(CacheKey("a", budget, 8)) is None


def test_disabled_cache_stores_nothing(budget: SamplingBudget) -> None:
    cache = VideoCache(0)
    assert not cache.enabled
    cache.put(_key("a", budget), _video(1))
    assert cache.get(_key("a", budget)) is None


async def test_repeated_video_is_not_decoded_again(budget: SamplingBudget) -> None:
    path = sv.make_video(STANDARD["h264_mp4"])
    limits = MediaLimits(allowed_local_root=path.parent, decode_cache_bytes=1024**3)
    async with DecodePool.from_limits(replace(limits, decode_workers=1)) as pool:
        first = await load_video(path.as_uri(), limits, budget, pool)
        jobs = pool.stats.jobs
        second = await load_video(path.as_uri(), limits, budget, pool)
        assert pool.stats.jobs == jobs  # no probe, no decode
        assert (first.stats.cache_hit, second.stats.cache_hit) == (False, True)
        assert second.frames is first.frames and not second.frames.flags.writeable
        assert second.metadata == first.metadata and second.timestamps == first.timestamps
        other = await load_video(path.as_uri(), limits, replace(budget, fps=budget.fps / 2), pool)
        assert other.stats.cache_hit is False and pool.stats.jobs > jobs
        assert (pool.cache.stats.hits, pool.cache.stats.misses) == (1, 2)
