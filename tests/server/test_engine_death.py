"""When vLLM's engine process dies under a live server, the server says so instead of hanging.

A real server on the tiny Qwen2-VL checkpoint; the test kills its EngineCore process with
SIGKILL (what the OOM killer does) and checks that ``/health`` turns 503 (so Kubernetes stops
routing to the pod and restarts it) and that a chat request gets a prompt 503 envelope.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from videomodel_server.budget import Family, VideoBudget

from .engine_harness import ENGINE_PASSTHROUGH, ServerProcess, _descendants
from .test_engine_qwen2_vl import budget_flags

pytestmark = pytest.mark.engine

BUDGET = VideoBudget(max_seconds=10, fps=2, max_frames=8, max_prompt_tokens=64, max_output_tokens=8)


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    args = ["--model", str(tiny_model_dir(Family.QWEN2_VL)), *budget_flags(BUDGET), *ENGINE_PASSTHROUGH]
    proc = ServerProcess(args, tmp_path_factory.mktemp("death") / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()


def _engine_core_pids(root: int) -> list[int]:
    pids = []
    for pid in _descendants(root):
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
