"""Corrupt clips made at test time, for frame recovery (issue 12 item 2).

Motion-JPEG in Matroska, every frame drawing its own index (``frame_index_of`` reads it back), with
chosen packets replaced by bytes FFmpeg refuses (``InvalidDataError``), so exactly those frames fail
to decode, deterministically.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from videomodel_devtools.synthetic_videos import frame_pixels

CLIP_FPS = 10
"""The corrupt clips' frame rate."""


def corrupt_mjpeg(path: Path, frames: int, bad: set[int], width: int = 160, height: int = 120) -> Path:
    """An MJPEG/Matroska clip of ``frames`` frames at 10 fps whose ``bad`` frames do not decode."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        stream.codec_context.time_base = Fraction(1, CLIP_FPS)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, width, height), format="rgb24").reformat(
                format="yuvj420p"
            )
            frame.pts, frame.time_base = i, Fraction(1, CLIP_FPS)
            for packet in stream.encode(frame):
                if i in bad:  # a JPEG start, then nothing FFmpeg can read
                    broken = av.Packet(b"\xff\xd8\xff\xe0garbage" + bytes(200))
                    broken.pts, broken.dts, broken.time_base = packet.pts, packet.dts, packet.time_base
                    broken.stream = stream
                    container.mux(broken)
                else:
                    container.mux(packet)
        container.mux(stream.encode(None))
    return path


def make_clips(root: Path) -> Path:
    """The corrupt clips of tests/media/test_frame_recovery.py and tests/server/test_frame_recovery_server.py."""
    corrupt_mjpeg(root / "two-lost.mkv", 20, {6, 7, 13})  # 2 s: targets 0, 6, 13, 19
    corrupt_mjpeg(root / "many-lost.mkv", 200, set(range(3, 200, 5)))  # 20 s, 40 packets lost
    corrupt_mjpeg(root / "clean.mkv", 20, set())
    corrupt_mjpeg(root / "dense-lost.mkv", 100, {i for i in range(100) if i % 5 in (1, 3)})  # 10 s, 40 lost
    return root
