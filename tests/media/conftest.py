"""Fixtures for the media pipeline: a hostile loopback HTTP(S) server and one decode pool.

The server (tests/harness/media.py's, on 127.0.0.1, port 0) serves real files and misbehaves on
demand: redirects (chains, loops, to private addresses), stalls, lies about Content-Length,
streams forever, drips bytes, gzip bombs. Tests reach it with ``exempt_networks=("127.0.0.1/32",)``
so every other private address stays refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.harness.media import MediaServer, TlsSetup, self_signed
from videomodel_devtools.synthetic_videos import STANDARD, make_video
from videomodel_server.media import DecodePool, MediaLimits, SamplingBudget

LOOPBACK = ("127.0.0.1/32",)


@pytest.fixture(scope="session")
def served_files() -> dict[str, bytes]:
    return {
        "small.mp4": make_video(STANDARD["h264_mp4"]).read_bytes(),
        "vfr.mp4": make_video(STANDARD["vfr"]).read_bytes(),
    }


@pytest.fixture(scope="session")
def http_server(served_files: dict[str, bytes]) -> Iterator[MediaServer]:
    with MediaServer(files=served_files) as server:
        yield server


@pytest.fixture(scope="session")
def https_server(served_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSetup]:
    """An HTTPS server whose certificate is valid only for ``media.test`` (checks SNI/Host)."""
    hostname = "media.test"
    server_ctx, client_ctx = self_signed(hostname, tmp_path_factory.mktemp("tls"))
    with MediaServer(files=served_files, tls=server_ctx) as server:
        yield TlsSetup(server, client_ctx, hostname)


@pytest.fixture
def loopback_limits(tmp_path: Path) -> MediaLimits:
    return MediaLimits(
        exempt_networks=LOOPBACK,
        connect_timeout_seconds=2,
        read_timeout_seconds=1,
        fetch_timeout_seconds=4,
        max_seconds=900,
        allowed_local_root=tmp_path,
    )


@pytest.fixture(scope="session")
def budget() -> SamplingBudget:
    """Qwen2-VL-style: 2 fps, 64 frames, 128..256 tokens' worth of pixels per frame."""
    return SamplingBudget(fps=2.0, max_frames=64, min_pixels=128 * 28 * 28, max_pixels=256 * 28 * 28, factor=28)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool() -> AsyncIterator[DecodePool]:
    """One pool of 2 workers for the session (1 GiB address space each)."""
    async with DecodePool(2, memory_bytes=1024**3) as p:
        yield p
