"""The decoded-video cache: byte-bounded LRU, keyed by content and budget; a repeat is not decoded,
and a repeated URL with a strong validator is not downloaded either (conditional GET, 304)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from tests.harness.media import MediaServer
from videomodel_devtools import synthetic_videos as sv
from videomodel_devtools.synthetic_videos import STANDARD, make_video
from videomodel_server.media import DecodePool, MediaLimits, SamplingBudget, load_video
from videomodel_server.media.cache import CachedVideo, CacheKey, VideoCache
from videomodel_server.media.validators import Validators, validators_of


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


# -- repeated URLs: conditional GETs on the response's validators ----------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"etag": '"abc"'}, Validators(etag='"abc"')),
        ({"etag": 'W/"abc"'}, None),  # weak: the bytes may differ
        ({"etag": '"abc"', "cache-control": "no-store"}, None),
        ({"etag": '"abc"', "cache-control": "max-age=60, private"}, None),  # not for a shared cache
        ({"etag": '"abc"', "cache-control": "no-cache"}, Validators(etag='"abc"')),  # we revalidate anyway
        ({"etag": '"' + "x" * 300 + '"'}, None),
        ({"etag": '"a\nb"'}, None),
        (
            {"last-modified": "Tue, 14 Nov 2023 22:13:20 GMT", "date": "Mon, 07 Dec 2026 10:00:00 GMT"},
            Validators(last_modified="Tue, 14 Nov 2023 22:13:20 GMT"),
        ),
        # Changed within a minute of being sent: may change again within its one-second resolution.
        ({"last-modified": "Mon, 07 Dec 2026 09:59:30 GMT", "date": "Mon, 07 Dec 2026 10:00:00 GMT"}, None),
        ({"last-modified": "Tue, 14 Nov 2023 22:13:20 GMT"}, None),  # no Date to compare with
        ({"last-modified": "yesterday", "date": "Mon, 07 Dec 2026 10:00:00 GMT"}, None),
        (
            {
                "etag": '"abc"',
                "last-modified": "Tue, 14 Nov 2023 22:13:20 GMT",
                "date": "Mon, 07 Dec 2026 10:00:00 GMT",
            },
            Validators(etag='"abc"'),
        ),
        ({}, None),
    ],
)
def test_only_strong_validators_are_kept(headers: dict[str, str], expected: Validators | None) -> None:
    assert validators_of(headers) == expected


def test_remembered_urls_are_bounded_and_forgotten_without_validators(budget: SamplingBudget) -> None:
    cache = VideoCache(100, max_ids=2)
    tag = Validators(etag='"1"')
    for url in ("a", "b", "c"):
        cache.remember_url(url, tag, url * 2)
    assert cache.url_validators("a") is None and cache.url_validators("c") == (tag, "cc")
    cache.remember_url("c", None, "cc")  # answered without a validator this time
    assert cache.url_validators("c") is None and cache.stats.urls == 1
    assert cache.revalidated(_key("bb", budget)) is None  # nothing stored under it: no hit counted
    assert (cache.stats.hits, cache.stats.revalidated) == (0, 0)
    VideoCache(0).remember_url("a", tag, "d")  # a disabled cache remembers nothing either


async def _loads(http: MediaServer, limits: MediaLimits, budget: SamplingBudget, path: str, n: int) -> list[Any]:
    async with DecodePool.from_limits(replace(limits, decode_workers=1)) as pool:
        return [await load_video(http.href(path), limits, budget, pool) for _ in range(n)]


async def test_repeated_url_is_revalidated_not_downloaded(
    http_server: MediaServer, loopback_limits: MediaLimits, budget: SamplingBudget
) -> None:
    http_server.files["revalidate.mp4"] = make_video(STANDARD["h264_mp4"]).read_bytes()
    limits = replace(loopback_limits, decode_cache_bytes=1024**3)
    path = "/validated/revalidate.mp4"
    async with DecodePool.from_limits(replace(limits, decode_workers=1)) as pool:
        first = await load_video(http_server.href(path), limits, budget, pool)
        jobs = pool.stats.jobs
        second = await load_video(http_server.href(path), limits, budget, pool)
        assert [a for a in http_server.answers if a[0] == path][-2:] == [
            (path, 200, len(http_server.files["revalidate.mp4"])),
            (path, 304, 0),
        ]
        assert pool.stats.jobs == jobs  # no probe, no decode
        assert (second.stats.cache_hit, second.stats.revalidated, second.source_bytes) == (True, True, 0)
        assert second.frames is first.frames and second.metadata == first.metadata
        # Another sampling of the same URL: its frames are not cached, so no conditional fetch.
        other = await load_video(http_server.href(path), limits, replace(budget, fps=1.0), pool)
        assert other.stats.revalidated is False and http_server.answers[-1][1] == 200
        # The origin's content changes: its ETag with it, so a 200 and a fresh decode.
        http_server.files["revalidate.mp4"] = make_video(STANDARD["portrait"]).read_bytes()
        changed = await load_video(http_server.href(path), limits, budget, pool)
        assert http_server.answers[-1][1] == 200 and changed.stats.cache_hit is False
        assert changed.frames.shape != first.frames.shape
        # Frame recovery asked for: the cached decode was made without it, so the bytes are fetched.
        recovered = await load_video(http_server.href(path), limits, budget, pool, frame_recovery=True)
        assert http_server.answers[-1][1] == 200 and recovered.stats.cache_hit is False
        assert pool.cache.stats.revalidated == 1


@pytest.mark.parametrize(
    ("query", "revalidates"),
    [("", True), ("?lm=1700000000", True), ("?weak=1", False), ("?cc=no-store", False), ("?lm=now", False)],
)
async def test_only_strong_validators_make_a_conditional_fetch(
    http_server: MediaServer, loopback_limits: MediaLimits, budget: SamplingBudget, query: str, revalidates: bool
) -> None:
    name = f"strong{abs(hash(query))}.mp4"
    http_server.files[name] = make_video(STANDARD["short_half_second"]).read_bytes()
    path = f"/validated/{name}"
    limits = replace(loopback_limits, decode_cache_bytes=1024**3)
    first, second = await _loads(http_server, limits, budget, path + query, 2)
    statuses = [status for at, status, _ in http_server.answers if at == path]
    assert statuses == ([200, 304] if revalidates else [200, 200])
    # Either way the second decode is saved (content hash); only a 304 saves the download.
    assert (second.stats.cache_hit, second.stats.revalidated) == (True, revalidates)
    assert second.frames is first.frames
