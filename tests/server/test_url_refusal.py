"""A media URL whose host is a forbidden IP literal is refused where the URL is read.

The request translation runs the loader's check of each media URL (``RequestLimits.check_media``,
``media.urls.check_url``): such a request is answered 400 before the chat template is rendered,
the prompt counted or anything fetched. The real media loader behind a real server; the engine is
the fake one, recording what it is asked to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.harness import FakeEngine, ThreadedServer, fake_engine_server, pipeline_loader, server_settings
from videomodel_server.jobs import Turn
from videomodel_server.media import Fetcher
from videomodel_server.media_adapter import PipelineLoader


@dataclass
class RecordingEngine(FakeEngine):
    """The fake engine, noting each time it renders a prompt or counts its tokens."""

    asked: list[str] = field(default_factory=list)

    def render(self, turns: Sequence[Turn], tools: str | None = None) -> str:
        self.asked.append("render")
        return super().render(turns, tools)

    def count_tokens(self, text: str) -> int:
        self.asked.append("count")
        return super().count_tokens(text)


async def _no_dns(host: str, port: int) -> list[Any]:
    return []


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ThreadedServer, RecordingEngine, PipelineLoader]]:
    settings = server_settings(max_seconds=20, images_per_prompt=1, allow_http=True, decode_workers=1)
    loader = pipeline_loader(settings)
    loader.fetcher = Fetcher(resolver=_no_dns)  # a host name resolves to nothing: no network
    engine = RecordingEngine(words=("ok",))
    with fake_engine_server(engine, loader, settings=settings) as server:
        yield server, engine, loader


def _post(server: ThreadedServer, part: dict[str, Any], path: str) -> httpx.Response:
    messages = [{"role": "user", "content": [{"type": "text", "text": "what happens?"}, part]}]
    return httpx.post(server.url + path, json={"messages": messages, "max_tokens": 4}, timeout=30)


PATHS = ["/v1/chat/completions", "/v1/videomodel/estimate"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "part",
    [
        {"type": "video_url", "video_url": {"url": "http://127.0.0.1:8080/v.mp4"}},
        {"type": "video_url", "video_url": {"url": "https://[::1]/v.mp4"}},
        {"type": "video", "video": "http://10.0.0.1/v.mp4", "nframes": 4},
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data/"}},
    ],
    ids=["v4-loopback", "v6-loopback", "qwen-private", "image-metadata"],
)
def test_forbidden_ip_literal_is_refused_before_rendering(
    served: tuple[ThreadedServer, RecordingEngine, PipelineLoader], part: dict[str, Any], path: str
) -> None:
    server, engine, loader = served
    engine.asked.clear()
    jobs = loader.pool.stats.jobs
    resp = _post(server, part, path)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "media_address_forbidden" and error["param"] == "messages[0].content[1]"
    assert "only public addresses" in error["message"] and "127.0.0.1" not in error["message"]
    assert engine.asked == []  # no template rendered, no prompt counted
    assert loader.pool.stats.jobs == jobs and engine.started == []  # nothing probed, nothing generated


@pytest.mark.parametrize("path", PATHS)
def test_a_host_name_is_checked_when_fetched_after_rendering(
    served: tuple[ThreadedServer, RecordingEngine, PipelineLoader], path: str
) -> None:
    """The control: a name's addresses need DNS, so it is rendered and counted, then refused at the fetch."""
    server, engine, _ = served
    engine.asked.clear()
    resp = _post(server, {"type": "video_url", "video_url": {"url": "http://videos.example/v.mp4"}}, path)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "media_fetch_failed", resp.text
    assert engine.asked[:2] == ["render", "count"]
