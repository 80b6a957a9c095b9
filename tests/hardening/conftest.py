"""The hardening rig: the real app (real media loader: fetch, probe, decode pool) on loopback.

Only the engine is a fake (tests/harness/fakes.py). Around the server (the parts are
tests/harness/hardening.py's; this file wires them into session fixtures):

* **Forbidden listeners** on ``127.0.0.1`` and ``[::1]``: every hostile URL that names a loopback
  spelling points at them, and they count every connection they accept. They answer with a
  valid video, so a guard that let one through would show up as a 200, not only as a count.
* **The origin** on ``127.0.0.9``, the one address the server is told is public
  (``media_exempt_networks``): tests/harness/media.py's server, which redirects, stalls, lies and
  streams forever on demand.
* **A connection guard** around httpcore's async backend (the fetcher's only way out): it records
  every address the fetcher dials and refuses any that is not loopback, so no row can send a
  packet off this machine even if the SSRF guard broke.
* **A fake DNS** through the fetcher's resolver seam (mixed answers, rebinding, names for
  private addresses); numeric spellings and ``localhost`` go to the system resolver, which
  turns ``0x7f.1`` and friends into addresses without the network.
* **A meter**: a thread samples the RSS of this process (the API) and of its children (decode
  workers) so each row gets a wall time and a peak memory.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import httpcore
import pytest

from tests.harness import FakeEngine, MediaServer, fake_engine_server, pipeline_loader, server_settings
from tests.harness.hardening import (
    FETCH_TIMEOUT_S,
    MAX_IMAGE_BYTES,
    MAX_VIDEO_BYTES,
    ORIGIN_IP,
    RESULTS,
    CountingListener,
    Dialled,
    FakeDns,
    Forbidden,
    Hardened,
    Meter,
    Results,
    TlsTarpit,
)
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.media import Fetcher

# -- forbidden listeners ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_video() -> bytes:
    return make_video(VideoSpec(seconds=1.0, fps=4, width=64, height=64)).read_bytes()


@pytest.fixture(scope="session")
def forbidden(small_video: bytes) -> Iterator[Forbidden]:
    v4 = CountingListener("127.0.0.1", socket.AF_INET, small_video)
    v6: CountingListener | None
    try:
        v6 = CountingListener("::1", socket.AF_INET6, small_video)
    except OSError:  # no IPv6 loopback here: the v6 rows still must never connect
        v6 = None
    yield Forbidden(v4, v6)
    v4.close()
    if v6:
        v6.close()


# -- the origin: a misbehaving "public" host -------------------------------------------------------


@pytest.fixture(scope="session")
def origin(small_video: bytes) -> Iterator[MediaServer]:
    with MediaServer(files={"ok.mp4": small_video}, host=ORIGIN_IP) as server:
        yield server


@pytest.fixture(scope="session")
def tls_tarpit() -> Iterator[TlsTarpit]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((ORIGIN_IP, 0))
    sock.listen(16)
    pit = TlsTarpit(sock.getsockname()[1], sock)

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            pit.held.append(conn)  # read nothing, send nothing: the handshake never completes

    threading.Thread(target=accept, daemon=True).start()
    yield pit
    for c in pit.held:
        c.close()
    sock.close()


# -- DNS and the connection guard -------------------------------------------------------------------


@pytest.fixture(scope="session")
def dns() -> FakeDns:
    return FakeDns(
        answers={
            "origin.test": [ORIGIN_IP],
            "loopback.test": ["127.0.0.1"],
            "127.0.0.1.nip.io": ["127.0.0.1"],
            "metadata.test": ["169.254.169.254"],
            "metadata.google.internal": ["169.254.169.254"],
            "private10.test": ["10.0.0.7"],
            "cgnat.test": ["100.64.1.1"],
            "mixed.test": ["93.184.216.34", "10.0.0.7"],
            "mixed-late.test": [ORIGIN_IP, "127.0.0.1"],
            "mixed-v6.test": ["2606:4700::1111", "::1"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "compat.test": ["::127.0.0.1"],
            "nat64.test": ["64:ff9b::7f00:1"],
            "sixtofour.test": ["2002:7f00:1::1"],
            "teredo.test": ["2001:0:4136:e378:8000:63bf:80ff:fffe"],
            "ula.test": ["fd00::1"],
            "linklocal6.test": ["fe80::1"],
            "multicast.test": ["224.0.0.1"],
            "unspecified.test": ["0.0.0.0"],
        },
        sequences={
            # Rebinding: public when checked, loopback afterwards. Pinning means one lookup.
            "rebind.test": [[ORIGIN_IP], ["127.0.0.1"]],
            "rebind-private-first.test": [["127.0.0.1"], [ORIGIN_IP]],
        },
    )


@pytest.fixture(scope="session")
def dialled() -> Iterator[Dialled]:
    record = Dialled()
    original = httpcore.AnyIOBackend.connect_tcp

    async def guarded(self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kw: Any) -> Any:
        record.attempts.append((host, port))
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            # Never let a test send a packet off this machine, whatever the guard under test did.
            raise httpcore.ConnectError("test guard: only loopback may be dialled")
        return await original(self, host, port, *args, **kw)

    httpcore.AnyIOBackend.connect_tcp = guarded  # type: ignore[method-assign]
    yield record
    httpcore.AnyIOBackend.connect_tcp = original  # type: ignore[method-assign]


# -- the server ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hardened(
    tmp_path_factory: pytest.TempPathFactory, dns: FakeDns, dialled: Dialled, forbidden: Forbidden, origin: MediaServer
) -> Iterator[Hardened]:
    media_root = tmp_path_factory.mktemp("hardening-root")
    outside = tmp_path_factory.mktemp("hardening-outside")
    server_tmp = tmp_path_factory.mktemp("hardening-tmp")
    previous_tmp = tempfile.tempdir
    tempfile.tempdir = str(server_tmp)
    settings = server_settings(
        max_seconds=20,
        max_video_bytes=MAX_VIDEO_BYTES,
        videos_per_prompt=2,
        images_per_prompt=1,
        allow_http=True,
        allowed_local_media_path=media_root,
        media_exempt_networks=(f"{ORIGIN_IP}/32",),
        fetch_timeout=FETCH_TIMEOUT_S,
        max_image_bytes=MAX_IMAGE_BYTES,
        max_redirects=3,
        decode_workers=2,
        decode_timeout=10,
    )
    loader = pipeline_loader(settings)
    loader.fetcher = Fetcher(resolver=dns)
    engine = FakeEngine()
    with fake_engine_server(engine, loader, settings=settings) as server:
        yield Hardened(server, loader, engine, media_root, outside, server_tmp)
    tempfile.tempdir = previous_tmp


# -- measuring -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def meter() -> Meter:
    return Meter()


@pytest.fixture(scope="session")
def results() -> Results:
    return RESULTS
