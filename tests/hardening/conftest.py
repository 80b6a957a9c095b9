"""The hardening rig: the real app (real media loader: fetch, probe, decode pool) on loopback.

Only the engine is a fake (tests/server/fakes.py). Around the server:

* **Forbidden listeners** on ``127.0.0.1`` and ``[::1]``: every hostile URL that names a loopback
  spelling points at them, and they count every connection they accept. They answer with a
  valid video, so a guard that let one through would show up as a 200, not only as a count.
* **The origin** on ``127.0.0.9``, the one address the server is told is public
  (``media_exempt_networks``): it redirects, stalls, lies and streams forever on demand.
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

import contextlib
import ipaddress
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpcore
import httpx
import psutil
import pytest

from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.app import create_app
from videomodel_server.budget import BUILTIN_MODELS
from videomodel_server.media import Fetcher, system_resolver
from videomodel_server.media_adapter import PipelineLoader, build_loader
from videomodel_server.settings import ServerSettings
from videomodel_server.wiring import build_state, resolve

from ..server.fakes import FakeEngine
from ..server.harness import ThreadedServer

ORIGIN_IP = "127.0.0.9"
"""The stand-in for a public media host: the only address exempt from the SSRF check."""
FETCH_TIMEOUT_S = 3.0
MAX_VIDEO_BYTES = 4 * 1024 * 1024
MAX_IMAGE_BYTES = 1024 * 1024


# -- forbidden listeners ---------------------------------------------------------------------------


class CountingListener:
    """A TCP listener that counts accepted connections and answers each with a small video."""

    def __init__(self, host: str, family: int, body: bytes) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.body = body
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with contextlib.suppress(OSError), conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {len(self.body)}\r\n"
                conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + self.body)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@dataclass
class Forbidden:
    v4: CountingListener
    v6: CountingListener | None

    @property
    def accepted(self) -> int:
        return self.v4.accepted + (self.v6.accepted if self.v6 else 0)


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


@dataclass
class Origin:
    base: str
    port: int
    files: dict[str, bytes]
    stop: threading.Event
    requests: list[str] = field(default_factory=list)
    open_handlers: list[int] = field(default_factory=lambda: [0])

    def url(self, path: str) -> str:
        return self.base + path


class _OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    origin: ClassVar[Origin]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.origin.requests.append(self.path)
        self.origin.open_handlers[0] += 1
        try:
            with contextlib.suppress(OSError):
                self._route()
        finally:
            self.origin.open_handlers[0] -= 1

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        stop = self.origin.stop
        if path.startswith("/files/"):
            body = self.origin.files.get(path.removeprefix("/files/"))
            if body is None:
                self._head(404, {"Content-Length": "0"})
                return
            self._head(200, {"Content-Type": "video/mp4", "Content-Length": str(len(body))})
            self.wfile.write(body)
            return
        if path == "/redirect":
            code = query.get("code", ["302"])[0]
            self._head(int(code), {"Location": query["to"][0], "Content-Length": "0"})
            return
        if path == "/loop":
            self._head(302, {"Location": "/loop", "Content-Length": "0"})
            return
        if path == "/pingpong":
            self._head(301, {"Location": "/pingpong2", "Content-Length": "0"})
            return
        if path == "/pingpong2":
            self._head(307, {"Location": "/pingpong", "Content-Length": "0"})
            return
        if path == "/slowloris":
            # Headers one byte at a time, each just inside any per-read timeout.
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            for byte in b"X-Slow: " + b"a" * 10_000:
                if stop.wait(0.2):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        if path == "/drip-body":
            self._head(200, {"Content-Length": str(MAX_VIDEO_BYTES // 2)})
            for _ in range(10_000):
                if stop.wait(0.2):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
            return
        if path == "/longer-than-declared":
            self._head(200, {"Content-Length": "1000", "Connection": "close"})
            self.wfile.write(b"y" * (MAX_VIDEO_BYTES * 2))
            self.close_connection = True
            return
        if path == "/endless-chunked":
            self._head(200, {"Transfer-Encoding": "chunked"})
            chunk = b"z" * 65536
            while not stop.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            return
        if path == "/two-gigabytes":
            size = 2 * 1024**3
            self._head(200, {"Content-Length": str(size)})
            chunk = b"\0" * (1 << 20)
            for _ in range(size // len(chunk)):
                if stop.is_set():
                    return
                self.wfile.write(chunk)
            return
        if path == "/two-gigabytes-undeclared":
            self._head(200, {"Connection": "close"})
            chunk = b"\0" * (1 << 20)
            for _ in range(2048):
                if stop.is_set():
                    return
                self.wfile.write(chunk)
            self.close_connection = True
            return
        if path == "/stall-mid-body":
            self._head(200, {"Content-Length": "100000"})
            self.wfile.write(b"x" * 5000)
            self.wfile.flush()
            stop.wait(30)
            return
        if path == "/stall-headers":
            stop.wait(30)
            return
        if path == "/status":
            self._head(int(query["code"][0]), {"Content-Length": "4"})
            self.wfile.write(b"oops")
            return
        self._head(404, {"Content-Length": "0"})


@pytest.fixture(scope="session")
def origin(small_video: bytes) -> Iterator[Origin]:
    stop = threading.Event()
    handler: type[_OriginHandler] = type("Handler", (_OriginHandler,), {})
    httpd = ThreadingHTTPServer((ORIGIN_IP, 0), handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    state = Origin(f"http://{ORIGIN_IP}:{port}", port, {"ok.mp4": small_video}, stop)
    handler.origin = state
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    stop.set()
    httpd.shutdown()
    httpd.server_close()


@dataclass
class TlsTarpit:
    """Accepts TCP on the origin address and never answers the TLS ClientHello."""

    port: int
    sock: socket.socket
    held: list[socket.socket] = field(default_factory=list)


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


@dataclass
class FakeDns:
    answers: dict[str, list[str]]
    sequences: dict[str, list[list[str]]]
    calls: dict[str, int] = field(default_factory=dict)

    async def __call__(self, host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        self.calls[host] = self.calls.get(host, 0) + 1
        if host in self.sequences:
            seq = self.sequences[host]
            answer = seq[min(self.calls[host] - 1, len(seq) - 1)]
            return [ipaddress.ip_address(a) for a in answer]
        if host in self.answers:
            return [ipaddress.ip_address(a) for a in self.answers[host]]
        numeric = all(c in "0123456789abcdefx.:" for c in host)
        if numeric or host in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
            return await system_resolver(host, port)
        raise OSError("NXDOMAIN (test DNS)")


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


@dataclass
class Dialled:
    """Every address the fetcher dialled (after the SSRF check and pinning)."""

    attempts: list[tuple[str, int]] = field(default_factory=list)

    def forbidden(self) -> list[tuple[str, int]]:
        return [(h, p) for h, p in self.attempts if h != ORIGIN_IP]


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


@dataclass
class Hardened:
    server: ThreadedServer
    loader: PipelineLoader
    engine: FakeEngine
    media_root: Path
    outside: Path
    tmp: Path
    """The server's temp dir (``tempfile.tempdir`` while the suite runs)."""

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def hardened(
    tmp_path_factory: pytest.TempPathFactory, dns: FakeDns, dialled: Dialled, forbidden: Forbidden, origin: Origin
) -> Iterator[Hardened]:
    media_root = tmp_path_factory.mktemp("hardening-root")
    outside = tmp_path_factory.mktemp("hardening-outside")
    server_tmp = tmp_path_factory.mktemp("hardening-tmp")
    previous_tmp = tempfile.tempdir
    tempfile.tempdir = str(server_tmp)
    settings = ServerSettings.model_validate(
        {
            "model": {"model": Path("/models/Qwen2-VL-2B-Instruct"), "served_model_name": "tiny"},
            "budget": {
                "max_seconds": 20,
                "max_video_bytes": MAX_VIDEO_BYTES,
                "videos_per_prompt": 2,
                "images_per_prompt": 1,
            },
            "media": {
                "allow_http": True,
                "allowed_local_media_path": media_root,
                "media_exempt_networks": (f"{ORIGIN_IP}/32",),
                "fetch_timeout": FETCH_TIMEOUT_S,
                "max_image_bytes": MAX_IMAGE_BYTES,
                "max_redirects": 3,
            },
            "admission": {"decode_workers": 2, "decode_timeout": 10},
        }
    )
    resolved = resolve(settings, BUILTIN_MODELS["Qwen2-VL-2B"])
    loader = build_loader(settings, resolved)
    loader.fetcher = Fetcher(resolver=dns)
    engine = FakeEngine()
    state = build_state(settings, resolved, loader, engine=engine)
    with ThreadedServer(create_app(state)) as server:
        yield Hardened(server, loader, engine, media_root, outside, server_tmp)
    tempfile.tempdir = previous_tmp


