"""Issue 12 item 2: frame recovery (vLLM's ``frame_recovery``) for frames that fail to decode.

The corrupt videos are made at test time: Motion-JPEG in Matroska, every frame drawing its own
index, with chosen packets replaced by bytes FFmpeg refuses (``InvalidDataError``), so exactly
those frames fail to decode, deterministically. Three levels: the pure selector; the decode pool
(strict by default: the frame before a lost target; with recovery: the next good frame before the
next target, reported). The real server on the fake engine (server default and per-request
override, the receipt and the metric) is ``tests/server/test_frame_recovery_server.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.clips import CLIP_FPS as FPS
from tests.harness.clips import make_clips
from videomodel_devtools.synthetic_videos import frame_index_of
from videomodel_server.media import DecodePool, MediaError, MediaLimits, SamplingBudget, load_video
from videomodel_server.media.selection import FrameSelector

# -- the selector (pure) ------------------------------------------------------------------------------


def _select(recovery: bool, lost: set[int], targets: list[int], frames: int = 20) -> tuple[list[int], list[int]]:
    """Offer frames 0..frames-1 at 10 fps, the ``lost`` ones reported as undecodable."""
    selector: FrameSelector[int] = FrameSelector(
        [t / FPS for t in targets], 0.25 / FPS, start_time=0.0, duration=frames / FPS, source_fps=FPS,
        recovery=recovery,
    )  # fmt: skip
    kept: list[int] = []
    for i in range(frames):
        if i in lost:
            selector.lost(i / FPS)
        else:
            kept += [f for f, _ in selector.offer(i, i / FPS)]
    kept += [f for f, _ in selector.finish()]
    return kept, selector.recovered


def test_strict_shows_the_frame_before_a_lost_target() -> None:
    assert _select(False, {6, 13}, [0, 6, 13, 19]) == ([0, 5, 12, 19], [])


def test_recovery_takes_the_next_good_frame_before_the_next_target() -> None:
    assert _select(True, {6, 7, 13}, [0, 6, 13, 19]) == ([0, 8, 14, 19], [1, 2])


def test_recovery_never_reaches_past_the_next_target() -> None:
    """Frames 6..8 lost and the next target is 9: nothing good comes before it, so the frame before;
    target 9 lost too: frame 10 comes before target 19, so it recovers target 9."""
    assert _select(True, {6, 7, 8}, [0, 6, 9, 19]) == ([0, 5, 9, 19], [])
    assert _select(True, {6, 7, 8, 9}, [0, 6, 9, 19]) == ([0, 5, 10, 19], [2])


def test_a_lost_last_target_recovers_with_any_later_frame() -> None:
    kept, recovered = _select(True, {18}, [0, 6, 13, 18], frames=21)
    assert kept == [0, 6, 13, 19] and recovered == [3]


def test_lost_frames_between_targets_change_nothing() -> None:
    assert _select(True, {2, 3, 9}, [0, 6, 13, 19]) == ([0, 6, 13, 19], [])


# -- the decode pool -------------------------------------------------------------------------------------

BUDGET = SamplingBudget(fps=2.0, max_frames=64, min_pixels=128 * 28 * 28, max_pixels=256 * 28 * 28, factor=28)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clips(tmp_path_factory.mktemp("recovery"))


def _limits(root: Path, **changes: Any) -> MediaLimits:
    return MediaLimits(allowed_local_root=root, max_seconds=900, decode_cache_bytes=0, **changes)


pytestmark_async = pytest.mark.asyncio(loop_scope="session")


@pytestmark_async
async def test_pool_strict_by_default(pool: DecodePool, clips: Path) -> None:
    video = await load_video((clips / "two-lost.mkv").as_uri(), _limits(clips), BUDGET, pool)
    assert video.plan is not None and video.plan.indices == (0, 6, 13, 19) and not video.plan.frame_recovery
    assert [frame_index_of(f) for f in video.frames] == [0, 5, 12, 19] == video.metadata["frames_indices"]
    assert video.recovered_frames == ()


@pytestmark_async
async def test_pool_recovers_with_the_next_good_frame(pool: DecodePool, clips: Path) -> None:
    video = await load_video((clips / "two-lost.mkv").as_uri(), _limits(clips), BUDGET, pool, frame_recovery=True)
    shown = [frame_index_of(f) for f in video.frames]
    # the engine is told the recovered frames' true times (8 and 14), not the targets' (6 and 13)
    assert shown == [0, 8, 14, 19] == video.metadata["frames_indices"]
    assert video.recovered_frames == (1, 2)
    assert video.timestamps == pytest.approx((0.0, 0.8, 1.4, 1.9))


@pytestmark_async
async def test_many_lost_packets_strict_refuses_recovery_serves(pool: DecodePool, clips: Path) -> None:
    url = (clips / "many-lost.mkv").as_uri()
    with pytest.raises(MediaError) as info:
        await load_video(url, _limits(clips), BUDGET, pool)
    assert (info.value.status, info.value.code) == (400, "invalid_video")
    assert "too many undecodable packets" in info.value.message
    video = await load_video(url, _limits(clips), BUDGET, pool, frame_recovery=True)
    assert video.plan is not None and video.frames.shape[0] == video.plan.nframes == 40
    shown = [frame_index_of(f) for f in video.frames]
    assert shown == video.metadata["frames_indices"] and not any(i % 5 == 3 for i in shown)
    lost_targets = [k for k, i in enumerate(video.plan.indices) if i % 5 == 3]
    assert list(video.recovered_frames) == lost_targets and lost_targets


@pytestmark_async
async def test_a_clean_video_is_the_same_either_way(pool: DecodePool, clips: Path) -> None:
    url = (clips / "clean.mkv").as_uri()
    strict = await load_video(url, _limits(clips), BUDGET, pool)
    recovering = await load_video(url, _limits(clips), BUDGET, pool, frame_recovery=True)
    assert (strict.frames == recovering.frames).all() and recovering.recovered_frames == ()


@pytestmark_async
async def test_the_cache_does_not_mix_settings(clips: Path) -> None:
    """A strict decode in the cache is not served to a request that asked for recovery."""
    async with DecodePool(1, memory_bytes=1024**3, cache_bytes=64 * 1024**2) as pool:
        url = (clips / "two-lost.mkv").as_uri()
        limits = _limits(clips)
        first = await load_video(url, limits, BUDGET, pool)
        again = await load_video(url, limits, BUDGET, pool)
        recovering = await load_video(url, limits, BUDGET, pool, frame_recovery=True)
        assert again.stats.cache_hit and first.recovered_frames == () == again.recovered_frames
        assert recovering.recovered_frames == (1, 2)


def test_the_flag_exists() -> None:
    from videomodel_server.cli import options

    (opt,) = [o for o in options() if o.name == "frame_recovery"]
    assert opt.group == "media" and opt.default is False
