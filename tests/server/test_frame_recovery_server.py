"""Frame recovery (issue 12 item 2) behind a real server on the fake engine: the server setting,
the per-request override, the receipt and the metric. The clips are ``tests/harness/clips.py``'s;
the media-level tests are in ``tests/media/test_frame_recovery.py``. This half needs the app
(FastAPI), so it lives with the server tests (the Python 3.12 run has no app).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import FakeEngine, fake_engine_server, make_clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clips(tmp_path_factory.mktemp("recovery"))


def _server(root: Path, *, default: bool) -> Any:
    return fake_engine_server(
        FakeEngine(words=("ok",)),
        max_seconds=20,
        fps=2,
        max_frames=16,
        decode_workers=1,
        decode_cache_bytes=0,
        allowed_local_media_path=root,
        frame_recovery=default,
    )


@pytest.fixture(scope="module")
def strict_server(clips: Path) -> Iterator[Any]:
    with _server(clips, default=False) as server:
        yield server


def _ask(server: Any, url: str, **video: Any) -> httpx.Response:
    part = {"type": "video_url", "video_url": {"url": url}}
    body: dict[str, Any] = {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "?"}]}]}
    if video:
        body["media_io_kwargs"] = {"video": video}
    return httpx.post(server.url + "/v1/chat/completions", content=json.dumps(body).encode(), timeout=60)


def _recovered_metric(server: Any) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith("videomodel_recovered_frames_total "):
            return float(line.split()[1])
    return 0.0


def test_server_default_is_strict_and_a_request_may_ask(strict_server: Any, clips: Path) -> None:
    url = (clips / "two-lost.mkv").as_uri()
    resp = _ask(strict_server, url)
    assert resp.status_code == 200, resp.text
    (video,) = resp.json()["videomodel"]["media"]
    assert video["frame_recovery"] is False and "recovered_frames" not in video
    assert video["timestamps"] == [0.0, 0.5, 1.2, 1.9]
    before = _recovered_metric(strict_server)
    resp = _ask(strict_server, url, frame_recovery=True)
    assert resp.status_code == 200, resp.text
    (video,) = resp.json()["videomodel"]["media"]
    assert video["frame_recovery"] is True and video["recovered_frames"] == [1, 2]
    assert video["timestamps"] == [0.0, 0.8, 1.4, 1.9]
    assert _recovered_metric(strict_server) == before + 2


def test_server_flag_turns_it_on_and_a_request_may_turn_it_off(clips: Path) -> None:
    """16 targets 0.66 s apart (no seeking): every packet is walked, 40 of 100 fail to decode."""
    url = (clips / "dense-lost.mkv").as_uri()
    with _server(clips, default=True) as server:
        resp = _ask(server, url)
        assert resp.status_code == 200, resp.text
        (video,) = resp.json()["videomodel"]["media"]
        assert video["frame_recovery"] is True and video["recovered_frames"]
        refused = _ask(server, url, frame_recovery=False)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_video"
