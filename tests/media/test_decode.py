"""Decoding in the worker pool: the right frames, at the right size, and hostile files contained."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from videomodel_devtools import synthetic_videos as sv
from videomodel_devtools.synthetic_videos import STANDARD, VideoSpec, frame_index_of
from videomodel_server.media import (
    DecodePool,
    LoadedVideo,
    MediaError,
    MediaLimits,
    SamplingBudget,
    load_video,
    plan_sampling,
)
from videomodel_server.media.errors import DecodeMemory, DecodeTimeout, InvalidVideo

pytestmark = pytest.mark.asyncio(loop_scope="session")

SLOW = sv.hd_clip(seconds=60.0)
"""1,800 frames of 720p (the clip test_engine_hd_clip encodes too): about 0.6 s to decode on two
idle cores, long enough to crash, cancel or time out (20 s of it now decodes in 0.2 s)."""


def limits_for(path: Path, **changes: object) -> MediaLimits:
    return replace(MediaLimits(allowed_local_root=path.parent, max_seconds=900), **changes)  # type: ignore[arg-type]


async def load(path: Path, pool: DecodePool, budget: SamplingBudget, **changes: object) -> LoadedVideo:
    return await load_video(path.as_uri(), limits_for(path, **changes), budget, pool)


def shown_at(spec: VideoSpec, t: float) -> int:
    """Index of the frame on screen at time t (the last one starting at or before t)."""
    times = spec.frame_times()
    return max(i for i, start in enumerate(times) if start <= t + 1e-6)


@pytest.mark.parametrize(
    "name",
    ["h264_mp4", "vp9_webm", "hevc_mp4", "av1_mp4", "av1_webm", "portrait", "extreme_1x10", "extreme_10x1",
     "ntsc_29_97", "with_audio", "with_audio_webm", "short_half_second", "long_3min_tiny", "long_6min_tiny"],
)  # fmt: skip
async def test_decodes_the_sampled_frames(name: str, pool: DecodePool, budget: SamplingBudget) -> None:
    spec = STANDARD[name]
    video = await load(sv.make_video(spec), pool, budget)
    plan = video.plan
    assert plan is not None
    assert video.frames.dtype == np.uint8 and video.frames.flags.c_contiguous
    assert video.frames.shape == (plan.nframes, plan.height, plan.width, 3)
    assert plan.height % 28 == 0 and plan.width % 28 == 0
    decoded = [frame_index_of(f) for f in video.frames]
    assert decoded == list(plan.indices) == video.metadata["frames_indices"]
    assert video.metadata["fps"] == pytest.approx(spec.fps)
    assert video.metadata["total_num_frames"] == spec.frame_count or spec.container == "webm"
    assert video.sample_fps == pytest.approx(plan.nframes / plan.total_frames * plan.source_fps)


@pytest.mark.parametrize("name", ["vfr", "vfr_webm"])
async def test_variable_frame_rate_is_sampled_by_timestamp(name: str, pool: DecodePool, budget: SamplingBudget) -> None:
    spec = STANDARD[name]  # first half at 20 fps, second half at 5 fps
    video = await load(sv.make_video(spec), pool, budget)
    assert video.plan is not None
    decoded = [frame_index_of(f) for f in video.frames]
    expected = [shown_at(spec, t) for t in video.plan.target_times]
    assert decoded == expected
    # Targets are evenly spaced in time, so the sparse second half is not under-sampled.
    # (indices are rounded to the source grid, so spacing varies by at most one grid step).
    gaps = np.diff(video.plan.target_times)
    assert gaps.max() - gaps.min() <= 1 / video.plan.source_fps + 1e-9
    assert sum(t >= 2.0 for t in video.timestamps) >= len(video.timestamps) // 2 - 1
    # frames_indices / fps reproduce the true times of the frames returned.
    for index, actual in zip(video.metadata["frames_indices"], video.timestamps, strict=True):
        assert abs(index / video.metadata["fps"] - actual) <= 0.5 / video.metadata["fps"] + 1e-9
    assert [spec.frame_times()[i] for i in decoded] == pytest.approx(list(video.timestamps), abs=2e-3)


@pytest.mark.parametrize("name", ["rotated_90", "rotated_270", "rotated_180"])
async def test_rotation_is_applied(name: str, pool: DecodePool, budget: SamplingBudget) -> None:
    spec = STANDARD[name]
    video = await load(sv.make_video(spec), pool, budget)
    assert video.probe is not None and video.probe.rotation == spec.rotation % 360
    dw, dh = spec.display_size
    _, h, w, _ = video.frames.shape
    assert (h > w) == (dh > dw)  # displayed orientation
    decoded = [frame_index_of(f, rotation=spec.rotation) for f in video.frames]
    assert decoded == video.metadata["frames_indices"]
    # Read without undoing the rotation, the index cells are not where they were drawn
    # (index 0 draws every cell alike, so it reads the same either way).
    for frame, index in zip(video.frames, decoded, strict=True):
        if index:
            assert frame_index_of(frame) != index


async def test_hd_clip_decodes_only_sampled_frames(pool: DecodePool) -> None:
    spec = sv.hd_clip(seconds=10.0)
    budget = SamplingBudget(fps=2, max_frames=768, min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28, factor=28)
    video = await load(sv.make_video(spec), pool, budget)
    assert video.frames.shape == (20, 560, 1008, 3)  # docs/budget.md#worked-examples geometry
    assert [frame_index_of(f) for f in video.frames] == video.metadata["frames_indices"]
    assert video.worker_peak_rss_bytes < 600 * 1024**2


@pytest.mark.parametrize("gop", [15, 100_000])
async def test_sparse_sampling_seeks_and_stays_exact(gop: int, pool: DecodePool, budget: SamplingBudget) -> None:
    """Targets seconds apart: seek to the keyframe before each (short GOP), or fall back to
    decoding straight through (one keyframe) -- the frames returned are exact either way."""
    spec = VideoSpec("h264", "mp4", 160, 120, 30, 40.0, keyframe_interval=gop)
    video = await load(sv.make_video(spec), pool, replace(budget, fps=0.25))
    assert video.frames.shape[0] == 10
    assert [frame_index_of(f) for f in video.frames] == video.metadata["frames_indices"]
    if gop == 15:  # keyframes every 0.5 s: most of the 1,200 frames are skipped
        assert video.frames_decoded < 300
    else:
        assert video.frames_decoded >= 1100


async def test_webm_without_duration_is_walked(pool: DecodePool, budget: SamplingBudget) -> None:
    """MediaRecorder-style WebM (no duration, no cues): the probe walks packets for the length."""
    video = await load(sv.live_webm_file(seconds=3.0, fps=10), pool, budget)
    assert video.probe is not None and video.probe.duration == pytest.approx(3.0, abs=0.15)
    assert video.probe.frame_count == 30
    assert [frame_index_of(f) for f in video.frames] == video.metadata["frames_indices"]
    assert video.frames.shape[0] == 6


# -- hostile inputs: a bounded 4xx each, and the pool keeps working ---------------------------------

HOSTILE_EXPECTED = {
    "truncated": (400, "invalid_video"),
    "truncated_header": (400, "invalid_video"),
    "truncated_faststart": (400, "invalid_video"),
    "bit_flipped_heavy": (400, "invalid_video"),
    "not_a_video_random": (400, "invalid_video"),
    "not_a_video_text": (400, "invalid_video"),
    "not_a_video_html": (400, "invalid_video"),
    "empty": (400, "invalid_video"),
    "image_png": (None, None),
    "audio_only": (422, "video_no_video_stream"),
    "many_streams": (422, "video_over_budget"),
    "hours_long": (422, "video_over_budget"),
    "sparse_pts_hours": (422, "video_over_budget"),
    "absurd_fps": (422, "video_over_budget"),
    "no_timing": (400, "invalid_video"),
    "zero_fps": (400, "invalid_video"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_EXPECTED))
async def test_hostile_input_gets_a_clear_4xx(name: str, pool: DecodePool, budget: SamplingBudget) -> None:
    path = sv.HOSTILE[name]()
    status, code = HOSTILE_EXPECTED[name]
    start = time.monotonic()
    with pytest.raises(MediaError) as info:
        await load(path, pool, budget, max_seconds=600)
    assert time.monotonic() - start < 10
    assert 400 <= info.value.status < 500
    if status is not None:
        assert (info.value.status, info.value.code) == (status, code), info.value.message
    assert str(path) not in info.value.message and path.name not in info.value.message


async def test_huge_frame_size_refused_before_decoding(pool: DecodePool, budget: SamplingBudget) -> None:
    path = sv.huge_dimensions_file(8192, 8192)
    with pytest.raises(MediaError) as info:
        await load(path, pool, budget)
    assert (info.value.status, info.value.code) == (422, "video_over_budget")
    assert "8192x8192 (67.1 megapixels); at most 33.2 megapixels" in info.value.message


async def test_bit_flipped_payload_never_crashes(pool: DecodePool, budget: SamplingBudget) -> None:
    """Light corruption may decode (with concealment) or be refused; either way, no 5xx."""
    for seed in range(4):
        path = sv.bit_flipped_file(flips=50, seed=seed)
        try:
            video = await load(path, pool, budget)
        except MediaError as exc:
            assert 400 <= exc.status < 500
        else:
            assert video.frames.shape[0] >= 2


async def test_over_budget_rejected_before_decoding(pool: DecodePool, budget: SamplingBudget) -> None:
    path = sv.make_video(STANDARD["long_6min_tiny"])
    before = pool.stats.jobs
    with pytest.raises(MediaError) as info:
        await load(path, pool, budget, max_seconds=300)
    assert info.value.message == "video is 360.0 s long; this model accepts at most 300 s (maxSeconds (--max-seconds))"
    assert pool.stats.jobs == before + 1  # the probe only: no decode job ran


async def test_pool_survives_hostile_corpus(pool: DecodePool, budget: SamplingBudget) -> None:
    video = await load(sv.make_video(STANDARD["h264_mp4"]), pool, budget)
    assert [frame_index_of(f) for f in video.frames] == video.metadata["frames_indices"]


# -- process isolation: crash, hang, memory, cancellation ----------------------------------------


async def test_worker_crash_is_a_4xx_and_the_pool_recovers(budget: SamplingBudget) -> None:
    async with DecodePool(1, memory_bytes=1024**3) as pool:
        path = sv.make_video(SLOW)
        pid = pool.worker_pids()[0]
        task = asyncio.create_task(load(path, pool, budget))
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGSEGV)  # what a decoder bug looks like from outside
        with pytest.raises(InvalidVideo, match="decoder crashed") as info:
            await task
        assert info.value.status == 400
        video = await load(sv.make_video(STANDARD["h264_mp4"]), pool, budget)
        assert video.frames.shape[0] == 4
        assert pool.stats.crashes == 1 and pool.worker_pids() != [pid]


async def test_hang_is_killed_by_the_time_limit(budget: SamplingBudget) -> None:
    async with DecodePool(1, memory_bytes=1024**3) as pool:
        path = sv.make_video(SLOW)
        start = time.monotonic()
        with pytest.raises(DecodeTimeout) as info:
            await load(path, pool, budget, decode_timeout_seconds=0.3)
        assert time.monotonic() - start < 3
        assert info.value.status == 422 and "decode_timeout_seconds" in info.value.message
        video = await load(sv.make_video(STANDARD["h264_mp4"]), pool, budget)
        assert video.frames.shape[0] == 4 and pool.stats.timeouts == 1


async def test_memory_limit_is_a_4xx(budget: SamplingBudget) -> None:
    """An 8K source needs more private memory (FFmpeg's frame pool) than a 420 MiB worker has.

    Measured on the 2-core machine: the probe (one frame) passes from about 380 MiB; the decode
    needs between 450 and 600 (one FFmpeg thread and the resizer; two frame threads needed more
    than 600).

    The limit is RLIMIT_DATA: the decoder's own memory. The output frames are sized by the plan
    (a shared buffer the API process allocates) and are not what this limit guards.
    """
    async with DecodePool(1, memory_bytes=420 * 1024**2) as pool:
        path = sv.make_video(sv.VideoSpec(width=7680, height=4320, fps=4, seconds=1.0))
        limits = limits_for(path)
        from videomodel_server.media import Fetcher

        with await Fetcher().fetch(path.as_uri(), limits) as media:
            probe = await pool.probe(media.fd, limits)
            with pytest.raises(DecodeMemory) as info:
                await pool.decode(media.fd, plan_sampling(probe, budget), 20)
        assert info.value.status == 422
        video = await load(sv.make_video(STANDARD["h264_mp4"]), pool, budget)
        assert video.frames.shape[0] == 4


async def test_cancellation_kills_the_job(budget: SamplingBudget) -> None:
    async with DecodePool(1, memory_bytes=1024**3) as pool:
        path = sv.make_video(SLOW)
        pid = pool.worker_pids()[0]
        task = asyncio.create_task(load(path, pool, budget))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats.cancelled == 1
        video = await load(sv.make_video(STANDARD["h264_mp4"]), pool, budget)
        assert video.frames.shape[0] == 4 and pid not in pool.worker_pids()


async def test_workers_are_recycled(budget: SamplingBudget) -> None:
    async with DecodePool(1, memory_bytes=1024**3, recycle_after_jobs=2) as pool:
        first = pool.worker_pids()
        path = sv.make_video(STANDARD["h264_mp4"])
        await load(path, pool, budget)  # probe + decode: 2 jobs, then the worker is replaced
        video = await load(path, pool, budget)
        assert video.frames.shape[0] == 4 and pool.worker_pids() != first


def _scale_with_memory_nearly_gone(limit: int, conn: Any) -> None:
    """In a child: cap RLIMIT_DATA, fill it, then free it a MiB at a time, scaling an 8K frame
    at each step; report the type of every failure until one scale succeeds."""
    import resource

    import av
    import cv2

    cv2.setNumThreads(1)  # as the decode worker does, before its limit (pool._worker_main)

    from videomodel_server.media.decode import scale_frame

    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    frame = av.VideoFrame(7680, 4320, "yuv420p")
    ballast = []
    with contextlib.suppress(MemoryError):
        while True:
            ballast.append(np.ones(1 << 20, np.uint8))
    failures: list[str] = []
    while ballast:
        try:
            scale_frame(frame, 588, 336)
            break
        except Exception as exc:
            failures.append(type(exc).__name__ if not isinstance(exc, MemoryError) else "MemoryError")
        ballast.pop()
    ballast.clear()
    conn.send(failures)


async def test_every_allocation_failure_while_scaling_is_a_memory_error() -> None:
    """swscale reports some allocation failures as EAGAIN (PyAV's BlockingIOError), not ENOMEM.

    CI once answered an 8K source under the worker's limit with "could not be decoded" (400)
    instead of DecodeMemory (422). Stepping the free memory up a MiB at a time walks through
    every place the scale can fail; each must be a MemoryError.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_scale_with_memory_nearly_gone, args=(600 * 1024**2, child_end))
    child.start()
    assert await asyncio.to_thread(parent.poll, 120), f"the child answered nothing (exit code {child.exitcode})"
    failures = parent.recv()
    child.join(30)
    assert failures, "the ballast never made the scale fail: the test proves nothing"
    assert set(failures) == {"MemoryError"}, failures


async def test_decodes_running_at_once_share_the_threads(budget: SamplingBudget) -> None:
    """A lone decode gets all of the pool's threads; one sent while another runs gets half (issue
    10: each starting a thread per core made them fight over the cores); the frames are the same."""
    path = sv.make_video(STANDARD["hd_720p"])
    limits = limits_for(path)
    from videomodel_server.media import Fetcher

    async with DecodePool(2, memory_bytes=1024**3, threads=4) as pool:
        with await Fetcher().fetch(path.as_uri(), limits) as media:
            plan = plan_sampling(await pool.probe(media.fd, limits), budget)
            alone = await pool.decode(media.fd, plan, 20)
        with await Fetcher().fetch(path.as_uri(), limits) as a, await Fetcher().fetch(path.as_uri(), limits) as b:
            first = asyncio.create_task(pool.decode(a.fd, plan, 20))
            await asyncio.sleep(0)  # the first is sent (its threads chosen) and running
            second = await pool.decode(b.fd, plan, 20)
            both = [await first, second]
    assert alone.threads == 4 and [d.threads for d in both] == [4, 2]
    assert all(np.array_equal(d.frames, alone.frames) for d in both)
