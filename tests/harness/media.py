"""One loopback HTTP(S) media server for every test: files, validators, redirects and hostile routes.

:class:`MediaServer` (``http.server`` in a thread, port 0, on ``127.0.0.1`` or another loopback
address; HTTPS with ``tls``) serves

* the files of a directory ``root`` at ``/<name>``, as ``http.server`` does (Last-Modified, a 304 to
  a matching If-Modified-Since; with ``last_modified=False`` no validator at all, so whether a
  repeat is revalidated cannot depend on the files' age), and the same files at ``/etag/<name>``
  with a strong ETag (modification time and size) instead, a 304 to a matching If-None-Match, as
  object stores answer;
* the bytes of the dict ``files`` at ``/files/<name>`` and at ``/validated/<name>`` with validators
  (a strong ETag of the content; ``?weak=1`` a weak one; ``?lm=T`` a Last-Modified of Unix time T,
  ``now`` the Date itself, instead; ``?cc=...`` a Cache-Control), a 304 when they still match;
* 302s added with :meth:`MediaServer.redirect`, and the routes of :data:`HOSTILE`: redirect hops,
  chains and loops, error statuses, stalls, lies about Content-Length, drips, endless and 2 GB
  bodies, a gzip bomb, a slowloris.

It logs every GET it answers (:attr:`MediaServer.requests`: the path as sent, query included, and
the Host header) and every answer of a validating route (:attr:`MediaServer.answers`).
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

MiB = 1024 * 1024
Query = dict[str, list[str]]


class Seen(NamedTuple):
    """One GET the server answered."""

    path: str
    """The request target as sent (query included)."""
    host: str
    """The Host header."""


class MediaServer:
    """A loopback media server; a context manager (``with MediaServer(root) as media: media.url``)."""

    def __init__(
        self,
        root: Path | None = None,
        files: dict[str, bytes] | None = None,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        last_modified: bool = True,
    ) -> None:
        self.root = root
        self.files: dict[str, bytes] = {} if files is None else files
        """Served at ``/files/<name>`` (the caller's dict: later changes are served)."""
        self.last_modified = last_modified
        self.redirects: dict[str, str] = {}
        self.requests: list[Seen] = []
        self.answers: list[tuple[str, int, int]] = []
        """(path, status, body bytes) of each answer of ``/validated/`` and ``/etag/``."""
        self.stop = threading.Event()
        """Set on close: stalled and endless routes end."""
        self.httpd = _Httpd((host, 0), partial(_Handler, directory=str(root) if root else None), self)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="media-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        host = str(self.httpd.server_address[0])
        return f"{self.scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    def href(self, path: str) -> str:
        """The URL of ``path`` (``/files/a.mp4`` or ``a.mp4``) on this server."""
        return self.url + (path if path.startswith("/") else "/" + path)

    def redirect(self, path: str, to: str) -> None:
        """Answer a GET of exactly ``path`` with a 302 to ``to``."""
        self.redirects[path] = to

    def hits(self, path: str) -> int:
        """How many GETs of exactly ``path`` (as sent) the server answered."""
        return sum(1 for seen in self.requests if seen.path == path)

    @property
    def not_modified(self) -> int:
        """How many 304s the validating routes answered."""
        return sum(1 for _, status, _ in self.answers if status == 304)

    def start(self) -> MediaServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Callable[..., _Handler], owner: MediaServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that stop reading on purpose (byte caps, timeouts, refusals) reset the connection.
        return


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Httpd
    etag: str | None = None
    """Set while a directory file goes out under ``/etag/``: sent instead of Last-Modified."""
    from_directory = False

    @property
    def owner(self) -> MediaServer:
        return self.server.owner

    @property
    def stop(self) -> threading.Event:
        return self.owner.stop

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.etag, self.from_directory = None, False  # one handler serves every request of a connection
        self.owner.requests.append(Seen(self.path, self.headers.get("Host", "")))
        with contextlib.suppress(OSError):
            self._route()

    def do_HEAD(self) -> None:
        self.etag, self.from_directory = None, True
        if self.owner.root is None:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Unsupported method ('HEAD')")
            return
        super().do_HEAD()

    def send_header(self, keyword: str, value: str) -> None:
        if self.from_directory and keyword.lower() == "last-modified":
            if self.etag is not None:
                super().send_header("ETag", self.etag)
                return
            if not self.owner.last_modified:
                return
        super().send_header(keyword, value)

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """A whole answer; Content-Length is the body's unless ``headers`` say otherwise."""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def head(self, status: int, headers: dict[str, str]) -> None:
        """The status line and exactly ``headers``; the route writes (or withholds) the body."""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def _route(self) -> None:
        owner = self.owner
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        target = owner.redirects.get(self.path)
        if target is not None:
            return self.send(302, headers={"Location": target})
        if path.startswith("/files/"):
            body = owner.files.get(path.removeprefix("/files/"))
            if body is None:
                return self.send(404, b"not found")
            return self.send(200, body, {"Content-Type": "video/mp4"})
        if path.startswith("/validated/"):
            return self._validated(path, path.removeprefix("/validated/"), query)
        if path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            return self.send(302, headers={"Location": "/files/small.mp4" if n == 0 else f"/chain/{n - 1}"})
        route = HOSTILE.get(path)
        if route is not None:
            return route(self, query)
        if owner.root is None:
            return self.send(404, b"no route")
        if path.startswith("/etag/"):
            return self._etag_file(path)
        self.from_directory = True
        super().do_GET()

    def _etag_file(self, path: str) -> None:
        """A file of the directory with a strong ETag (no Last-Modified); 304 to a matching If-None-Match."""
        assert self.owner.root is not None
        self.path = self.path.removeprefix("/etag")
        file = self.owner.root / path.removeprefix("/etag/")
        if file.is_file():
            info = file.stat()
            self.etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
            if self.headers.get("If-None-Match") == self.etag:
                self.owner.answers.append((path, 304, 0))
                return self.send(304, headers={"ETag": self.etag})
            self.owner.answers.append((path, 200, info.st_size))
        self.from_directory = True
        super().do_GET()

    def _validated(self, path: str, name: str, query: Query) -> None:
        files, answers = self.owner.files, self.owner.answers
        if name not in files:
            return self.send(404, b"not found")
        body = files[name]
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
            answers.append((path, 304, 0))
            return self.send(304, headers=headers)
        answers.append((path, 200, len(body)))
        return self.send(200, body, headers)


# -- the hostile routes --------------------------------------------------------------------------------

Route = Callable[[_Handler, Query], None]


def _hop(to: str, code: int = 302) -> Route:
    return lambda h, q: h.send(code, headers={"Location": to})


def _redirect(h: _Handler, q: Query) -> None:
    """``/redirect?to=URL&code=30x``: one hop to anywhere (302 by default)."""
    h.send(int(q.get("code", ["302"])[0]), headers={"Location": q["to"][0]})


def _stall_headers(h: _Handler, q: Query) -> None:
    h.stop.wait(30)


def _stall_body(declared: int, sent: int) -> Route:
    """Declares ``declared`` bytes, sends ``sent``, then nothing for 30 s."""

    def route(h: _Handler, q: Query) -> None:
        h.head(200, {"Content-Length": str(declared)})
        h.wfile.write(b"x" * sent)
        h.wfile.flush()
        h.stop.wait(30)

    return route


def _drip(declared: int, chunk: int, every: float, times: int) -> Route:
    """Declares ``declared`` bytes, then sends ``chunk`` of them every ``every`` seconds."""

    def route(h: _Handler, q: Query) -> None:
        h.head(200, {"Content-Length": str(declared)})
        for _ in range(times):
            if h.stop.wait(every):
                return
            h.wfile.write(b"x" * chunk)
            h.wfile.flush()

    return route


def _longer_than_declared(declared: int, sent: int) -> Route:
    """Declares ``declared`` bytes and keeps sending to ``sent``: only ``declared`` may be read."""

    def route(h: _Handler, q: Query) -> None:
        h.head(200, {"Content-Length": str(declared), "Connection": "close"})
        h.wfile.write(b"y" * sent)
        h.close_connection = True

    return route


def _lie_huge(h: _Handler, q: Query) -> None:
    h.head(200, {"Content-Length": str(10**12)})
    h.wfile.write(b"x" * 100)


def _lie_short(h: _Handler, q: Query) -> None:
    """Claims 10,000 bytes, sends 10 and closes."""
    h.head(200, {"Content-Length": "10000", "Connection": "close"})
    h.wfile.write(b"0123456789")
    h.wfile.flush()
    h.close_connection = True


def _endless_chunked(h: _Handler, q: Query) -> None:
    h.head(200, {"Transfer-Encoding": "chunked"})
    chunk = b"z" * 65536
    while not h.stop.is_set():
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def _two_gigabytes(h: _Handler, q: Query) -> None:
    size = 2 * 1024**3
    h.head(200, {"Content-Length": str(size)})
    chunk = b"\0" * MiB
    for _ in range(size // len(chunk)):
        if h.stop.is_set():
            return
        h.wfile.write(chunk)


def _two_gigabytes_undeclared(h: _Handler, q: Query) -> None:
    h.head(200, {"Connection": "close"})
    chunk = b"\0" * MiB
    for _ in range(2048):
        if h.stop.is_set():
            return
        h.wfile.write(chunk)
    h.close_connection = True


def _gzip_bomb(h: _Handler, q: Query) -> None:
    body = gzip.compress(b"\0" * (20 * MiB))
    h.send(200, body, {"Content-Encoding": "gzip", "Content-Length": str(len(body))})


def _slowloris(h: _Handler, q: Query) -> None:
    """Headers one byte at a time, each just inside any per-read timeout."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    h.wfile.flush()
    for byte in b"X-Slow: " + b"a" * 10_000:
        if h.stop.wait(0.2):
            return
        h.wfile.write(bytes([byte]))
        h.wfile.flush()


HOSTILE: dict[str, Route] = {
    # redirects (plus /chain/N: N hops to /files/small.mp4)
    "/redirect": _redirect,
    "/loop": _hop("/loop"),
    "/pingpong": _hop("/pingpong2", 301),
    "/pingpong2": _hop("/pingpong", 307),
    "/no-location": lambda h, q: h.send(302),
    # answers that are not the file
    "/status": lambda h, q: h.send(int(q["code"][0]), b"error page"),
    "/host": lambda h, q: h.send(200, h.headers.get("Host", "").encode()),
    # stalls and drips
    "/stall-headers": _stall_headers,
    "/stall-body": _stall_body(declared=1_000_000, sent=1000),
    "/stall-mid-body": _stall_body(declared=100_000, sent=5000),
    "/drip": _drip(declared=1_000_000, chunk=10, every=0.1, times=1000),
    "/drip-body": _drip(declared=2 * MiB, chunk=1, every=0.2, times=10_000),  # half the hardening rig's cap
    "/slowloris": _slowloris,
    # lies about the length, and bodies too big to hold
    "/lie-huge": _lie_huge,
    "/lie-short": _lie_short,
    "/lie-small": _longer_than_declared(declared=100, sent=100_000),
    "/longer-than-declared": _longer_than_declared(declared=1000, sent=8 * MiB),  # twice the rig's cap
    "/forever": _endless_chunked,
    "/endless-chunked": _endless_chunked,
    "/two-gigabytes": _two_gigabytes,
    "/two-gigabytes-undeclared": _two_gigabytes_undeclared,
    "/gzip-bomb": _gzip_bomb,
}
"""The misbehaving routes, by path (the query gives their arguments where they take any)."""


# -- TLS and name resolution ------------------------------------------------------------------------------


@dataclass
class TlsSetup:
    server: MediaServer
    client_context: ssl.SSLContext
    """Trusts only the server's self-signed certificate."""
    hostname: str
    """The only name the certificate is valid for."""


def self_signed(hostname: str, folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate valid only for ``hostname``, and a client context
    that trusts exactly that certificate (files in ``folder``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return server_ctx, ssl.create_default_context(cadata=cert_pem.decode())


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def loopback_resolver(mapping: dict[str, str]) -> Callable[[str, int], Awaitable[list[Address]]]:
    """A resolver seam: names -> fixed addresses, counting lookups per name (``.calls``)."""
    calls: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[Address]:
        calls[host] = calls.get(host, 0) + 1
        if host not in mapping:
            raise OSError("unknown host")
        return [ipaddress.ip_address(mapping[host])]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve
