"""Issue 12 item 3: videos named by the client's ``uuid`` (vLLM's form), reused without a fetch or a decode.

The real media pipeline (fetch over loopback HTTP, probe, decode in the worker pool, the decoded-video
cache) behind a real server on the fake engine: the test counts the requests its own media server
answers and reads the pool's counters, so "no fetch, no decode" is measured, not inferred. The real
engine taking the stable ids as ``multi_modal_uuids``: the ``engine`` test at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.harness import FakeEngine, MediaServer, ServerProcess, ThreadedServer, fake_engine_server, probe_result
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.budget import Family, VideoBudget
from videomodel_server.media import SamplingBudget, plan_sampling
from videomodel_server.media.cache import CachedVideo, CacheKey, IdKey, VideoCache
from videomodel_server.media_adapter import PipelineLoader

CLIP = VideoSpec(width=320, height=240, fps=10, seconds=5.0)
OTHER = VideoSpec(width=256, height=192, fps=10, seconds=3.0)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """The clips over loopback HTTP; every GET is counted. No validator (no Last-Modified: whether a
    repeat is revalidated cannot depend on the files' age), except under ``/etag/``: a strong ETag,
    and ``304 Not Modified`` (counted) to a GET whose ``If-None-Match`` names it, as object stores do."""
    root = tmp_path_factory.mktemp("ids-media")
    (root / "clip.mp4").write_bytes(make_video(CLIP).read_bytes())
    (root / "other.mp4").write_bytes(make_video(OTHER).read_bytes())
    with MediaServer(root, last_modified=False) as server:
        yield server


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ThreadedServer, FakeEngine, PipelineLoader]]:
    engine = FakeEngine(words=("ok",))
    overrides = dict(max_seconds=20, fps=2, max_frames=64, decode_workers=1, allow_http=True)
    with fake_engine_server(engine, media_exempt_networks=("127.0.0.1/32",), **overrides) as server:
        assert isinstance(server.state.loader, PipelineLoader)
        yield server, engine, server.state.loader


def _post(server: ThreadedServer, body: Any, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body).encode(), timeout=60)


def _ask(server: ThreadedServer, part: dict[str, Any], **extra: Any) -> httpx.Response:
    content = [part, {"type": "text", "text": "what happens?"}]
    return _post(server, {"messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra})


def _part(url: str | None, uuid: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "video_url", "video_url": None if url is None else {"url": url}}
    if uuid is not None:
        part["uuid"] = uuid
    return part


def _decodes(loader: PipelineLoader) -> int:
    return loader.pool.stats.jobs


def test_uuid_then_uuid_only_costs_no_fetch_and_no_decode(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    server, engine, loader = served
    hits_before = _cache_count(server, "uuid_hit")
    first = _ask(server, _part(media.href("clip.mp4"), "clip-a"))
    assert first.status_code == 200, first.text
    sent = engine.inputs[-1].videos[0]
    fetches, jobs = len(media.requests), _decodes(loader)
    assert fetches == 1 and first.json()["videomodel"]["media"][0]["cache"] == "miss"

    for form in (_part(None, "clip-a"), {"type": "video_url", "uuid": "clip-a"}, {"type": "video", "uuid": "clip-a"}):
        again = _ask(server, form)
        assert again.status_code == 200, again.text
        assert len(media.requests) == fetches and _decodes(loader) == jobs  # nothing fetched, probed or decoded
        video = again.json()["videomodel"]["media"][0]
        assert video["cache"] == "uuid" and video["frames"] == first.json()["videomodel"]["media"][0]["frames"]
        reused = engine.inputs[-1].videos[0]
        assert reused.frames is sent.frames and reused.metadata == sent.metadata
        # the engine gets one stable id for the same frames, whichever form named them
        assert reused.uuid == sent.uuid and reused.uuid is not None and reused.uuid.startswith("vm-")
    assert _cache_count(server, "uuid_hit") - hits_before == 3


def _cache_count(server: ThreadedServer, result: str) -> float:
    """``videomodel_video_cache_total{result=...}`` as /metrics reports it."""
    needle = f'videomodel_video_cache_total{{result="{result}"}} '
    lines = [ln for ln in httpx.get(server.url + "/metrics").text.splitlines() if ln.startswith(needle)]
    assert len(lines) == 1, f"{needle!r} is not exported"
    return float(lines[0][len(needle) :])


def test_a_uuid_that_misses_the_cache_is_400_never_a_fetch(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    server, _, _ = served
    fetches = len(media.requests)
    for path in ("/v1/chat/completions", "/v1/videomodel/estimate"):
        content = [_part(None, "never-sent"), {"type": "text", "text": "hi"}]
        resp = _post(server, {"messages": [{"role": "user", "content": content}]}, path)
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["code"] == "media_uuid_not_found" and error["param"] == "messages[0].content[0]"
        assert "never-sent" not in error["message"]  # client input is never echoed
    assert len(media.requests) == fetches


def test_a_uuid_is_bound_per_sampling(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    """The same uuid under other sampling knobs names no frames yet: a miss, not another budget's frames."""
    server, _, _ = served
    assert _ask(server, _part(media.href("clip.mp4"), "clip-b")).status_code == 200
    resp = _ask(server, _part(None, "clip-b"), media_io_kwargs={"video": {"fps": 1}})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "media_uuid_not_found"
    assert _ask(server, _part(None, "clip-b")).status_code == 200


def test_a_uuid_only_request_gets_frames_decoded_under_its_frame_recovery_setting(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    """Strict and recovering decodes of a damaged file keep different frames: a uuid decoded under
    one setting never answers the other (a 400 naming it, never a fetch)."""
    server, _, _ = served
    assert _ask(server, _part(media.href("clip.mp4"), "clip-r")).status_code == 200  # the server's default: strict
    fetches = len(media.requests)
    resp = _ask(server, _part(None, "clip-r"), media_io_kwargs={"video": {"frame_recovery": True}})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "media_uuid_not_found" and error["param"] == "messages[0].content[0]"
    assert "frame_recovery=false" in error["message"] and "frame_recovery=true" in error["message"]
    assert len(media.requests) == fetches
    assert _ask(server, _part(None, "clip-r"), media_io_kwargs={"video": {"frame_recovery": False}}).status_code == 200


def test_a_uuid_sent_with_other_content_is_rebound(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    """Unlike vLLM (which trusts the uuid), the bytes a client sends win: the URL is fetched and the
    uuid then names the new content; the engine's id is the content's, so its caches never mix them."""
    server, engine, _ = served
    assert _ask(server, _part(media.href("clip.mp4"), "clip-c")).status_code == 200
    clip_id = engine.inputs[-1].videos[0].uuid
    fetches = media.hits("/other.mp4")
    conflict = _ask(server, _part(media.href("other.mp4"), "clip-c"))
    assert conflict.status_code == 200, conflict.text
    assert media.hits("/other.mp4") == fetches + 1
    other = engine.inputs[-1].videos[0]
    assert other.uuid != clip_id and other.frames.shape[2] != 0
    later = _ask(server, _part(None, "clip-c"))
    assert later.status_code == 200
    assert engine.inputs[-1].videos[0].uuid == other.uuid
    assert later.json()["videomodel"]["media"][0]["duration_seconds"] == pytest.approx(OTHER.seconds, abs=0.2)


def test_same_bytes_under_two_uuids_share_one_entry_and_one_engine_id(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    server, engine, loader = served
    assert _ask(server, _part(media.href("clip.mp4"), "name-1")).status_code == 200
    jobs = _decodes(loader)
    second = _ask(server, _part(media.href("clip.mp4"), "name-2"))
    assert second.json()["videomodel"]["media"][0]["cache"] == "content" and _decodes(loader) == jobs
    first_id = engine.inputs[-1].videos[0].uuid
    assert _ask(server, _part(None, "name-1")).status_code == 200
    assert engine.inputs[-1].videos[0].uuid == first_id


def test_a_repeated_url_with_an_etag_is_revalidated_not_downloaded(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], media: MediaServer
) -> None:
    server, engine, loader = served
    before = _cache_count(server, "revalidated")
    url = media.href("etag/other.mp4")
    first = _ask(server, _part(url, None))
    assert first.status_code == 200, first.text
    jobs, answered = _decodes(loader), media.not_modified
    second = _ask(server, _part(url, None))
    assert second.status_code == 200, second.text
    receipt = second.json()["videomodel"]["media"][0]
    assert receipt["cache"] == "revalidated" and media.not_modified == answered + 1 and _decodes(loader) == jobs
    assert receipt["timestamps"] == first.json()["videomodel"]["media"][0]["timestamps"]
    assert engine.inputs[-1].videos[0].uuid == engine.inputs[-2].videos[0].uuid  # the same stable id
    assert _cache_count(server, "revalidated") == before + 1


@pytest.mark.parametrize(
    "part",
    [
        {"type": "video_url", "video_url": None},
        {"type": "video_url"},
        {"type": "video_url", "video_url": {"url": None}},
        {"type": "video"},
    ],
)
def test_a_video_part_without_url_or_uuid_is_400(
    served: tuple[ThreadedServer, FakeEngine, PipelineLoader], part: dict[str, Any]
) -> None:
    server, _, _ = served
    resp = _ask(server, part)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "messages[0].content[0]", resp.text


def test_an_over_long_uuid_is_400(served: tuple[ThreadedServer, FakeEngine, PipelineLoader]) -> None:
    server, _, _ = served
    assert _ask(server, _part(None, "x" * 257)).status_code == 400


# -- the cache's id bindings, pure ------------------------------------------------------------------

BUDGET = SamplingBudget(fps=2.0, max_frames=16, min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28, factor=28)


def _entry(nbytes: int) -> CachedVideo:
    probe = probe_result(seconds=2.0, fps=10.0, width=64, height=64)
    plan = plan_sampling(probe, BUDGET, None)
    return CachedVideo(np.zeros(nbytes, dtype=np.uint8), (0.0,), probe, plan, 1, 0)


def test_bindings_point_at_entries_and_die_with_them() -> None:
    cache = VideoCache(max_bytes=100)
    a, b = CacheKey("a" * 64, BUDGET, None), CacheKey("b" * 64, BUDGET, None)
    name = IdKey.of("mine", a)
    assert not cache.bind(name, a)  # nothing stored under a yet: stays unbound
    cache.put(a, _entry(60))
    assert cache.bind(name, a) and cache.lookup(name) is not None
    assert cache.lookup(IdKey.of("mine", CacheKey("a" * 64, BUDGET, 8))) is None  # other sampling: another name
    cache.put(b, _entry(60))  # evicts a
    assert cache.lookup(name) is None and cache.stats.ids == 0
    assert cache.stats.id_hits == 1 and cache.stats.id_misses == 2
    assert a.stable_id == CacheKey("a" * 64, BUDGET, None).stable_id != b.stable_id


def test_bindings_are_bounded() -> None:
    cache = VideoCache(max_bytes=100, max_ids=2)
    key = CacheKey("a" * 64, BUDGET, None)
    cache.put(key, _entry(10))
    for uuid in ("1", "2", "3"):
        cache.bind(IdKey.of(uuid, key), key)
    assert cache.stats.ids == 2 and cache.lookup(IdKey.of("1", key)) is None


# -- the real engine: the stable ids reach vLLM as multi_modal_uuids --------------------------------


@pytest.fixture(scope="module")
def engine_server(
    tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    budget = VideoBudget(
        max_seconds=8, fps=2, max_frames=8, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28, max_prompt_tokens=128,
        max_output_tokens=8,
    )  # fmt: skip
    env = {"VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS": "127.0.0.1/32"}
    log_dir = tmp_path_factory.mktemp("ids")
    model = tiny_model_dir(Family.QWEN2_VL)
    with ServerProcess.tiny(model, Family.QWEN2_VL, budget, log_dir, "--allow-http", env=env).serving() as proc:
        yield proc


@pytest.mark.engine
def test_engine_serves_the_uuid_only_form_without_a_fetch(engine_server: ServerProcess, media: MediaServer) -> None:
    def ask(part: dict[str, Any]) -> dict[str, Any]:
        body = {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "hi"}]}], "max_tokens": 2}
        resp = httpx.post(engine_server.url + "/v1/chat/completions", json=body, timeout=300)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    first = ask(_part(media.href("clip.mp4"), "engine-clip"))
    fetches = len(media.requests)
    again = ask(_part(None, "engine-clip"))
    assert len(media.requests) == fetches
    before, after = first["videomodel"]["media"][0], again["videomodel"]["media"][0]
    assert before["cache"] == "miss" and after["cache"] == "uuid"
    # vLLM got the same frames under the stable id: same prompt, priced as the budget says
    assert after["engine_tokens"] == after["budget_tokens"] == before["engine_tokens"]
    assert again["usage"]["prompt_tokens"] == first["usage"]["prompt_tokens"]
    miss = httpx.post(
        engine_server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": [_part(None, "nobody")]}]},
        timeout=60,
    )
    assert miss.status_code == 400 and miss.json()["error"]["code"] == "media_uuid_not_found"
    assert len(media.requests) == fetches
