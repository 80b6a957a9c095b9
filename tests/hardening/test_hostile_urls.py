"""Every malicious URL of the catalogue through the real server: status, code, no forbidden connection.

The server runs the real media loader (fetch with its SSRF guard, probe, decode pool); the
forbidden listeners and the connection guard (conftest.py) witness that nothing reached a
loopback, private or metadata address, and after each row the server is healthy and serves a
real video.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.harness import MediaServer
from tests.harness.hardening import (
    Dialled,
    FakeDns,
    Forbidden,
    Hardened,
    Meter,
    Results,
    assert_envelope,
    assert_serving,
    post_video,
)

from .catalogue import URLS, Row, fill

LEAKS = ("127.0.0.1", "169.254", "::1", "0x7f", "2130706433", "10.0.0", "/etc/", "/proc", "environ", "origin.test")


@pytest.fixture(scope="module")
def file_tree(hardened: Hardened, small_video: bytes) -> Iterator[Path]:
    """The file:// root with escapes planted in it (symlinks, a hard link, a FIFO, links to /proc, /dev)."""
    root, outside = hardened.media_root, hardened.outside
    (root / "ok.mp4").write_bytes(small_video)
    secret = outside / "secret.mp4"
    secret.write_bytes(small_video)
    (root / "link-out.mp4").symlink_to(secret)
    (root / "dir-out").symlink_to(outside, target_is_directory=True)
    (root / "link-link.mp4").symlink_to(root / "link-out.mp4")
    os.link(secret, root / "hard-out.mp4")
    (root / "proc").symlink_to("/proc", target_is_directory=True)
    (root / "dev").symlink_to("/dev", target_is_directory=True)
    os.mkfifo(root / "fifo.mp4")
    (root / "subdir").mkdir()
    yield root


def _ids(rows: list[Row]) -> list[str]:
    return [r.id for r in rows]


def test_catalogue_size() -> None:
    assert len(URLS) >= 60
    assert len({r.id for r in URLS}) == len(URLS)


@pytest.mark.parametrize("row", URLS, ids=_ids(URLS))
def test_hostile_url(
    row: Row,
    hardened: Hardened,
    file_tree: Path,
    forbidden: Forbidden,
    dialled: Dialled,
    origin: MediaServer,
    dns: FakeDns,
    meter: Meter,
    results: Results,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v6 = forbidden.v6.port if forbidden.v6 else forbidden.v4.port
    url = fill(row.input, v4=forbidden.v4.port, v6=v6, o=origin.port, origin=origin.url, root=file_tree)
    if row.root is not None:
        monkeypatch.setattr(
            hardened.loader, "limits", replace(hardened.loader.limits, allowed_local_root=Path(row.root))
        )
    accepted, bad_dials = forbidden.accepted, len(dialled.forbidden())
    dns_before = dict(dns.calls)

    with meter.measure() as m:
        resp = post_video(hardened.url, url, row.kind)

    code = "" if resp.status_code == 200 else assert_envelope(resp)["code"]
    results.add("urls", row.id, resp.status_code, code, m)
    assert resp.status_code in row.statuses, resp.text
    if resp.status_code != 200:
        assert code in row.codes, resp.text
        message = resp.json()["error"]["message"]
        for leak in LEAKS:
            assert leak not in message, f"the error message echoes {leak!r}: {message}"
    assert forbidden.accepted == accepted, "a forbidden listener got a connection"
    assert len(dialled.forbidden()) == bad_dials, f"dialled {dialled.forbidden()[bad_dials:]}"
    assert m.seconds <= row.max_seconds, f"{m.seconds:.2f} s"
    assert m.api_rss_growth_mb <= row.max_api_mb, f"{m.api_rss_growth_mb:.1f} MiB"
    if row.id.startswith("dns-rebind"):
        host = url.split("//", 1)[1].split(":", 1)[0]
        assert dns.calls.get(host, 0) - dns_before.get(host, 0) == 1, "resolved more than once per hop"
    monkeypatch.undo()
    assert_serving(hardened.url)
    ok = post_video(hardened.url, fill("file://{root}/ok.mp4", root=file_tree))
    assert ok.status_code == 200, ok.text
