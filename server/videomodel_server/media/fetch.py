"""Fetch media bytes: http(s) with an SSRF guard, ``data:`` base64, ``file://`` under a root.

Why this shape (docs/security.md#media-fetch):

* **DNS is resolved once**, through an injectable :data:`Resolver`, every resolved address is
  checked (:mod:`.addresses`), and the connection goes to the checked address: httpx sends
  through a transport of ours (httpx's public transport interface over an httpcore pool) whose
  network backend maps ``(host, port)`` to the pinned IP and refuses any host it has no pin
  for, so there is no second lookup to rebind. The URL keeps its host name, so the Host
  header, TLS SNI and certificate verification are unchanged.
* **Redirects are followed by hand**: each hop is re-validated (scheme, domains), re-resolved,
  re-checked and pinned, up to ``max_redirects``.
* **Bytes**: a Content-Length over the cap is refused before reading; the body is counted while
  streaming (after content decoding; we ask for ``identity``) and the fetch stops at the cap.
  Data URLs are refused by encoded length before decoding (:mod:`.urls`).
* **Deadlines**: connect and per-read timeouts from httpx, and one overall deadline around all
  hops (``fetch_timeout_seconds``); everything is ``async`` and cancellable.
* **file://**: the path is resolved (symlinks inside the root are fine), must lie under the
  allowed root, and is then opened component by component from the root with ``O_NOFOLLOW``,
  so a link swapped in after the check fails instead of escaping; ``fstat`` on the opened
  descriptor must show a regular file with one link (a hard link could name any file of the
  filesystem) that is not on /proc, /sys or /dev.

Environment proxies are ignored (``trust_env=False``): a proxy would do its own DNS.
Conditional GETs: given :class:`~.validators.Validators` (those of an earlier response of the same
URL, whose frames are cached), every hop carries ``If-None-Match``/``If-Modified-Since``; a
``304`` then comes back as :attr:`FetchedMedia.not_modified` with no bytes. A ``200`` reports its
own strong validators (:attr:`FetchedMedia.validators`) for next time.
The result is an open file descriptor (:class:`FetchedMedia`): downloads and data URLs land in
an anonymous temporary file, local files are the opened file itself. The decode pool passes
the descriptor to its worker, so no path is ever reopened.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import functools
import ipaddress
import os
import socket
import ssl
import stat
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import httpcore
import httpx

from .addresses import IPAddress, parse_ip_literal
from .errors import (
    FetchFailed,
    FetchTimeout,
    InvalidDataURL,
    InvalidMediaURL,
    LocalFileRefused,
    MediaError,
    TooLarge,
    TooManyRedirects,
)
from .limits import MediaLimits
from .urls import (
    DataTarget,
    FileTarget,
    HttpTarget,
    MediaKind,
    byte_setting,
    check_addresses,
    classify_url,
    resolve_redirect,
)
from .validators import Validators, validators_of

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""``(host, port) -> addresses``. The default asks the system (getaddrinfo) once."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 256 * 1024


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve through the system resolver (off the event loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    out: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if addr not in out:
                out.append(addr)
    return out


@dataclass
class FetchedMedia:
    """Fetched bytes as an open, readable, seekable file descriptor (owned: call ``close``)."""

    fd: int
    size: int
    source: Literal["http", "data", "file"]
    media_type: str | None = None
    validators: Validators | None = None
    """The response's strong validators (http only; None when it had none)."""
    not_modified: bool = False
    """The origin answered ``304`` to a conditional fetch: no bytes (``fd`` is -1)."""

    def read_all(self) -> bytes:
        """All bytes (for images; videos go to the decode pool by descriptor)."""
        return os.pread(self.fd, self.size, 0)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> FetchedMedia:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Fetcher:
    """The fetch stage. Seams: ``resolver`` (DNS) and ``ssl_context`` (tests trust a local CA)."""

    def __init__(self, *, resolver: Resolver = system_resolver, ssl_context: ssl.SSLContext | None = None) -> None:
        self._resolver = resolver
        self._ssl_context = ssl_context or httpx.create_ssl_context()

    async def fetch(
        self, url: str, limits: MediaLimits, kind: MediaKind = "video", *, validators: Validators | None = None
    ) -> FetchedMedia:
        """Fetch ``url`` within ``limits``; raises :class:`MediaError` (never echoing the URL).

        ``validators``: make an http(s) fetch conditional (see the module docstring)."""
        target = classify_url(url, limits, kind)
        cap = limits.max_video_bytes if kind == "video" else limits.max_image_bytes
        if isinstance(target, DataTarget):
            return await _fetch_data(target, cap, kind)
        if isinstance(target, FileTarget):
            return await asyncio.to_thread(_open_local, target, limits, cap, kind)
        try:
            async with asyncio.timeout(limits.fetch_timeout_seconds):
                return await self._fetch_http(target, limits, cap, kind, validators)
        except TimeoutError:
            raise FetchTimeout(
                f"fetching the {kind} took longer than {limits.fetch_timeout_seconds:g} s (fetch_timeout_seconds)"
            ) from None

    async def _fetch_http(
        self, target: HttpTarget, limits: MediaLimits, cap: int, kind: MediaKind, validators: Validators | None
    ) -> FetchedMedia:
        pins: dict[tuple[str, int], str] = {}
        timeout = httpx.Timeout(
            connect=limits.connect_timeout_seconds,
            read=limits.read_timeout_seconds,
            write=limits.read_timeout_seconds,
            pool=limits.connect_timeout_seconds,
        )
        transport = _PinnedTransport(pins, self._ssl_context)
        headers = {"User-Agent": limits.user_agent, "Accept-Encoding": "identity", "Accept": f"{kind}/*, */*;q=0.5"}
        if validators is not None:
            headers.update(validators.conditional_headers())
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False, headers=headers
        ) as client:
            for _hop in range(limits.max_redirects + 1):
                pins[(target.host, target.port)] = await self._pin(target, limits, kind)
                try:
                    response = await client.send(client.build_request("GET", target.url), stream=True)
                except httpx.TimeoutException:
                    raise _timeout_error(kind, limits) from None
                except httpx.HTTPError:
                    raise FetchFailed(f"could not connect to the {kind} host") from None
                except (httpx.InvalidURL, ValueError):
                    # httpx pre-builds the next request of a redirect and chokes on odd Locations.
                    raise InvalidMediaURL(f"the {kind} host redirected to an invalid or unsupported URL") from None
                try:
                    if response.status_code in REDIRECT_STATUSES:
                        target = resolve_redirect(target, response.headers.get("location", ""), limits, kind)
                        continue
                    if response.status_code == 304 and validators is not None:
                        return FetchedMedia(fd=-1, size=0, source="http", not_modified=True)
                    if response.status_code != 200:
                        raise FetchFailed(f"the {kind} host answered HTTP {response.status_code}")
                    return await _stream_body(response, cap, kind, limits)
                finally:
                    await response.aclose()
        raise TooManyRedirects(f"the {kind} URL redirected more than {limits.max_redirects} times (max_redirects)")

    async def _pin(self, target: HttpTarget, limits: MediaLimits, kind: MediaKind) -> str:
        """Resolve ``target.host`` once and return the checked address to connect to."""
        literal = parse_ip_literal(target.host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                addresses = await self._resolver(target.host, target.port)
            except (OSError, UnicodeError):
                raise FetchFailed(f"the {kind} URL's host name could not be resolved") from None
            if not addresses:
                raise FetchFailed(f"the {kind} URL's host name could not be resolved")
        check_addresses(addresses, limits, kind)
        return str(addresses[0])


def _timeout_error(kind: MediaKind, limits: MediaLimits) -> MediaError:
    return FetchTimeout(
        f"the {kind} host did not respond in time (connect_timeout_seconds {limits.connect_timeout_seconds:g}, "
        f"read_timeout_seconds {limits.read_timeout_seconds:g})"
    )


async def _stream_body(response: httpx.Response, cap: int, kind: MediaKind, limits: MediaLimits) -> FetchedMedia:
    setting = byte_setting(kind)
    declared = response.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise FetchFailed(f"the {kind} host sent an invalid Content-Length") from None
        if declared_size > cap:
            raise TooLarge(f"the {kind} is {declared_size} bytes; the limit is {cap} bytes ({setting})")
    with tempfile.TemporaryFile() as file:
        size = 0
        try:
            async for chunk in response.aiter_bytes(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise TooLarge(f"the {kind} is larger than the limit of {cap} bytes ({setting})")
                file.write(chunk)  # page-cache write of <= CHUNK bytes: short enough for the loop
        except httpx.TimeoutException:
            raise _timeout_error(kind, limits) from None
        except httpx.HTTPError:
            raise FetchFailed(f"the connection broke before the whole {kind} arrived") from None
        file.flush()
        fd = os.dup(file.fileno())
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower() or None
    return FetchedMedia(
        fd=fd, size=size, source="http", media_type=media_type, validators=validators_of(response.headers)
    )


async def _fetch_data(target: DataTarget, cap: int, kind: MediaKind) -> FetchedMedia:
    def decode() -> FetchedMedia:
        try:
            data = base64.b64decode(target.payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidDataURL(f"the {kind} data URL is not valid base64") from None
        if len(data) > cap:
            setting = byte_setting(kind)
            raise TooLarge(f"the {kind} data URL decodes to {len(data)} bytes; the limit is {cap} bytes ({setting})")
        with tempfile.TemporaryFile() as file:
            file.write(data)
            file.flush()
            fd = os.dup(file.fileno())
        return FetchedMedia(fd=fd, size=len(data), source="data", media_type=target.media_type)

    if len(target.payload) < 1 << 20:
        return decode()
    return await asyncio.to_thread(decode)


def _open_local(target: FileTarget, limits: MediaLimits, cap: int, kind: MediaKind) -> FetchedMedia:
    """Open ``target`` under the allowed root without following a link swapped in later."""
    assert limits.allowed_local_root is not None
    refused = LocalFileRefused(f"the {kind} file is not a readable regular file under the allowed local root")
    root = os.path.realpath(limits.allowed_local_root)
    real = os.path.realpath(target.path)
    if os.path.commonpath([root, real]) != root or real == root:
        raise LocalFileRefused(f"the {kind} file is outside the allowed local root (allowed_local_root)")
    parts = os.path.relpath(real, root).split(os.sep)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise refused from None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LocalFileRefused(f"the {kind} file's path changed to a symbolic link while opening it") from None
        raise refused from None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refused
        if info.st_nlink != 1:
            # A hard link inside the root may name any file of the same filesystem: no path
            # check can tell, so files with more than one name are refused.
            raise LocalFileRefused(f"the {kind} file has other hard links; only single-link files are read")
        if info.st_dev in _pseudo_filesystems():
            # /proc, /sys and /dev files are "regular" with a made-up size (a root of "/" or a
            # bind mount would otherwise serve /proc/self/environ).
            raise refused
        if info.st_size > cap:
            setting = byte_setting(kind)
            raise TooLarge(f"the {kind} file is {info.st_size} bytes; the limit is {cap} bytes ({setting})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return FetchedMedia(fd=fd, size=info.st_size, source="file", media_type=None)


@functools.cache
def _pseudo_filesystems() -> frozenset[int]:
    """Device ids of the kernel's pseudo-filesystems (their files are never media)."""
    devices = set()
    for path in ("/proc", "/sys", "/dev"):
        with contextlib.suppress(OSError):
            devices.add(os.stat(path).st_dev)
    return frozenset(devices)


# -- the pinned transport: httpx with a network backend that only dials checked addresses -----


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, pins: dict[tuple[str, int], str]) -> None:
        self._pins = pins
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        key = (host.lower().strip("[]").rstrip("."), port)
        address = self._pins.get(key)
        if address is None:
            # Never dial a host that was not resolved and checked by Fetcher._pin.
            raise httpcore.ConnectError("refusing to connect to an unpinned host")
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for media")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over an httpcore pool of our own, on the pinned backend.

    What ``httpx.AsyncHTTPTransport`` does around its pool, through public interfaces only: the
    request and response are mapped field for field (the timeouts travel in the request's
    ``extensions``), and httpcore's exceptions become httpx's, while sending and while the body
    streams, so the callers' ``httpx.TimeoutException`` / ``httpx.HTTPError`` handling holds.
    One request at a time, no keep-alive, no retries, HTTP/1.1 only.
    """

    def __init__(self, pins: dict[tuple[str, int], str], ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=4,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_PinnedBackend(pins),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    """An httpcore response body as httpx reads it, its exceptions mapped as the send's are."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    # Most specific first: the first match wins (httpx's own table, in that order).
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)
"""httpcore's exceptions and the httpx ones ``AsyncHTTPTransport`` raises for them."""


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """Re-raise an httpcore exception as its httpx counterpart (others pass through)."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _HTTPX_ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise
