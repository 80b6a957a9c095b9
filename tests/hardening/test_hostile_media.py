"""Every hostile media file of the catalogue, made at test time, through the real server.

Each file is written under the server's ``file://`` root (or sent as a data URL, or served by
the origin) and requested as a video or image. The rows pin the status and code; the decode
pool's workers absorb whatever FFmpeg or Pillow do with the bytes (time and memory limits),
and the forbidden listeners prove that no FFmpeg protocol (HLS, concat, RTP) reached out.
"""

from __future__ import annotations

import base64
import gzip
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import MediaServer
from tests.harness.hardening import (
    MAX_IMAGE_BYTES,
    MAX_VIDEO_BYTES,
    Dialled,
    Forbidden,
    Hardened,
    Meter,
    Results,
    assert_envelope,
    assert_serving,
    post_video,
)
from videomodel_devtools.synthetic_videos import (
    VideoSpec,
    absurd_fps_file,
    audio_only_file,
    bit_flipped_file,
    frame_pixels,
    hours_long_file,
    huge_dimensions_file,
    make_video,
    many_streams_file,
    no_timing_file,
    not_a_video_file,
    sparse_pts_file,
    truncated_file,
    zero_fps_file,
)
from videomodel_server.media.urls import max_base64_chars

from .catalogue import MEDIA, Row


@dataclass
class Ctx:
    root: Path
    v4: int
    v6: int
    origin: MediaServer


SMALL = VideoSpec(seconds=1.0, fps=4, width=64, height=64)


def _small() -> bytes:
    return make_video(SMALL).read_bytes()


