"""Shutdown (issue 13, item 6): SIGTERM with streams open, through the CLI and uvicorn, real clients.

What a Kubernetes pod needs from its server when it is deleted. The kubelet runs the ``preStop``
pause (the operator renders one) while the endpoints controller takes the pod out of the
Service, then sends SIGTERM, and SIGKILL ``terminationGracePeriodSeconds`` later. So by SIGTERM
nothing new should be routed here, and the server:

* stops admitting at once: ``/health`` turns 503 and a request that still reaches the app gets
  503 + Retry-After (``draining``); then the listener closes, so a new connection is refused
  (a client or kube-proxy retries that elsewhere at no cost);
* lets admitted streams run for ``drain_timeout``, then stops what is still running: a stream
  ends with an error event (503 ``shutdown``) and ``[DONE]``, not a cut connection;
* stops the engine and the decode workers and exits 0, well inside the grace period, leaving
  no process behind.

The server is the real one (``python -m videomodel_server.cli``, the tiny Qwen2-VL checkpoint,
vLLM's CPU engine); the clients are the official OpenAI SDK and httpx, streaming.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.harness import FakeEngine, FakeLoader, MediaServer, app_state, server_settings
from tests.harness.hardening import RESULTS
from tests.harness.process import ServerProcess, descendants, free_port
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.admission import ABORT_UNWIND_SECONDS
from videomodel_server.app import create_app
from videomodel_server.budget import Family, VideoBudget
from videomodel_server.cli import draining_server

pytestmark = pytest.mark.timeout(900)

DRAIN_TIMEOUT_S = 4.0
SHORT = 400
"""Tokens of a stream that should end inside the grace period (4 streams at once: ~1-2 s here)."""
BUDGET = VideoBudget(max_seconds=10, fps=2, max_frames=8, max_prompt_tokens=64, max_output_tokens=4096)
EXIT_MARGIN_S = 20.0
"""Past the grace period: stopping vLLM's engine process and the decode workers."""


@dataclass
class StreamResult:
    client: str
    chunks: int = 0
    first_chunk: threading.Event = field(default_factory=threading.Event)
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    done_marker: bool = False
    failure: str | None = None
    """Anything other than a clean end: the connection cut, an exception the client raised."""
    ended_at: float = 0.0


def _body(tokens: int, stream: bool = True) -> dict[str, Any]:
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Count."}]}],
        "max_tokens": tokens,
        "min_tokens": tokens,  # no early EOS: the length of the work is known
        "stream": stream,
    }


def _httpx_stream(url: str, tokens: int, out: StreamResult) -> None:
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=_body(tokens), timeout=120) as resp:
            assert resp.status_code == 200, resp.read()
            for line in resp.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    out.done_marker = True
                    continue
                event = json.loads(data)
                if "error" in event:
                    out.error = event["error"]
                    continue
                out.chunks += 1
                if out.chunks >= 2:
                    out.first_chunk.set()
                for choice in event.get("choices", []):
                    out.finish_reason = choice.get("finish_reason") or out.finish_reason
    except Exception as exc:  # recorded, asserted on by the test
        out.failure = f"{type(exc).__name__}: {exc}"
    finally:
        out.ended_at = time.monotonic()
        out.first_chunk.set()


def _openai_stream(url: str, tokens: int, out: StreamResult) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
    try:
        stream = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "Count."}],
            max_tokens=tokens,
            stream=True,
            extra_body={"min_tokens": tokens},
        )
        for chunk in stream:
            out.chunks += 1
            if out.chunks >= 2:
                out.first_chunk.set()
            for choice in chunk.choices:
                out.finish_reason = choice.finish_reason or out.finish_reason
        out.done_marker = True  # the SDK stops at [DONE]; an end without it raises
    except openai.APIError as exc:
        # The SDK raises an error event as APIError; its body is the envelope's ``error``.
        body = exc.body if isinstance(exc.body, dict) else None
        if body is not None and "code" in body:
            out.error = body
            out.done_marker = True
        else:
            out.failure = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        out.failure = f"{type(exc).__name__}: {exc}"
    finally:
        out.ended_at = time.monotonic()
        out.first_chunk.set()


