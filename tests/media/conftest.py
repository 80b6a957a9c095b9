"""Fixtures for the media pipeline: a hostile loopback HTTP(S) server and one decode pool.

The server (``http.server`` in a thread on 127.0.0.1, port 0) serves real files and misbehaves
on demand: redirects (chains, loops, to private addresses), stalls, lies about Content-Length,
streams forever, drips bytes, gzip bombs. Tests reach it with ``exempt_networks=("127.0.0.1/32",)``
so every other private address stays refused.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import gzip
import hashlib
import ipaddress
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio

from videomodel_devtools.synthetic_videos import STANDARD, make_video
from videomodel_server.media import DecodePool, MediaLimits, SamplingBudget

LOOPBACK = ("127.0.0.1/32",)


@dataclass
class LoopbackServer:
    base: str
    port: int
    files: dict[str, bytes]
    requests: list[tuple[str, str]]
    """(path, Host header) of each request served."""
    stop: threading.Event
    answers: list[tuple[str, int, int]] = field(default_factory=list)
    """(path, status, body bytes) of each answer of the ``/validated/`` route."""

    def url(self, path: str) -> str:
        return self.base + path


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # routes
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            server.requests.append((path, self.headers.get("Host", "")))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._route(path, query)

        def _route(self, path: str, query: dict[str, list[str]]) -> None:
            if path.startswith("/files/"):
                name = path.removeprefix("/files/")
                if name not in server.files:
                    return self._send(404, b"not found")
                return self._send(200, server.files[name], {"Content-Type": "video/mp4"})
            if path.startswith("/validated/"):
                return self._validated(path, path.removeprefix("/validated/"), query)
            if path == "/redirect":
                return self._send(int(query.get("code", ["302"])[0]), headers={"Location": query["to"][0]})
            if path.startswith("/chain/"):
                n = int(path.rsplit("/", 1)[1])
                target = "/files/small.mp4" if n == 0 else f"/chain/{n - 1}"
                return self._send(302, headers={"Location": target})
            if path == "/loop":
                return self._send(302, headers={"Location": "/loop"})
            if path == "/no-location":
                return self._send(302)
            if path == "/status":
                return self._send(int(query["code"][0]), b"error page")
            if path == "/host":
                return self._send(200, self.headers.get("Host", "").encode())
            if path == "/stall-headers":
                server.stop.wait(30)
                return None
            if path == "/stall-body":
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"x" * 1000)
                self.wfile.flush()
                server.stop.wait(30)
                return None
            if path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                for _ in range(1000):
                    if server.stop.wait(0.1):
                        break
                    self.wfile.write(b"x" * 10)
                    self.wfile.flush()
                return None
            if path == "/lie-huge":
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                self.wfile.write(b"x" * 100)
                return None
            if path == "/lie-short":
                # Claims 10,000 bytes, sends 10 and closes.
                self.send_response(200)
                self.send_header("Content-Length", "10000")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.wfile.flush()
                self.close_connection = True
                return None
            if path == "/lie-small":
                # Claims 100 bytes, then keeps sending: only 100 may be read.
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"y" * 100_000)
                self.close_connection = True
                return None
            if path == "/forever":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"z" * 65536
                while not server.stop.is_set():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                return None
            if path == "/gzip-bomb":
                body = gzip.compress(b"\0" * (20 * 1024 * 1024))
                return self._send(200, body, {"Content-Encoding": "gzip", "Content-Length": str(len(body))})
            return self._send(404, b"no route")

        def _validated(self, path: str, name: str, query: dict[str, list[str]]) -> None:
            """A file with validators, as an object store serves it: a strong ETag (the content's
            hash; ``?weak=1``: a weak one), or with ``?lm=T`` a Last-Modified of Unix time T (``now``:
            the Date itself) instead; ``?cc=...`` adds a Cache-Control. Conditional requests get a
            304 when the validator still matches."""
            if name not in server.files:
                return self._send(404, b"not found")
            body = server.files[name]
            now = datetime.datetime.now(datetime.UTC)
            headers = {"Content-Type": "video/mp4"}  # send_response adds the Date
            if "lm" in query:
                at = query["lm"][0]
                modified = now if at == "now" else datetime.datetime.fromtimestamp(float(at), datetime.UTC)
                headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
                fresh = self.headers.get("If-Modified-Since") == headers["Last-Modified"]
            else:
                tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                headers["ETag"] = ("W/" if "weak" in query else "") + tag
                fresh = self.headers.get("If-None-Match") == headers["ETag"]
            if "cc" in query:
                headers["Cache-Control"] = query["cc"][0]
            if fresh:
                server.answers.append((path, 304, 0))
                return self._send(304, headers=headers)
            server.answers.append((path, 200, len(body)))
            return self._send(200, body, headers)

    return Handler


def _start(files: dict[str, bytes], tls: ssl.SSLContext | None = None) -> tuple[LoopbackServer, ThreadingHTTPServer]:
    stop = threading.Event()
    state = LoopbackServer("", 0, files, [], stop)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    state.base = f"{'https' if tls else 'http'}://127.0.0.1:{state.port}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return state, httpd


@pytest.fixture(scope="session")
def served_files() -> dict[str, bytes]:
    return {
        "small.mp4": make_video(STANDARD["h264_mp4"]).read_bytes(),
        "vfr.mp4": make_video(STANDARD["vfr"]).read_bytes(),
    }


@pytest.fixture(scope="session")
def http_server(served_files: dict[str, bytes]) -> Iterator[LoopbackServer]:
    state, httpd = _start(served_files)
    yield state
    state.stop.set()
    httpd.shutdown()
    httpd.server_close()


@dataclass
class TlsSetup:
    server: LoopbackServer
    client_context: ssl.SSLContext
    hostname: str


@pytest.fixture(scope="session")
def https_server(served_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSetup]:
    """An HTTPS server whose certificate is valid only for ``media.test`` (checks SNI/Host)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    hostname = "media.test"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
    state, httpd = _start(served_files, server_ctx)
    yield TlsSetup(state, client_ctx, hostname)
    state.stop.set()
    httpd.shutdown()
    httpd.server_close()


def loopback_resolver(mapping: dict[str, str]):  # type: ignore[no-untyped-def]
    """A resolver seam: names -> fixed addresses, counting lookups per name."""
    calls: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        calls[host] = calls.get(host, 0) + 1
        if host not in mapping:
            raise OSError("unknown host")
        return [ipaddress.ip_address(mapping[host])]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


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