def _patch(data: bytes, box: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite ``value`` at ``offset`` bytes after the first ``box`` tag."""
    out = bytearray(data)
    at = out.find(box)
    assert at > 0, box
    out[at + offset : at + offset + len(value)] = value
    return bytes(out)


def _stts_deltas(data: bytes, delta: bytes) -> bytes:
    out = bytearray(data)
    at = out.find(b"stts")
    for e in range(int.from_bytes(out[at + 8 : at + 12], "big")):
        pos = at + 12 + e * 8 + 4
        out[pos : pos + 4] = delta
    return bytes(out)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def _png_header_bomb() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )


def _png_zeros_bomb() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(out, format="PNG", optimize=False)
    return out.getvalue()


def _gif_bomb() -> bytes:
    screen = struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b"\x3b"


def _real_png() -> bytes:
    return not_a_video_file("png").read_bytes()


def _zip_appended(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return data + out.getvalue()


def _hls(ctx: Ctx, segments: list[str]) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0"]
    for s in segments:
        lines += ["#EXTINF:1.0,", s]
    return ("\n".join([*lines, "#EXT-X-ENDLIST", ""])).encode()


Build = Callable[[Ctx], bytes | str | dict[str, Any]]
"""bytes: written under the root and sent as file://; str: a URL sent as is; dict: a content part."""

BUILDERS: dict[str, Build] = {
    "zero-length": lambda c: b"",
    "one-byte": lambda c: b"\0",
    "random-64k": lambda c: not_a_video_file("random").read_bytes(),
    "random-3m": lambda c: random.Random(3).randbytes(3 * 1024 * 1024),
    "text": lambda c: not_a_video_file("text").read_bytes(),
    "html": lambda c: not_a_video_file("html").read_bytes(),
    "truncated-header": lambda c: truncated_file(keep=0.02).read_bytes(),
    "truncated-half": lambda c: truncated_file(keep=0.5).read_bytes(),
    "truncated-90": lambda c: truncated_file(keep=0.9).read_bytes(),
    "truncated-faststart-half": lambda c: truncated_file(VideoSpec(seconds=2.0, faststart=True), 0.5).read_bytes(),
    "truncated-webm-half": lambda c: truncated_file(VideoSpec("vp9", "webm", seconds=1.0), 0.5).read_bytes(),
    "bitflip-200": lambda c: bit_flipped_file().read_bytes(),
    "bitflip-heavy": lambda c: bit_flipped_file(flips=5000, seed=1, skip_header=0).read_bytes(),
    "bitflip-seed-2": lambda c: bit_flipped_file(flips=50, seed=2).read_bytes(),
    "bitflip-seed-3": lambda c: bit_flipped_file(flips=50, seed=3, skip_header=0).read_bytes(),
    "bitflip-mkv": lambda c: bit_flipped_file(VideoSpec(container="mkv", seconds=1.0), flips=100, seed=4).read_bytes(),
    "huge-wide": lambda c: huge_dimensions_file(16384, 16).read_bytes(),
    "huge-tall": lambda c: huge_dimensions_file(16, 16384).read_bytes(),
    "huge-area": lambda c: huge_dimensions_file(8192, 4352).read_bytes(),
    "y4m-declares-100000x100000": lambda c: (
        b"YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 4096
    ),
    "mp4-box-size-4g": lambda c: _patch(_small(), b"moov", -4, b"\xff\xff\xff\xff"),
    "mkv-element-size-huge": lambda c: _patch(
        make_video(VideoSpec(container="mkv", seconds=1.0)).read_bytes(),
        b"\x18\x53\x80\x67",
        4,
        b"\x01\xff\xff\xff\xff\xff\xff\xfe",
    ),
    "mp4-sample-count-huge": lambda c: _patch(_small(), b"stsz", 12, b"\x7f\xff\xff\xff"),
    "fps-zero": lambda c: zero_fps_file().read_bytes(),
    "fps-absurd": lambda c: absurd_fps_file().read_bytes(),
    "fps-negative-delta": lambda c: _stts_deltas(
        make_video(VideoSpec(seconds=1.0, bframes=False)).read_bytes(), b"\xff\xff\xff\xff"
    ),
    "timescale-zero": lambda c: _patch(_small(), b"mdhd", 16, b"\0\0\0\0"),
    "duration-absurd": lambda c: _patch(
        _patch(_small(), b"mdhd", 20, b"\xff\xff\xff\xfe"), b"mvhd", 20, b"\xff\xff\xff\xfe"
    ),
    "hours-long-tiny": lambda c: hours_long_file().read_bytes(),
    "sparse-pts-hours": lambda c: sparse_pts_file().read_bytes(),
    "no-timing-raw-h264": lambda c: no_timing_file().read_bytes(),
    "many-streams-43": lambda c: many_streams_file().read_bytes(),
    "hundreds-of-streams": lambda c: many_streams_file(2, 200).read_bytes(),
    "unknown-codec-mp4": lambda c: _small().replace(b"avc1", b"zzzz"),
    "unknown-codec-mkv": lambda c: (
        make_video(VideoSpec(container="mkv", seconds=1.0)).read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_ZZZZZ/ISO/AVC")
    ),
    "audio-only": lambda c: audio_only_file().read_bytes(),
    "png-as-video": lambda c: _real_png(),
    "polyglot-mp4-zip": lambda c: _zip_appended(_small()),
    "polyglot-gif-mp4": lambda c: b"GIF89a\x01\x00\x01\x00\x00\x00\x00;" + _small(),
    "hls-playlist-loopback": lambda c: _hls(c, [f"http://127.0.0.1:{c.v4}/s0.ts", f"http://[::1]:{c.v6}/s1.ts"]),
    "hls-playlist-file": lambda c: _hls(c, ["file:///etc/passwd", f"file://{c.root}/ok.mp4", "/etc/hostname"]),
    "hls-playlist-over-http": lambda c: _served(c, "list.m3u8", _hls(c, [f"http://127.0.0.1:{c.v4}/s0.ts"])),
    "ffconcat-loopback": lambda c: f"ffconcat version 1.0\nfile 'http://127.0.0.1:{c.v4}/a.mp4'\n".encode(),
    "ffconcat-file": lambda c: f"ffconcat version 1.0\nfile '/etc/passwd'\nfile '{c.root}/ok.mp4'\n".encode(),
    "sdp-rtp-loopback": lambda c: (
        f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video {c.v4} RTP/AVP 96\n"
        "a=rtpmap:96 H264/90000\n"
    ).encode(),
    "gzip-wrapped-mp4": lambda c: gzip.compress(_small()),
    "tiny-2x2": lambda c: make_video(VideoSpec(width=2, height=2, seconds=1.0, fps=4)).read_bytes(),
    "image-bomb-header": lambda c: _png_header_bomb(),
    "image-bomb-png-zeros": lambda c: _png_zeros_bomb(),
    "image-bomb-gif": lambda c: _gif_bomb(),
    "image-truncated": lambda c: _real_png()[: len(_real_png()) // 2],
    "image-random": lambda c: random.Random(5).randbytes(4096),
    "image-is-a-video": lambda c: _small(),
    "image-base64-over-cap": lambda c: "data:image/png;base64," + "A" * (max_base64_chars(MAX_IMAGE_BYTES) + 8),
    "video-base64-over-cap": lambda c: "data:video/mp4;base64," + "A" * (max_base64_chars(MAX_VIDEO_BYTES) + 8),
    "body-over-request-cap": lambda c: "data:video/mp4;base64," + "A" * (16 * 1024 * 1024),
    "forged-frame-list": lambda c: {
        "type": "video",
        "video": [f"file://{c.root}/ok.mp4"] * 4,
        "fps": 1e9,
        "video_metadata": {"fps": -1, "total_num_frames": 10**12},
    },
    "forged-frame-metadata": lambda c: {
        "type": "video",
        "video": f"file://{c.root}/ok.mp4",
        "nframes": -5,
        "video_metadata": {"fps": 0, "frames_indices": [-1, 10**12], "do_sample_frames": True},
    },
}


def _jpeg(index: int, width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame_pixels(index, width, height)).save(out, format="JPEG")
    return out.getvalue()


def _jpeg_frames(parts: list[bytes | str]) -> str:
    """vLLM's frame-sequence data URL: each frame's base64 (or a text as is), joined by commas."""
    texts = [p if isinstance(p, str) else base64.b64encode(p).decode() for p in parts]
    return "data:video/jpeg;base64," + ",".join(texts)


def _huge_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8192, 4096), (90, 90, 90)).save(out, format="JPEG", quality=10)
    return out.getvalue()