# -- measuring -----------------------------------------------------------------------------------------


@dataclass
class Measure:
    seconds: float = 0.0
    api_rss_growth_mb: float = 0.0
    worker_peak_rss_mb: float = 0.0


class Meter:
    """Samples RSS of this process and its children every 10 ms while a row runs."""

    def __init__(self) -> None:
        self.proc = psutil.Process()

    @contextlib.contextmanager
    def measure(self) -> Iterator[Measure]:
        out = Measure()
        base = self.proc.memory_info().rss
        peak = [base, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.01):
                with contextlib.suppress(psutil.Error):
                    peak[0] = max(peak[0], self.proc.memory_info().rss)
                for child in self.proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        peak[1] = max(peak[1], child.memory_info().rss)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        started = time.perf_counter()
        try:
            yield out
        finally:
            out.seconds = time.perf_counter() - started
            done.set()
            t.join()
            out.api_rss_growth_mb = max(0, peak[0] - base) / 2**20
            out.worker_peak_rss_mb = peak[1] / 2**20


@pytest.fixture(scope="session")
def meter() -> Meter:
    return Meter()


@dataclass
class Results:
    """Per-category figures for the closing report (printed at the end of the session)."""

    rows: dict[str, list[tuple[str, int, str, Measure]]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    """Whole-run figures (the load and shutdown tests), one line each, printed after the rows."""

    def add(self, category: str, row_id: str, status: int, code: str, m: Measure) -> None:
        self.rows.setdefault(category, []).append((row_id, status, code, m))


RESULTS = Results()


@pytest.fixture(scope="session")
def results() -> Results:
    return RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS.rows and not RESULTS.lines:
        return
    tr = terminalreporter
    tr.section("hardening: inputs, statuses, worst time and memory per category")
    for category, rows in sorted(RESULTS.rows.items()):
        statuses: dict[int, int] = {}
        for _, status, _, _ in rows:
            statuses[status] = statuses.get(status, 0) + 1
        worst_t = max(rows, key=lambda r: r[3].seconds)
        worst_api = max(r[3].api_rss_growth_mb for r in rows)
        worst_worker = max(r[3].worker_peak_rss_mb for r in rows)
        tr.write_line(
            f"{category}: {len(rows)} inputs, statuses {dict(sorted(statuses.items()))}, "
            f"worst time {worst_t[3].seconds:.2f} s ({worst_t[0]}), API RSS growth <= {worst_api:.1f} MiB, "
            f"decode worker peak RSS <= {worst_worker:.0f} MiB"
        )
    for line in RESULTS.lines:
        tr.write_line(line)


# -- helpers for the tests ------------------------------------------------------------------------


def post_video(base: str, url: str, kind: str = "video", timeout: float = 30) -> httpx.Response:
    part: dict[str, Any]
    if kind == "image":
        part = {"type": "image_url", "image_url": {"url": url}}
    else:
        part = {"type": "video_url", "video_url": {"url": url}}
    body = {
        "model": "tiny",
        "max_tokens": 2,
        "messages": [{"role": "user", "content": [part, {"type": "text", "text": "?"}]}],
    }
    return httpx.post(base + "/v1/chat/completions", json=body, timeout=timeout)


def assert_envelope(resp: httpx.Response) -> dict[str, Any]:
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and isinstance(err["type"], str) and isinstance(err["code"], str)
    return dict(err)


def assert_serving(base: str) -> None:
    """Healthy and serving: /health is 200 and a real video request through the real loader works."""
    assert httpx.get(base + "/health", timeout=10).status_code == 200


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tmp_entries(path: Path) -> list[str]:
    return sorted(os.listdir(path))


Check = Callable[[], None]
