"""A misbehaving media host on loopback: deadlines and byte caps hold, nothing is left behind.

The origin (tests/harness/media.py's server) drips headers (slowloris), sends more than its Content-Length, streams
chunked forever, offers 2 GB with and without a Content-Length, loops redirects, stalls mid-body
or before its headers; a TLS tarpit accepts TCP and never answers the ClientHello. Each row
bounds the wall time (the fetch deadline is 3 s), the API process's memory growth, and checks
that the server's temp dir and file descriptors are as they were.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

import psutil
import pytest

from tests.harness import MediaServer
from tests.harness.hardening import (
    ORIGIN_IP,
    Dialled,
    Forbidden,
    Hardened,
    Meter,
    Results,
    TlsTarpit,
    assert_envelope,
    assert_serving,
    post_video,
    tmp_entries,
)

from .catalogue import UPSTREAM, Row, fill


def _file_fds() -> int:
    """Open descriptors that are not sockets (temp files, pipes, opened media)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        # A descriptor may close meanwhile (listdir's own, another thread's).
        with contextlib.suppress(OSError):
            n += not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return n


def _fetcher_sockets(*ports: int) -> int:
    """The fetcher's client-side sockets still open to the upstream (the origin's own side is in
    this process too, held open by the stalling handlers, and is not counted)."""
    conns = psutil.Process().net_connections(kind="tcp")
    return sum(1 for c in conns if c.raddr and c.raddr.ip == ORIGIN_IP and c.raddr.port in ports)


def _settled(measure: Callable[[], int], limit: int, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    n = measure()
    while n > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        n = measure()
    return n


@pytest.mark.parametrize("row", UPSTREAM, ids=[r.id for r in UPSTREAM])
def test_misbehaving_upstream(
    row: Row,
    hardened: Hardened,
    origin: MediaServer,
    tls_tarpit: TlsTarpit,
    forbidden: Forbidden,
    dialled: Dialled,
    meter: Meter,
    results: Results,
) -> None:
    url = fill(row.input, origin=origin.url, tls=tls_tarpit.port)
    assert_serving(hardened.url)  # warm: the fd baseline includes the keep-alive machinery
    files = _file_fds()
    accepted, bad_dials = forbidden.accepted, len(dialled.forbidden())

    with meter.measure() as m:
        resp = post_video(hardened.url, url)

    code = "" if resp.status_code == 200 else assert_envelope(resp)["code"]
    results.add("upstream", row.id, resp.status_code, code, m)
    assert resp.status_code in row.statuses, resp.text
    assert code in row.codes, resp.text
    assert m.seconds <= row.max_seconds, f"{m.seconds:.2f} s"
    assert m.api_rss_growth_mb <= row.max_api_mb, f"{m.api_rss_growth_mb:.1f} MiB"
    assert tmp_entries(hardened.tmp) == [], "the fetch left files in the server's temp dir"
    assert _settled(_file_fds, files) <= files, "file descriptors leaked"
    assert _settled(lambda: _fetcher_sockets(origin.port, tls_tarpit.port), 0) == 0, "upstream sockets leaked"
    assert forbidden.accepted == accepted and len(dialled.forbidden()) == bad_dials
    assert_serving(hardened.url)
    ok = post_video(hardened.url, origin.href("/files/ok.mp4"))
    assert ok.status_code == 200, ok.text
