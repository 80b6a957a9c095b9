"""The benchmark's clips (issue 10), made at bench time with the project's synthetic videos.

Encoded once by :func:`videomodel_devtools.synthetic_videos.make_video` and cached under
``.cache/videos`` (keyed by spec), so only the first ``make bench`` pays for encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from videomodel_devtools.synthetic_videos import VideoSpec, hd_clip, make_video


@dataclass(frozen=True)
class Clip:
    name: str
    spec: VideoSpec
    long: bool = False
    """Skipped by ``BENCH_QUICK=1`` (encoding it takes minutes on 2 cores)."""

    def path(self) -> Path:
        return make_video(self.spec)


CLIPS: tuple[Clip, ...] = (
    Clip("60s 720p h264 gop60", hd_clip(60.0)),
    Clip("10s 1080p h264", VideoSpec("h264", "mp4", 1920, 1080, 30, 10.0, crf=28)),
    Clip("300s 360p h264 25fps", VideoSpec("h264", "mp4", 640, 360, 25, 300.0, crf=28)),
    Clip("20s 720p vp9 webm", VideoSpec("vp9", "webm", 1280, 720, 30, 20.0)),
    Clip("15s 1080x1920 portrait", VideoSpec("h264", "mp4", 1080, 1920, 30, 15.0, crf=28)),
    Clip("600s 720p h264 gop60", hd_clip(600.0), long=True),
)
SMOKE = Clip("2s 320x240 h264", VideoSpec("h264", "mp4", 320, 240, 10, 2.0))
"""The ``make test`` smoke run's clip (seconds to encode and decode)."""
