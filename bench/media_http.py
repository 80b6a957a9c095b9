"""The benches' own loopback media server: every URL counted (requests and bytes sent).

Routes are ``/<alias>/<file name>``: any alias serves the file of that name from the directory,
so one set of bytes can sit under as many distinct URLs as a bench needs (a rejected request
gets a URL nothing else uses, and its count must stay zero). GET (with a single ``Range``) and
HEAD are answered; each GET adds one request and the bytes written to that path's counters.
Like nginx, files carry a strong ``ETag`` (modification time and size) and a GET whose
``If-None-Match`` names it is answered ``304 Not Modified`` with no body (counted apart).
"""

from __future__ import annotations

import http.server
import re
import threading
from collections import defaultdict
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class CountingMediaServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.not_modified: dict[str, int] = defaultdict(int)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _file(self) -> Path | None:
                name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                path = owner.directory / name
                return path if name and path.is_file() else None

            def do_HEAD(self) -> None:
                path = self._file()
                if path is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self) -> None:
                key = unquote(self.path)  # clients differ in what they escape
                with owner.lock:
                    owner.requests[key] += 1
                path = self._file()
                if path is None:
                    self.send_error(404)
                    return
                info = path.stat()
                etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
                if self.headers.get("If-None-Match") == etag and not self.headers.get("Range"):
                    with owner.lock:
                        owner.not_modified[key] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                data = path.read_bytes()
                start, end = 0, len(data)
                match = _RANGE.match(self.headers.get("Range", "") or "")
                if match and (match.group(1) or match.group(2)):
                    if match.group(1):
                        start = int(match.group(1))
                        end = int(match.group(2)) + 1 if match.group(2) else len(data)
                    else:
                        start = max(0, len(data) - int(match.group(2)))
                    end = min(end, len(data))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start))
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.end_headers()
                sent = 0
                try:
                    view = memoryview(data)[start:end]
                    for i in range(0, len(view), 1 << 16):
                        self.wfile.write(view[i : i + (1 << 16)])
                        sent += len(view[i : i + (1 << 16)])
                except OSError:
                    pass
                finally:
                    with owner.lock:
                        owner.bytes[key] += sent

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, alias: str, path: Path) -> str:
        return f"{self.base}/{alias.replace(' ', '-')}/{path.name}"

    def served(self, url: str) -> tuple[int, int]:
        """(GET requests, bytes sent) for one URL."""
        path = unquote(url[len(self.base) :])
        with self.lock:
            return self.requests.get(path, 0), self.bytes.get(path, 0)

    def unmodified(self, url: str) -> int:
        """GETs of one URL answered ``304 Not Modified`` (no body sent)."""
        path = unquote(url[len(self.base) :])
        with self.lock:
            return self.not_modified.get(path, 0)

    def __enter__(self) -> CountingMediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
