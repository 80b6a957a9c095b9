"""API shape, errors, admission and cancellation through a real uvicorn server and the OpenAI client.

The engine and media loader here are fakes behind the server's own seams (tests/harness/fakes.py):
these tests pin the HTTP contract. Real video through the real engine: test_engine_*.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.harness import FakeEngine, FakeLoader, ThreadedServer, fake_engine_server

VIDEO = "https://videos.example/clip.mp4"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def server(engine: FakeEngine, loader: FakeLoader) -> Iterator[ThreadedServer]:
    with fake_engine_server(
        engine, loader, images_per_prompt=1, videos_per_prompt=2, max_seconds=20, api_key="sekret"
    ) as s:
        yield s


@pytest.fixture
def client(server: ThreadedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sekret", max_retries=0)


def _video_message(text: str = "what happens?", url: str = VIDEO) -> list[Any]:
    return [
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": text}]}
    ]


def _post(server: ThreadedServer, body: Any, key: str | None = "sekret", **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    kw.setdefault("timeout", 30)
    return httpx.post(server.url + "/v1/chat/completions", content=content, headers=headers, **kw)


def _assert_envelope(resp: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    for needle in needles:
        assert needle in err["message"], err["message"]
    return dict(err)


# -- the happy paths -------------------------------------------------------------------------


def test_non_streaming_completion_with_video(client: openai.OpenAI, engine: FakeEngine) -> None:
    out = client.chat.completions.create(model="tiny", messages=_video_message(), max_tokens=4)
    assert out.object == "chat.completion"
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == "hello world from a"
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens == 4
    assert out.usage.total_tokens == out.usage.prompt_tokens + 4
    report = (out.model_extra or {})["videomodel"]
    assert report["media"][0]["frames"] == 4
    assert {"queue", "fetch", "probe", "decode", "ttft", "total"} <= set(report["timings_ms"])
    # the engine got the video as (frames, metadata) and one placeholder in the prompt
    (sent,) = engine.inputs
    assert len(sent.videos) == 1 and sent.videos[0].metadata["fps"] == 2.0
    assert "[video]" in sent.prompt


def test_streaming_completion_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="tiny", messages=_video_message(), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello world from a fake engine"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_stream_ends_with_done(server: ThreadedServer) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer sekret"}
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"


def test_n_and_logprobs(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], n=2, logprobs=True, top_logprobs=1, max_tokens=2
    )
    assert [c.index for c in out.choices] == [0, 1]
    lp = out.choices[1].logprobs
    assert lp is not None and lp.content is not None and lp.content[0].token == "hello"
    assert out.usage is not None and out.usage.completion_tokens == 4


def test_qwen_video_part_image_and_multi_turn(client: openai.OpenAI, engine: FakeEngine, loader: FakeLoader) -> None:
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "video", "video": VIDEO, "nframes": 6}, {"type": "text", "text": "a?"}]},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://img.example/a.png"}},
                {"type": "video_url", "video_url": {"url": VIDEO + "?2"}},
                {"type": "text", "text": "and these?"},
            ],
        },
    ]
    client.chat.completions.create(model="tiny", messages=messages)
    sent = engine.inputs[-1]
    assert [v.frames.shape[0] for v in sent.videos] == [6, 4]
    assert len(sent.images) == 1
    assert sent.prompt.index("[video]") < sent.prompt.index("an answer") < sent.prompt.index("[image]")
    assert loader.calls == [VIDEO, "https://img.example/a.png", VIDEO + "?2"]


def test_models_publishes_the_budget(client: openai.OpenAI) -> None:
    models = client.models.list()
    card = models.data[0]
    assert card.id == "tiny"
    budget = (card.model_extra or {})["budget"]
    assert budget["max_seconds"] == 20 and budget["fps"] == 2 and budget["videos_per_prompt"] == 2
    assert budget["frames_per_video"] == 40 and budget["max_model_len"] > budget["tokens_per_video"]


def test_clamped_knobs_are_reported(server: ThreadedServer, engine: FakeEngine) -> None:
    body = {
        "messages": _video_message(),
        "media_io_kwargs": {"video": {"fps": 10}},
        "mm_processor_kwargs": {"max_pixels": 10**9},
    }
    resp = _post(server, body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-videomodel-clamped"] == "fps=10->2, max_pixels=1000000000->200704"
    assert resp.json()["videomodel"]["clamped"] == ["fps=10->2", "max_pixels=1000000000->200704"]


def test_health_metrics_and_auth(server: ThreadedServer) -> None:
    assert httpx.get(server.url + "/health").status_code == 200
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.status_code == 200 and "videomodel_requests_in_flight" in metrics.text
    _assert_envelope(httpx.get(server.url + "/v1/models"), 401, "API key")
    _assert_envelope(_post(server, {"messages": [{"role": "user", "content": "x"}]}, key="wrong"), 401)
    assert "x-request-id" in httpx.get(server.url + "/health").headers


def test_health_is_503_while_loading(loader: FakeLoader) -> None:
    engine = FakeEngine(is_ready=False)
    with fake_engine_server(engine, loader) as s:
        resp = httpx.get(s.url + "/health")
        assert resp.status_code == 503
        chat = _post(s, {"messages": [{"role": "user", "content": "x"}]}, key=None)
        _assert_envelope(chat, 503, "not ready")
        assert chat.headers["retry-after"]


# -- bad input: status and message -----------------------------------------------------------

BAD_INPUTS = [
    (b"{not json", 400, "invalid request"),
    (b"", 400, "empty"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "audio_url", "audio_url": "x"}]}]}, 400, "unsupported type"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role"),
    ({"messages": _video_message() * 3}, 400, "3 videos; this model accepts at most 2"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}, 400, "max_tokens is 5000"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 9}, 400, "n is 9"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, 400, "tools.0.function"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "model": "gpt-4"}, 404, "'gpt-4' is not served"),
    ({"messages": [{"role": "user", "content": "x"}], "mm_processor_kwargs": {"foo": 1}}, 400, "unknown field"),
    (
        {"messages": [{"role": "user", "content": "x"}], "media_io_kwargs": {"video": {"fps": 1, "num_frames": 8}}},
        400,
        "set fps or num_frames, not both",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "video", "video": ["a.jpg"]}]}]}, 400, "list of frames"),
    ({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}, 400, "stream"),
    ({"messages": [{"role": "user", "content": "word " * 3000}]}, 400, "the prompt's text is"),
    ({"messages": _video_message(url="https://x/bad.mp4")}, 422, "could not be decoded"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_INPUTS)
def test_bad_input(server: ThreadedServer, body: Any, status: int, needle: str) -> None:
    _assert_envelope(_post(server, body), status, needle)


def test_validation_errors_never_echo_input(server: ThreadedServer) -> None:
    secret = "SECRET-PAYLOAD-1234"
    body = {"messages": [{"role": "user", "content": [{"type": secret, "x": secret}]}], "n": secret}
    resp = _post(server, body)
    _assert_envelope(resp, 400)
    assert secret not in resp.text


def test_body_over_the_cap_is_413() -> None:
    with fake_engine_server(FakeEngine(), FakeLoader(), max_request_body_bytes=1000) as s:
        big = {"messages": [{"role": "user", "content": "x" * 5000}]}
        _assert_envelope(_post(s, big, key=None), 413, "1000")


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


@pytest.mark.parametrize("size", [50 * 1024**2, 2 * 1024**2], ids=["50MiB", "2MiB"])
def test_over_long_text_is_refused_by_length_fast_and_in_bounded_memory(
    server: ThreadedServer, engine: FakeEngine, size: int
) -> None:
    """Refused before anything tokenizes it: at once, and the process grows by a bounded amount.

    (Before the byte bound, a 50 MiB text was tokenized in full: the API process grew to 20 GB.)
    The server runs in this process, so this process's RSS is the server's; its peak is reset
    first (Linux: 5 into /proc/self/clear_refs).
    """
    body = json.dumps({"messages": [{"role": "user", "content": "word " * (size // 5)}]}).encode()
    baseline = _status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    started = time.monotonic()
    reply = _post(server, body, timeout=120)
    elapsed = time.monotonic() - started
    peak, after = _status_bytes("VmHWM"), _status_bytes("VmRSS")
    _assert_envelope(reply, 400, "--max-prompt-tokens")
    assert reply.json()["error"]["code"] == "over_budget"
    assert engine.started == []
    assert elapsed < 10, f"refusing {size} bytes of text took {elapsed:.1f} s"
    # The body passes through a few copies (the client's send, the HTTP parser, the body buffer, the
    # parsed JSON string): about 5x at the peak here, against some 19x when the fake engine's
    # tokenizer ran on it (and 400x with a real one). What stays is allocator slack, reused next time.
    assert peak - baseline < 6 * len(body) + 64 * 1024**2, f"peak grew by {(peak - baseline) / 1024**2:.0f} MiB"
    assert after - baseline < 128 * 1024**2, f"RSS grew by {(after - baseline) / 1024**2:.0f} MiB"


def test_unknown_route_and_method_use_the_envelope(server: ThreadedServer) -> None:
    _assert_envelope(httpx.get(server.url + "/v1/nope"), 404)
    _assert_envelope(httpx.get(server.url + "/v1/chat/completions", headers={"authorization": "Bearer sekret"}), 405)


# -- admission and cancellation --------------------------------------------------------------


def _metric(server: ThreadedServer, name: str, labels: str = "") -> float:
    text = httpx.get(server.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + (("{" + labels + "}") if labels else " ")) or (
            labels and line.startswith(name + "{") and all(p in line for p in labels.split(","))
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_overload_is_503_at_once_without_decoding() -> None:
    release = threading.Event()
    loader = FakeLoader(hold=release)
    with fake_engine_server(
        FakeEngine(), loader, max_concurrent_requests=1, max_queued_requests=0, retry_after_seconds=3
    ) as s:
        holder = threading.Thread(target=_post, args=(s, {"messages": _video_message()}), kwargs={"key": None})
        holder.start()
        try:
            deadline = time.monotonic() + 10
            while not loader.calls and time.monotonic() < deadline:
                time.sleep(0.01)
            assert loader.calls == [VIDEO]  # the first request holds the only slot, inside its media stage
            started = time.monotonic()
            resp = _post(s, {"messages": _video_message(url=VIDEO + "?second")}, key=None)
            elapsed = time.monotonic() - started
            err = _assert_envelope(resp, 503, "at capacity")
            assert err["code"] == "queue_full" and resp.headers["retry-after"] == "3"
            assert elapsed < 1.0
            assert loader.calls == [VIDEO]  # the refused request fetched and decoded nothing
            assert _metric(s, "videomodel_admission_rejections_total", 'reason="queue_full"') == 1
        finally:
            release.set()
            holder.join(timeout=10)


def test_disconnect_during_decode_cancels_it() -> None:
    loader = FakeLoader(delay=30)
    with fake_engine_server(FakeEngine(), loader) as s:
        with pytest.raises(httpx.ReadTimeout):
            _post(s, {"messages": _video_message()}, key=None, timeout=0.5)
        deadline = time.monotonic() + 5
        while not loader.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        assert loader.cancelled == [VIDEO]
        assert _metric(s, "videomodel_requests_cancelled_total", 'reason="client_disconnect"') == 1
        assert _metric(s, "videomodel_requests_in_flight") == 0


def test_disconnect_during_stream_aborts_the_engine_request() -> None:
    engine = FakeEngine(delay=0.5, words=tuple(f" w{i}" for i in range(100)))
    with fake_engine_server(engine, FakeLoader()) as s:
        body = {"messages": _video_message(), "stream": True, "max_tokens": 100}
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=10) as r:
            for line in r.iter_lines():
                if '"content":" w0"' in line:
                    break
        deadline = time.monotonic() + 5
        while not engine.aborted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(engine.aborted) == 1 and not engine.finished
        assert _metric(s, "videomodel_engine_aborts_total", 'reason="client_disconnect"') == 1
        assert _metric(s, "videomodel_engine_unfinished_requests") == 0
        assert _metric(s, "videomodel_requests_in_flight") == 0


def test_deadline_gives_504() -> None:
    with fake_engine_server(FakeEngine(), FakeLoader(delay=5), request_timeout=0.3) as s:
        err = _assert_envelope(_post(s, {"messages": _video_message()}, key=None), 504, "deadline")
        assert err["code"] == "deadline_exceeded"


class _EngineThatCannotStart(FakeEngine):
    async def start(self) -> None:
        raise RuntimeError("no GPU")


@pytest.mark.parametrize(("engine_type", "expected"), [(FakeEngine, ["ready"]), (_EngineThatCannotStart, ["failed"])])
def test_engine_hooks_run_once_ready_or_failed(engine_type: type[FakeEngine], expected: list[str]) -> None:
    calls: list[str] = []
    hooks = {
        "on_engine_ready": lambda: calls.append("ready"),
        "on_engine_start_failure": lambda: calls.append("failed"),
    }
    with fake_engine_server(engine_type(), FakeLoader(), hooks=hooks):
        for _ in range(100):
            if calls:
                break
            time.sleep(0.02)
    assert calls == expected


def test_the_cli_freezes_the_startup_heap_once_ready() -> None:
    """What the CLI's ready hook does (in a child: a freeze is for the whole process)."""
    code = (
        "import gc\n"
        "from videomodel_server.cli import freeze_startup_heap\n"
        "assert gc.get_freeze_count() == 0\n"
        "freeze_startup_heap()\n"
        "print(gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 1000  # the imported server's modules, functions and settings
