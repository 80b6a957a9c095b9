"""The synthetic video generator: every catalogue entry decodes back to what its spec says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from videomodel_devtools import synthetic_videos as sv
from videomodel_devtools.synthetic_videos import STANDARD, VideoSpec, frame_index_of, frame_pixels


@pytest.mark.parametrize("name", sorted(STANDARD))
def test_standard_video_decodes_as_specified(name: str, standard_video: Callable[[str], Path]) -> None:
    spec = STANDARD[name]
    path = standard_video(name)
    assert path.suffix == spec.suffix
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in sv.DECODED_NAMES[spec.codec]
        assert (stream.codec_context.width, stream.codec_context.height) == (spec.width, spec.height)
        assert len(container.streams.audio) == (1 if spec.audio else 0)
        frames = list(container.decode(stream))
        duration = container.duration / 1e6
    assert len(frames) == spec.frame_count
    times = [float(f.time) for f in frames]
    assert times == pytest.approx(spec.frame_times(), abs=1.5e-3)
    if spec.vfr:
        gaps = np.diff(times)
        assert gaps.max() > 3 * gaps.min()  # really variable
    else:
        assert duration == pytest.approx(spec.duration, abs=0.02)
    assert all((f.rotation % 360) == (spec.rotation % 360) for f in frames[:1])
    indices = [frame_index_of(f.to_ndarray(format="rgb24")) for f in frames]
    assert indices == list(range(len(frames)))


def test_durations_span_sub_second_to_minutes() -> None:
    durations = [s.duration for s in STANDARD.values()]
    assert min(durations) < 1 and max(durations) >= 300
    ratios = [max(s.width, s.height) / min(s.width, s.height) for s in STANDARD.values()]
    assert max(ratios) >= 10
    assert any(s.height > s.width for s in STANDARD.values())


@pytest.mark.parametrize("size", [(28, 56), (56, 28), (224, 448), (600, 1000)])
def test_frame_index_survives_resizing(size: tuple[int, int]) -> None:
    path = sv.make_video(STANDARD["h264_mp4"])
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(width=size[1], height=size[0], format="rgb24")
            assert frame_index_of(rgb) == i


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_frame_index_reads_rotated_frames(rotation: int) -> None:
    img = frame_pixels(12345, 64, 32)
    rotated = np.rot90(img, k=rotation // 90)  # np.rot90 is counter-clockwise, like the matrix
    assert frame_index_of(rotated, rotation=rotation) == 12345


def test_cache_is_keyed_by_spec(tmp_path: Path) -> None:
    a = VideoSpec(seconds=1.0)
    assert a.key() == VideoSpec(seconds=1.0).key()
    assert a.key() != VideoSpec(seconds=1.0, vfr=True).key()
    first = sv.make_video(a)
    mtime = first.stat().st_mtime_ns
    assert sv.make_video(a) == first and first.stat().st_mtime_ns == mtime


def test_spec_rejects_odd_sizes() -> None:
    with pytest.raises(ValueError):
        VideoSpec(width=33)


def test_fixture_factory(make_video: Callable[..., Path]) -> None:
    path = make_video(codec="vp9", container="webm", width=64, height=64, seconds=0.5)
    assert path.exists() and path.suffix == ".webm"


# -- hostile inputs: each has the property its name claims -------------------------------------


def _opens(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            list(c.decode(video=0))
        return True
    except (av.error.FFmpegError, IndexError, ValueError):
        return False


@pytest.mark.parametrize("name", ["truncated", "truncated_header", "not_a_video_random", "not_a_video_html", "empty"])
def test_hostile_files_do_not_decode(name: str, hostile_video: Callable[[str], Path]) -> None:
    assert not _opens(hostile_video(name))


def test_truncated_faststart_keeps_a_header_but_loses_frames(hostile_video: Callable[[str], Path]) -> None:
    with av.open(str(hostile_video("truncated_faststart"))) as c:
        assert c.duration == 2_000_000  # the header still promises 2 s
        with pytest.raises(av.error.FFmpegError):
            list(c.decode(video=0))


def test_bit_flipped_differs_but_keeps_size(hostile_video: Callable[[str], Path]) -> None:
    flipped = hostile_video("bit_flipped").read_bytes()
    original = sv.make_video(VideoSpec(seconds=2.0)).read_bytes()
    assert len(flipped) == len(original) and flipped != original


def test_audio_only_and_many_streams(hostile_video: Callable[[str], Path]) -> None:
    with av.open(str(hostile_video("audio_only"))) as c:
        assert not c.streams.video and len(c.streams.audio) == 1
    with av.open(str(hostile_video("many_streams"))) as c:
        assert len(c.streams) >= 40


def test_long_and_odd_timing(hostile_video: Callable[[str], Path]) -> None:
    with av.open(str(hostile_video("hours_long"))) as c:
        assert c.duration / 1e6 >= 3 * 3600
    with av.open(str(hostile_video("sparse_pts_hours"))) as c:
        assert c.duration / 1e6 >= 3 * 3600
    with av.open(str(hostile_video("absurd_fps"))) as c:
        assert c.streams.video[0].average_rate > 10_000
    with av.open(str(hostile_video("no_timing"))) as c:
        assert c.duration is None
    with av.open(str(hostile_video("zero_fps"))) as c:
        assert {f.pts for f in c.decode(video=0)} == {0}


def test_huge_dimensions() -> None:
    with av.open(str(sv.huge_dimensions_file(4096, 4096))) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height) == (4096, 4096)


def test_live_webm_has_no_duration() -> None:
    with av.open(str(sv.live_webm_file())) as c:
        assert c.duration is None and c.streams.video[0].frames == 0
        assert [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)] == list(range(30))
