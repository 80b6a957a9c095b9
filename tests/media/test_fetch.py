"""Fetch against a real loopback HTTP(S) server: SSRF guard, redirects, caps, deadlines, file://."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.harness.media import MediaServer, TlsSetup, loopback_resolver
from videomodel_server.media import Fetcher, MediaError, MediaLimits
from videomodel_server.media.errors import (
    FetchFailed,
    FetchTimeout,
    ForbiddenAddress,
    InvalidDataURL,
    InvalidMediaURL,
    LocalFileRefused,
    TooLarge,
    TooManyRedirects,
    UnsupportedScheme,
)


async def fetch_bytes(url: str, limits: MediaLimits, fetcher: Fetcher | None = None) -> bytes:
    with await (fetcher or Fetcher()).fetch(url, limits) as media:
        return media.read_all()


async def test_fetches_a_file(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    data = await fetch_bytes(http_server.href("/files/small.mp4"), loopback_limits)
    assert data == http_server.files["small.mp4"]


# -- SSRF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/files/small.mp4",
        "http://localhost:{port}/files/small.mp4",
        "http://[::1]:{port}/files/small.mp4",
        "http://[::ffff:127.0.0.1]:{port}/files/small.mp4",
        "http://0x7f.1:{port}/files/small.mp4",
        "http://2130706433:{port}/files/small.mp4",
        "http://0.0.0.0:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
    ],
)
async def test_non_global_addresses_refused_by_default(url: str, http_server: MediaServer) -> None:
    before = len(http_server.requests)
    with pytest.raises(ForbiddenAddress) as info:
        await fetch_bytes(url.format(port=http_server.port), MediaLimits())
    assert info.value.status == 400
    assert "127.0.0.1" not in info.value.message and "169.254" not in info.value.message
    assert len(http_server.requests) == before  # never connected


async def test_redirect_to_private_address_refused(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        f"http://127.0.0.2:{http_server.port}/files/small.mp4",  # loopback but not the exempt one
        f"http://[::1]:{http_server.port}/files/small.mp4",
    ]:
        url = http_server.href(f"/redirect?to={target}")
        with pytest.raises(ForbiddenAddress):
            await fetch_bytes(url, loopback_limits)


async def test_redirect_to_other_scheme_refused(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    for target in ["file:///etc/passwd", "gopher://127.0.0.1:70/", "data:video/mp4;base64,AAAA"]:
        with pytest.raises((UnsupportedScheme, InvalidMediaURL)) as info:
            await fetch_bytes(http_server.href(f"/redirect?to={target}"), loopback_limits)
        assert info.value.status == 400


async def test_dns_resolved_once_and_pinned(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    """A name resolves once per hop; the connection goes to the checked address with Host kept."""
    resolver = loopback_resolver({"media.test": "127.0.0.1"})
    fetcher = Fetcher(resolver=resolver)
    data = await fetch_bytes(f"http://media.test:{http_server.port}/host", loopback_limits, fetcher)
    assert data == f"media.test:{http_server.port}".encode()  # Host header is the name, not the IP
    assert resolver.calls == {"media.test": 1}  # type: ignore[attr-defined]


async def test_rebinding_name_refused(http_server: MediaServer) -> None:
    """A name that resolves to a private address is refused, whatever the name."""
    fetcher = Fetcher(resolver=loopback_resolver({"innocent.example.com": "10.0.0.5"}))
    with pytest.raises(ForbiddenAddress, match="private or reserved"):
        await fetch_bytes("https://innocent.example.com/v.mp4", MediaLimits(), fetcher)


async def test_unresolvable_host(loopback_limits: MediaLimits) -> None:
    fetcher = Fetcher(resolver=loopback_resolver({}))
    with pytest.raises(FetchFailed, match="could not be resolved"):
        await fetch_bytes("https://nowhere.invalid/v.mp4", loopback_limits, fetcher)


async def test_https_keeps_sni_and_verifies_certificate(https_server: TlsSetup) -> None:
    limits = MediaLimits(exempt_networks=("127.0.0.1/32",), fetch_timeout_seconds=5)
    port = https_server.server.port
    fetcher = Fetcher(resolver=loopback_resolver({"media.test": "127.0.0.1"}), ssl_context=https_server.client_context)
    data = await fetch_bytes(f"https://media.test:{port}/files/small.mp4", limits, fetcher)
    assert data == https_server.server.files["small.mp4"]
    # By IP the certificate (for media.test only) does not verify: proof SNI/verification use the name.
    with pytest.raises(FetchFailed):
        await fetch_bytes(f"https://127.0.0.1:{port}/files/small.mp4", limits, fetcher)


# -- redirects -------------------------------------------------------------------------------------


async def test_redirect_chain_within_cap(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    data = await fetch_bytes(http_server.href("/chain/2"), loopback_limits)  # 3 redirects
    assert data == http_server.files["small.mp4"]
    with pytest.raises(TooManyRedirects, match="more than 3 times"):
        await fetch_bytes(http_server.href("/chain/3"), loopback_limits)  # 4 redirects
    with pytest.raises(TooManyRedirects):
        await fetch_bytes(http_server.href("/loop"), loopback_limits)
    with pytest.raises(InvalidMediaURL, match="without a Location"):
        await fetch_bytes(http_server.href("/no-location"), loopback_limits)


async def test_error_statuses(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    for code in (404, 403, 500):
        with pytest.raises(FetchFailed, match=f"HTTP {code}") as info:
            await fetch_bytes(http_server.href(f"/status?code={code}"), loopback_limits)
        assert info.value.status == 400


# -- sizes -----------------------------------------------------------------------------------------


async def test_content_length_over_cap_refused_before_body(
    http_server: MediaServer, loopback_limits: MediaLimits
) -> None:
    with pytest.raises(TooLarge) as info:
        await fetch_bytes(http_server.href("/lie-huge"), loopback_limits)
    assert info.value.status == 413 and "1000000000000 bytes" in info.value.message


async def test_streaming_forever_stops_at_cap(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    limits = replace(loopback_limits, max_video_bytes=2 * 1024 * 1024)
    start = time.monotonic()
    with pytest.raises(TooLarge, match=r"maxVideoBytes \(--max-video-bytes\)"):
        await fetch_bytes(http_server.href("/forever"), limits)
    assert time.monotonic() - start < 3


async def test_file_over_cap_by_counting(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    limits = replace(loopback_limits, max_video_bytes=1000)
    with pytest.raises(TooLarge):
        await fetch_bytes(http_server.href("/files/small.mp4"), limits)


async def test_gzip_bomb_counted_after_decoding(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    limits = replace(loopback_limits, max_video_bytes=1024 * 1024)
    with pytest.raises(TooLarge):
        await fetch_bytes(http_server.href("/gzip-bomb"), limits)


async def test_content_length_lies(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    with pytest.raises(FetchFailed, match="broke before"):
        await fetch_bytes(http_server.href("/lie-short"), loopback_limits)
    data = await fetch_bytes(http_server.href("/lie-small"), loopback_limits)
    assert len(data) == 100  # never more than declared


# -- deadlines ---------------------------------------------------------------------------------------


async def test_stalled_headers_time_out(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    start = time.monotonic()
    with pytest.raises(FetchTimeout) as info:
        await fetch_bytes(http_server.href("/stall-headers"), loopback_limits)
    assert info.value.status == 422  # not 408: the OpenAI SDKs retry 408
    assert time.monotonic() - start < 3


async def test_stalled_body_times_out(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    with pytest.raises(FetchTimeout, match="read_timeout_seconds"):
        await fetch_bytes(http_server.href("/stall-body"), loopback_limits)


async def test_drip_hits_overall_deadline(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    limits = replace(loopback_limits, fetch_timeout_seconds=1.0)
    start = time.monotonic()
    with pytest.raises(FetchTimeout, match="fetch_timeout_seconds"):
        await fetch_bytes(http_server.href("/drip"), limits)
    assert time.monotonic() - start < 2


async def test_fetch_is_cancellable(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    task = asyncio.create_task(fetch_bytes(http_server.href("/stall-headers"), loopback_limits))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- data: and file: ---------------------------------------------------------------------------------


async def test_data_url(http_server: MediaServer) -> None:
    raw = http_server.files["small.mp4"]
    url = "data:video/mp4;base64," + base64.b64encode(raw).decode()
    assert await fetch_bytes(url, MediaLimits()) == raw
    with pytest.raises(InvalidDataURL, match="not valid base64"):
        await fetch_bytes("data:video/mp4;base64,@@@@", MediaLimits())
    with pytest.raises(TooLarge):
        await fetch_bytes(url, MediaLimits(max_video_bytes=len(raw) - 10))


async def test_file_url_under_root(tmp_path: Path) -> None:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "v.mp4").write_bytes(b"video")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", root / "escape.mp4")
    os.symlink(root / "sub" / "v.mp4", root / "inside.mp4")
    os.symlink(tmp_path, root / "dirlink")
    os.mkfifo(root / "fifo.mp4")
    limits = MediaLimits(allowed_local_root=root)
    assert await fetch_bytes(f"file://{root}/sub/v.mp4", limits) == b"video"
    assert await fetch_bytes(f"file://{root}/inside.mp4", limits) == b"video"  # a link that stays inside
    for name in ["escape.mp4", "dirlink/secret.txt", "sub", "fifo.mp4", "missing.mp4"]:
        with pytest.raises(LocalFileRefused) as info:
            await fetch_bytes(f"file://{root}/{name}", limits)
        assert str(tmp_path) not in info.value.message
    with pytest.raises(LocalFileRefused, match="outside"):
        await fetch_bytes(f"file://{tmp_path}/secret.txt", limits)
    with pytest.raises(TooLarge):
        await fetch_bytes(f"file://{root}/sub/v.mp4", replace(limits, max_video_bytes=2))


async def test_messages_never_contain_the_url(http_server: MediaServer, loopback_limits: MediaLimits) -> None:
    marker = "zz-marker-zz"
    for path in [f"/status?code=404&{marker}", f"/redirect?to=http://10.0.0.1/{marker}", f"/{marker}"]:
        with pytest.raises(MediaError) as info:
            await fetch_bytes(http_server.href(path), loopback_limits)
        assert marker not in info.value.message and "127.0.0.1" not in info.value.message