BUILDERS.update(
    {
        "jpeg-frames-garbage-between": lambda c: _jpeg_frames([_jpeg(0), b"<html>garbage</html>", _jpeg(1)]),
        "jpeg-frames-not-base64": lambda c: _jpeg_frames([_jpeg(0), "%%%not-base64%%%", _jpeg(1)]),
        "jpeg-frames-truncated-jpeg": lambda c: _jpeg_frames([_jpeg(0), _jpeg(1)[:120], _jpeg(2), _jpeg(3)]),
        "jpeg-frames-over-pixel-cap": lambda c: _jpeg_frames([_huge_jpeg(), _huge_jpeg()]),
        "jpeg-frames-more-than-max-frames": lambda c: _jpeg_frames([_jpeg(i, 16, 16) for i in range(200)]),
    }
)


def _served(c: Ctx, name: str, body: bytes) -> str:
    c.origin.files[name] = body
    return f"{c.origin.url}/files/{name}"


def test_catalogue_size() -> None:
    assert len(MEDIA) >= 40
    assert {r.id for r in MEDIA} == set(BUILDERS)


@pytest.mark.parametrize("row", MEDIA, ids=[r.id for r in MEDIA])
def test_hostile_media(
    row: Row,
    hardened: Hardened,
    forbidden: Forbidden,
    dialled: Dialled,
    origin: MediaServer,
    meter: Meter,
    results: Results,
    small_video: bytes,
) -> None:
    root = hardened.media_root
    (root / "ok.mp4").write_bytes(small_video)
    v6 = forbidden.v6.port if forbidden.v6 else forbidden.v4.port
    built = BUILDERS[row.id](Ctx(root, forbidden.v4.port, v6, origin))
    accepted, bad_dials = forbidden.accepted, len(dialled.forbidden())

    with meter.measure() as m:
        if isinstance(built, dict):
            body = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": [built]}]}
            resp = httpx.post(hardened.url + "/v1/chat/completions", json=body, timeout=30)
        else:
            if isinstance(built, bytes):
                path = root / f"hostile-{row.id}.bin"
                path.write_bytes(built)
                built = path.as_uri()
            resp = post_video(hardened.url, built, "image" if row.kind == "image" else "video")

    code = "" if resp.status_code == 200 else assert_envelope(resp)["code"]
    results.add("media", row.id, resp.status_code, code, m)
    assert resp.status_code in row.statuses, resp.text
    if resp.status_code != 200:
        assert code in row.codes, resp.text
        assert "/etc/" not in resp.text and str(root) not in resp.text
    assert forbidden.accepted == accepted, "an FFmpeg protocol reached a forbidden listener"
    assert len(dialled.forbidden()) == bad_dials
    assert m.seconds <= row.max_seconds, f"{m.seconds:.2f} s"
    assert m.api_rss_growth_mb <= row.max_api_mb, f"{m.api_rss_growth_mb:.1f} MiB"
    assert_serving(hardened.url)
    ok = post_video(hardened.url, (root / "ok.mp4").as_uri())
    assert ok.status_code == 200, ok.text
