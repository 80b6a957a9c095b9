"""The server and vLLM's engine process do not outlive each other unnoticed.

A real server on the tiny Qwen2-VL checkpoint. When its EngineCore process is killed with
SIGKILL (what the OOM killer does), ``/health`` turns 503 (so Kubernetes stops routing to the
pod and restarts it) and a chat request gets a prompt 503 envelope. When the server process
itself is killed, the EngineCore (and every other process the server started) dies with it
instead of holding its memory as an orphan (:mod:`videomodel_server.watchdog`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.process import ServerProcess, descendants
from videomodel_server import watchdog
from videomodel_server.budget import Family, VideoBudget

pytestmark = pytest.mark.engine

BUDGET = VideoBudget(max_seconds=10, fps=2, max_frames=8, max_prompt_tokens=64, max_output_tokens=8)


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = ServerProcess.tiny(
        tiny_model_dir(Family.QWEN2_VL), Family.QWEN2_VL, BUDGET, tmp_path_factory.mktemp("death")
    )
    try:
        yield proc.start()
    finally:
        proc.stop()  # its engine was killed on purpose: no clean exit to check


def _engine_core_pids(root: int) -> list[int]:
    pids = []
    for pid in descendants(root):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("VLLM::EngineCor"):
            pids.append(pid)
    return pids


def test_dead_engine_turns_health_503_and_fails_requests_fast(server: ServerProcess) -> None:
    assert server.proc is not None
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    model = httpx.get(server.url + "/v1/models", timeout=5).json()["data"][0]["id"]
    cores = _engine_core_pids(server.proc.pid)
    assert cores, "no EngineCore process found under the server"
    for pid in cores:
        os.kill(pid, signal.SIGKILL)

    deadline = time.monotonic() + 60
    status = 200
    while time.monotonic() < deadline:
        status = httpx.get(server.url + "/health", timeout=5).status_code
        if status != 200:
            break
        time.sleep(0.5)
    assert status == 503, f"health is {status} after the engine died"

    reply = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4},
        timeout=30,
    )
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "not_ready"


def test_engine_core_dies_with_a_killed_server(tiny_model_dir: Callable[[Family], Path], tmp_path: Path) -> None:
    server = ServerProcess.tiny(tiny_model_dir(Family.QWEN2_VL), Family.QWEN2_VL, BUDGET, tmp_path).start()
    assert server.proc is not None
    started = {pid: watchdog.start_time(pid) for pid in descendants(server.proc.pid)}
    assert _engine_core_pids(server.proc.pid), "no EngineCore process found under the server"
    server.proc.kill()  # SIGKILL: no shutdown code runs in the server
    server.proc.wait(timeout=30)

    def survivors() -> list[int]:
        return [pid for pid, at in started.items() if at is not None and watchdog.start_time(pid) == at]

    deadline = time.monotonic() + 30
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = survivors()
    for pid in left:  # do not leak them into the rest of the session
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    names = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in left if Path(f"/proc/{pid}").exists()}
    assert not left, f"processes outlived the killed server: {names}"
