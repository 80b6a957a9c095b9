"""A loopback HTTP server for media files (127.0.0.1 only), with a redirecting route."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar


class _Handler(SimpleHTTPRequestHandler):
    redirects: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        target = self.redirects.get(self.path)
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that stop reading on purpose (byte caps, refusals) reset the connection.
        return


class MediaServer:
    """Serves ``root`` at ``http://127.0.0.1:PORT/``; ``redirect(path, to)`` adds a 302."""

    def __init__(self, root: Path) -> None:
        handler: type[_Handler] = type("Handler", (_Handler,), {"redirects": {}})
        self.handler = handler
        self.httpd = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def redirect(self, path: str, to: str) -> None:
        self.handler.redirects[path] = to

    def __enter__(self) -> MediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
