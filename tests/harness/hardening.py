"""The hardening rig's parts: the forbidden listeners, the fake DNS, the connection record, the served
app's handle, the meter and the closing report, and the checks every hardening test makes.

tests/hardening/conftest.py wires them into session fixtures (its docstring draws the rig); the
origin, the one "public" host, is :class:`~tests.harness.media.MediaServer` on :data:`ORIGIN_IP`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psutil

from videomodel_server.media import system_resolver
from videomodel_server.media_adapter import PipelineLoader

from . import reports
from .app import AppServer
from .fakes import FakeEngine

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


# -- the TLS tarpit ------------------------------------------------------------------------------------


@dataclass
class TlsTarpit:
    """Accepts TCP on the origin address and never answers the TLS ClientHello."""

    port: int
    sock: socket.socket
    held: list[socket.socket] = field(default_factory=list)


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


@dataclass
class Dialled:
    """Every address the fetcher dialled (after the SSRF check and pinning)."""

    attempts: list[tuple[str, int]] = field(default_factory=list)

    def forbidden(self) -> list[tuple[str, int]]:
        return [(h, p) for h, p in self.attempts if h != ORIGIN_IP]


# -- the server ---------------------------------------------------------------------------------------


@dataclass
class Hardened:
    server: AppServer
    loader: PipelineLoader
    engine: FakeEngine
    media_root: Path
    outside: Path
    tmp: Path
    """The server's temp dir (``tempfile.tempdir`` while the suite runs)."""

    @property
    def url(self) -> str:
        return self.server.url


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


@dataclass
class Results:
    """Per-category figures for the closing report (printed at the end of the session by
    tests/harness/reports.py, which the hardening conftest registers this with)."""

    title: ClassVar[str] = "hardening: inputs, statuses, worst time and memory per category"

    rows: dict[str, list[tuple[str, int, str, Measure]]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    """Whole-run figures (the load and shutdown tests), one line each, printed after the rows."""

    def add(self, category: str, row_id: str, status: int, code: str, m: Measure) -> None:
        self.rows.setdefault(category, []).append((row_id, status, code, m))

    def summary_lines(self) -> list[str]:
        out = []
        for category, rows in sorted(self.rows.items()):
            statuses: dict[int, int] = {}
            for _, status, _, _ in rows:
                statuses[status] = statuses.get(status, 0) + 1
            worst_t = max(rows, key=lambda r: r[3].seconds)
            worst_api = max(r[3].api_rss_growth_mb for r in rows)
            worst_worker = max(r[3].worker_peak_rss_mb for r in rows)
            out.append(
                f"{category}: {len(rows)} inputs, statuses {dict(sorted(statuses.items()))}, "
                f"worst time {worst_t[3].seconds:.2f} s ({worst_t[0]}), API RSS growth <= {worst_api:.1f} MiB, "
                f"decode worker peak RSS <= {worst_worker:.0f} MiB"
            )
        return [*out, *self.lines]

    def merge(self, other: Results) -> None:
        """Fold in what another process recorded (an xdist worker's results)."""
        for category, rows in other.rows.items():
            self.rows.setdefault(category, []).extend(rows)
        self.lines.extend(other.lines)


RESULTS = reports.keep("hardening", Results())
"""The hardening figures of this process (an xdist worker sends them to the controller)."""


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
