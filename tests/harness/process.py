"""The real server as a subprocess (``videomodel-server``, the operator's command line) on a free port.

:meth:`ServerProcess.tiny` is the one way a test starts the real engine on a tiny checkpoint: a
family, a budget and the flags the test is about; :meth:`ServerProcess.serving` runs it for a
``with`` block and checks it stopped cleanly. The tiny checkpoints are CPU-sized;
``--kv-cache-memory-bytes`` (a vLLM passthrough flag) replaces the RAM-fraction sizing that fails
on a shared machine (docs/vllm-notes.md).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from videomodel_server.budget import Family, VideoBudget
from videomodel_server.budget.contract import to_flags

ENGINE_PASSTHROUGH = ("--", "--kv-cache-memory-bytes", str(256 * 1024**2), "--enforce-eager")
STARTUP_SECONDS = 600
STOPPED_CLEANLY = (0,)
"""On SIGTERM the server drains, runs the lifespan shutdown and exits 0 (cli.draining_server)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = [
            sys.executable,
            "-m",
            "videomodel_server.cli",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *args,
        ]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def tiny(
        cls,
        model: Path,
        family: Family,
        budget: VideoBudget,
        log_dir: Path,
        *flags: str,
        served_model_name: str = "tiny",
        decode_workers: int = 1,
        engine_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> ServerProcess:
        """The server on a tiny checkpoint with ``budget`` as the flags a user types (every field),
        the server ``flags`` under test, then vLLM's passthrough (``engine_flags`` after the harness's)."""
        args = [
            "--model", str(model), "--served-model-name", served_model_name, "--family", family.value,
            *to_flags(budget), "--decode-workers", str(decode_workers), *flags, *ENGINE_PASSTHROUGH, *engine_flags,
        ]  # fmt: skip
        return cls(args, log_dir / "server.log", dict(env or {}))

    @contextmanager
    def serving(self) -> Iterator[ServerProcess]:
        """Started for the block; on the way out SIGTERM must drain it to a clean exit."""
        self.start()
        try:
            yield self
        finally:
            assert self.stop() in STOPPED_CLEANLY, self.tail()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {STARTUP_SECONDS} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def peak_rss_bytes(self) -> int:
        """Peak resident memory (VmHWM) of the server and its descendants (engine core, workers)."""
        assert self.proc is not None
        total = 0
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            if match:
                total += int(match.group(1)) * 1024
        return total


def descendants(pid: int) -> list[int]:
    """Every descendant process (children of every thread: vLLM forks from a worker thread)."""
    out: list[int] = []
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    for child in dict.fromkeys(children):
        out.append(int(child))
        out.extend(descendants(int(child)))
    return out


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus metric (0 when absent)."""
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels:
            return float(value)
        if head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
