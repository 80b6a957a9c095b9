"""The engine watchdog, on stand-in processes: a killed server takes its engine with it.

A stand-in "server" starts a stand-in "engine" (``sleep``) and the watchdog over it, as
``VllmEngine.start`` does over the EngineCore. The real thing: test_engine_death.py (engine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from videomodel_server import watchdog

SERVER = """
import subprocess, sys, time
from videomodel_server import watchdog
engine = subprocess.Popen(["sleep", "600"])
guard = watchdog.start([engine.pid])
print(engine.pid, flush=True)
if sys.argv[1] == "stop-engine":
    engine.terminate(); engine.wait(); guard.wait(timeout=30); print("guard exited", flush=True)
time.sleep(600)
"""


def _gone(pid: int, started: int | None, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watchdog.start_time(pid) != started:
            return True
        time.sleep(0.05)
    return False


def _server(mode: str) -> tuple[subprocess.Popen[str], int]:
    """The stand-in server and its engine's pid."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_killed_server_takes_its_engine_with_it() -> None:
    proc, engine = _server("run")
    started = watchdog.start_time(engine)
    assert started is not None
    proc.kill()
    proc.wait()
    try:
        assert _gone(engine, started), "the engine outlived its server"
    finally:
        if watchdog.start_time(engine) == started:
            os.kill(engine, signal.SIGKILL)


def test_the_watchdog_leaves_when_the_engine_stops_cleanly() -> None:
    proc, _ = _server("stop-engine")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "guard exited"
    finally:
        proc.kill()
        proc.wait()


def test_a_reused_pid_is_not_killed() -> None:
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        started = watchdog.start_time(bystander.pid)
        assert started is not None
        watchdog.kill([(bystander.pid, started + 1)])  # same pid, another process's start time
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