@dataclass
class Probe:
    """New requests sent in a loop from just before SIGTERM until the process has exited."""

    url: str
    sigterm_at: list[float] = field(default_factory=list)
    outcomes: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = _body(1, stream=False)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                # A fresh connection each time, as a new client (or kube-proxy) would open.
                resp = httpx.post(self.url + "/v1/chat/completions", json=body, timeout=10)
                code = resp.json().get("error", {}).get("code", "") if resp.status_code != 200 else ""
                retry = resp.headers.get("retry-after", "")
                outcome = f"{resp.status_code} {code} retry-after={retry}"
            except httpx.ConnectError:
                outcome = "refused"
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}"
            self.outcomes.append((started, outcome))
            time.sleep(0.01)

    def after_sigterm(self, delay: float = 0.05) -> list[str]:
        """Outcomes of requests started ``delay`` s or more after the signal was sent."""
        at = self.sigterm_at[0] + delay
        return [o for started, o in self.outcomes if started >= at]


def _children_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


# serial: it times a drain against its deadline, so `make test` runs it alone on the machine.
@pytest.mark.engine
@pytest.mark.serial
def test_sigterm_with_streams_open_drains_then_exits_0(
    tiny_model_dir: Callable[[Family], Path], tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(make_video(VideoSpec(seconds=1.0, fps=4, width=64, height=64)).read_bytes())
    flags = ["--allow-http", "--max-concurrent-requests", "8", "--max-queued-requests", "0"]
    flags += ["--drain-timeout", str(DRAIN_TIMEOUT_S)]
    # Short: vLLM puts its ZMQ IPC sockets in TMPDIR (a Unix socket path has at most 107 bytes).
    server_tmp = Path(tempfile.mkdtemp(prefix="vm-shutdown-"))
    env = {"VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS": "127.0.0.1/32", "TMPDIR": str(server_tmp)}
    model = tiny_model_dir(Family.QWEN2_VL)
    server = ServerProcess.tiny(model, Family.QWEN2_VL, BUDGET, tmp_path, *flags, decode_workers=2, env=env)
    spawned: list[int] = []
    try:
        server.start()
        assert server.proc is not None
        pid = server.proc.pid
        with MediaServer(media) as media_server:
            # One request through the whole pipeline first (fetch, probe, decode, engine).
            video = {"type": "video_url", "video_url": {"url": f"{media_server.url}/clip.mp4"}}
            warm = httpx.post(
                server.url + "/v1/chat/completions",
                json={"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": [video]}]},
                timeout=120,
            )
            assert warm.status_code == 200, warm.text
        processes = descendants(pid)
        spawned.extend(processes)
        tmp_before = sorted(os.listdir(server_tmp))
        assert processes, "no engine or decode worker processes under the server"

        # Four streams, two per client: two short enough to finish inside the grace period (or even
        # before the signal, on an idle machine), two that cannot (the budget's 4096 tokens).
        plan = [("openai", _openai_stream, SHORT), ("httpx", _httpx_stream, SHORT)]
        plan += [("openai", _openai_stream, 4096), ("httpx", _httpx_stream, 4096)]
        streams = [StreamResult(f"{name}/{tokens}") for name, _, tokens in plan]
        threads = [
            threading.Thread(target=fn, args=(server.url, tokens, out), daemon=True)
            for (_, fn, tokens), out in zip(plan, streams, strict=True)
        ]
        for t in threads:
            t.start()
        for s in streams:
            assert s.first_chunk.wait(120), f"{s.client}: no tokens"
        long_streams = streams[2:]
        assert all(s.failure is None and s.error is None for s in streams), streams

        probe = Probe(server.url)
        prober = threading.Thread(target=probe.run, daemon=True)
        prober.start()
        time.sleep(0.1)
        probe.sigterm_at.append(time.monotonic())
        os.kill(pid, signal.SIGTERM)
        sigterm = probe.sigterm_at[0]

        try:
            rc = server.proc.wait(timeout=DRAIN_TIMEOUT_S + ABORT_UNWIND_SECONDS + EXIT_MARGIN_S)
        except Exception:
            pytest.fail(f"the server did not exit in time:\n{server.tail()}")
        exited = time.monotonic() - sigterm
        probe.stop.set()
        prober.join(15)
        for t in threads:
            t.join(15)
        log = server.tail(60)

        # Exit 0, inside the grace period plus the engine's stop.
        assert rc == 0, f"exit status {rc}:\n{log}"

        # Every stream ended cleanly: finished, or stopped with the shutdown error event and [DONE].
        for s in streams:
            assert s.failure is None, f"{s.client}: {s.failure}\n{log}"
            assert s.done_marker, f"{s.client}: no [DONE]"
            if s.error is not None:
                assert s.error["code"] == "shutdown", s.error
                assert s.ended_at - sigterm <= DRAIN_TIMEOUT_S + ABORT_UNWIND_SECONDS + 1, s
            else:
                assert s.finish_reason == "length", s
        for s in long_streams:
            assert s.error is not None, f"{s.client}: 4096 tokens cannot finish in {DRAIN_TIMEOUT_S} s here"
            assert s.ended_at - sigterm >= DRAIN_TIMEOUT_S - 0.5, "stopped before the grace period ran out"

        # New requests after SIGTERM: refused at once (503 + Retry-After), or the connection refused
        # once the listener closed. Never admitted, never another status.
        late = probe.after_sigterm()
        assert late, "the probe sent nothing after SIGTERM"
        assert "refused" in late, late
        allowed = {"refused", "503 draining retry-after=2"}
        assert set(late) <= allowed, sorted(set(late))

        # Nothing left behind: the engine process and the decode workers are gone (not zombies).
        deadline = time.monotonic() + 10
        while _children_alive(processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _children_alive(processes), f"left running: {_children_alive(processes)}"
        # No temp file left: nothing in the server's TMPDIR that was not there before the streams
        # (vLLM's ZMQ IPC sockets and torch's compile cache are made at start-up and stay,
        # and vLLM removes some of its own on a clean stop).
        assert set(os.listdir(server_tmp)) <= set(tmp_before), sorted(set(os.listdir(server_tmp)) - set(tmp_before))
        ended = {
            s.client: ("finished" if s.error is None else "stopped", round(s.ended_at - sigterm, 2)) for s in streams
        }
        summary = (
            f"shutdown: exit {rc} {exited:.2f} s after SIGTERM (drain_timeout {DRAIN_TIMEOUT_S:g} s); "
            f"streams {ended}; new requests after SIGTERM {dict((o, late.count(o)) for o in sorted(set(late)))}"
        )
        print("\n" + summary)
        RESULTS.lines.append(summary)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
        for p in _children_alive(spawned):
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(server_tmp, ignore_errors=True)


def test_the_shutdown_sequence_step_by_step_on_a_fake_engine() -> None:
    """The same sequence in-process, each step observed on its own (no race with the listener):
    the server's own uvicorn (:func:`draining_server`) on a fake engine that streams slowly."""
    settings = server_settings(drain_timeout=1.0, max_concurrent_requests=4, max_queued_requests=0, port=free_port())
    engine = FakeEngine(words=("w",) * 400, delay=0.02)  # 8 s of tokens: longer than the grace
    state = app_state(settings, engine, FakeLoader())
    server = draining_server(create_app(state), settings, state.admission)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.listen.port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started

    stream = StreamResult("httpx/400")
    streaming = threading.Thread(target=_httpx_stream, args=(url, 400, stream), daemon=True)
    streaming.start()
    assert stream.first_chunk.wait(10) and stream.failure is None

    # Step 1, what SIGTERM does first (in the signal handler): stop admitting. Readiness fails and
    # a request that reaches the app is refused with 503 + Retry-After; the stream goes on.
    state.admission.stop_admitting()
    health = httpx.get(url + "/health", timeout=5)
    assert (health.status_code, health.json()) == (503, {"status": "draining"})
    refused = httpx.post(url + "/v1/chat/completions", json=_body(1, stream=False), timeout=5)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2", refused.text
    assert refused.json()["error"]["code"] == "draining"
    assert streaming.is_alive()

    # Step 2, the signal reaches uvicorn: the listener closes at once; the stream runs out its grace
    # (1 s), then ends with the shutdown error event and [DONE]; the server returns.
    signalled = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    deadline = time.monotonic() + 5
    outcome = ""
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/health", timeout=1)
        except httpx.ConnectError:
            outcome = "refused"
            break
        time.sleep(0.02)
    assert outcome == "refused", "the listener stayed open"
    streaming.join(10)
    thread.join(10)
    assert not thread.is_alive(), "the server did not return"
    assert stream.failure is None, stream.failure
    assert stream.error is not None and stream.error["code"] == "shutdown", stream
    assert stream.done_marker and 0 < stream.chunks < 400
    assert 0.9 <= stream.ended_at - signalled <= 1.0 + ABORT_UNWIND_SECONDS, stream.ended_at - signalled
    assert engine.aborted and engine.running == 0, "the engine request was not aborted"
    aborts = state.metrics.registry.get_sample_value("videomodel_engine_aborts_total", {"reason": "shutdown"})
    assert aborts == 1, "the abort is not counted as a shutdown"
    assert state.admission.in_flight == 0
    # uvicorn would re-raise a SIGTERM it handled (exit 143); this one is handled in full.
    assert not getattr(server, "_captured_signals", [])
