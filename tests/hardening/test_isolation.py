"""Isolation (issue 13, item 4): what a decoder does inside a decode worker stays there.

The worker is made to misbehave for real: a test-only job (:mod:`.hostile_jobs`) is handed to
the real :class:`DecodePool` in place of a probe's limits, so the worker segfaults, aborts,
spins, or allocates without bound while it holds the request's media descriptor. Through the
real server (the hardening rig), each costs that request a 4xx and nothing else: the worker is
replaced, the API process is untouched, and the next requests are served.

The sandbox (``media/sandbox.py``) is proved the same way: from inside a worker, TCP (v4 and
v6), UDP, a named UNIX socket, files outside the libraries (a secret beside the media root, the
media root itself, ``/etc``, the API process's ``/proc`` entry), writes, exec and signals to the
parent are all refused, and the test's own listeners count zero connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.harness import MediaServer
from tests.harness.hardening import Hardened, assert_envelope, assert_serving, post_video
from videomodel_server.media.cache import VideoCache
from videomodel_server.media.errors import DecodeMemory, DecodeTimeout, InvalidVideo, MediaError
from videomodel_server.media.limits import MediaLimits
from videomodel_server.media.pool import DecodePool
from videomodel_server.media.probe import ProbeResult

from .hostile_jobs import OUTCOME, HostileLimits

pytestmark = pytest.mark.timeout(240)

WORKER_MEMORY = 768 * 1024**2


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory, small_video: bytes) -> Path:
    path = tmp_path_factory.mktemp("isolation") / "ok.mp4"
    path.write_bytes(small_video)
    return path


async def _probe_ok(pool: DecodePool, path: Path) -> ProbeResult:
    fd = os.open(path, os.O_RDONLY)
    try:
        return await pool.probe(fd, MediaLimits(), size=path.stat().st_size)
    finally:
        os.close(fd)


async def _hostile(pool: DecodePool, path: Path, action: str, arg: Any = None, timeout: float = 20.0) -> MediaError:
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(MediaError) as caught:
            await pool.probe(fd, HostileLimits(action, arg, timeout))  # type: ignore[arg-type]
        return caught.value
    finally:
        os.close(fd)


async def _wait_replaced(pool: DecodePool, dead: set[int], size: int, timeout: float = 60) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = set(pool.worker_pids())
        if len(pids) == size and not pids & dead:
            return pids
        await asyncio.sleep(0.05)
    raise AssertionError(f"workers not replaced: {pool.worker_pids()} (dead {dead})")


# -- the pool itself: each failure, its error, its cost -------------------------------------------

FAILURES = [
    # action, expected error, what it stands for
    ("segfault", InvalidVideo, "SIGSEGV in the decoder"),
    ("abort", InvalidVideo, "SIGABRT (a C assertion)"),
    ("spin", DecodeTimeout, "a decoder stuck in a loop"),
    ("hog", DecodeMemory, "unbounded allocation, touched"),
    ("hog-virtual", DecodeMemory, "unbounded address-space reservations"),
    ("hog-unchecked", InvalidVideo, "C code writing through a failed malloc"),
]


@pytest.mark.parametrize(("action", "error", "meaning"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_a_failing_worker_costs_one_job_and_is_replaced(
    video_file: Path, action: str, error: type[MediaError], meaning: str
) -> None:
    async with DecodePool(1, memory_bytes=WORKER_MEMORY, threads=1) as pool:
        (before,) = pool.worker_pids()
        peak = [0]
        stop = threading.Event()

        def sample() -> None:  # the worker's resident memory while it misbehaves
            while not stop.wait(0.01):
                try:
                    peak[0] = max(peak[0], psutil.Process(before).memory_info().rss)
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        exc = await _hostile(pool, video_file, action, timeout=2.0)
        took = time.perf_counter() - started
        stop.set()
        sampler.join()
        assert isinstance(exc, error), (meaning, exc)
        assert 400 <= exc.status < 500, (meaning, exc.status)
        assert OUTCOME not in exc.message
        if error is DecodeTimeout:
            assert took < 2.0 + 3.0, took  # the deadline holds: killed, not waited on
        if action in ("hog", "hog-unchecked"):
            assert peak[0] <= WORKER_MEMORY, peak[0]  # RLIMIT_DATA bounds what it could take
        if error is DecodeMemory:
            # The worker survived its MemoryError (the hoard is dropped): it keeps serving.
            assert pool.worker_pids() == [before]
        else:
            await _wait_replaced(pool, {before}, 1)
            assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE
        # The next job works, in whichever worker is there now.
        probe = await _probe_ok(pool, video_file)
        assert probe.width == 64 and probe.height == 64
        print(
            f"\nisolation {action}: {type(exc).__name__} {exc.status} in {took:.2f} s, worker peak RSS "
            f"{peak[0] / 2**20:.0f} MiB, pool {pool.stats}"
        )


def _fds() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return found


# -- through the real server: a 4xx for that request, nothing else --------------------------------


@pytest.fixture
def hostile_probe(hardened: Hardened, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any, float]]]:
    """While the list holds an (action, arg, timeout), the next probe the server runs is that job."""
    pool = hardened.loader.pool
    real = pool.probe
    queue: list[tuple[str, Any, float]] = []

    async def probe(fd: int, limits: MediaLimits, *, size: int = 0) -> ProbeResult:
        if queue:
            action, arg, timeout = queue.pop(0)
            return await real(fd, HostileLimits(action, arg, timeout), size=size)  # type: ignore[arg-type]
        return await real(fd, limits, size=size)

    monkeypatch.setattr(pool, "probe", probe)
    monkeypatch.setattr(pool, "cache", VideoCache(0))  # every request reaches a worker
    yield queue


SERVER_FAILURES = [
    ("segfault", 400, "SIGSEGV"),
    ("abort", 400, "SIGABRT"),
    ("spin", 422, "hang past the deadline"),
    ("hog-virtual", 422, "unbounded allocation"),
    ("hog-unchecked", 400, "unchecked malloc"),
]


@pytest.mark.parametrize(("action", "status", "meaning"), SERVER_FAILURES, ids=[f[0] for f in SERVER_FAILURES])
def test_a_decoder_failure_costs_that_request_a_4xx_and_nothing_else(
    hardened: Hardened,
    origin: MediaServer,
    hostile_probe: list[tuple[str, Any, float]],
    action: str,
    status: int,
    meaning: str,
) -> None:
    pool = hardened.loader.pool
    ok_url = origin.href("/files/ok.mp4")
    assert post_video(hardened.url, ok_url).status_code == 200
    before = set(pool.worker_pids())
    api = psutil.Process()
    hardened.engine.inputs.clear()  # the fake engine keeps each request (frames map a memfd)
    gc.collect()
    api_threads, api_fds = api.num_threads(), api.num_fds()
    fds_before = _fds()
    replaced = pool.stats.replaced
    hostile_probe.append((action, None, 2.0))
    started = time.perf_counter()
    resp = post_video(hardened.url, ok_url)
    took = time.perf_counter() - started
    assert resp.status_code == status, (meaning, resp.status_code, resp.text)
    err = assert_envelope(resp)
    assert OUTCOME not in err["message"]
    assert not hostile_probe, "the hostile job did not run"
    # Nothing else: the API process is the same one, /health is fine, and the next requests work.
    assert_serving(hardened.url)
    for _ in range(4):
        assert post_video(hardened.url, ok_url).status_code == 200
    if action != "hog-virtual":  # a MemoryError is caught in the worker, which lives on
        assert pool.stats.replaced > replaced
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(pool.worker_pids()) < pool.size:
        time.sleep(0.05)
    after = set(pool.worker_pids())
    assert len(after) == pool.size
    if action != "hog-virtual":
        assert after != before
    # No descriptors or threads left behind by the dead worker (its pipe and sentinel are closed
    # once it is reaped, in the background).
    hardened.engine.inputs.clear()
    while time.monotonic() < deadline and api.num_fds() > api_fds:
        gc.collect()
        time.sleep(0.05)
    assert api.num_fds() <= api_fds, set(_fds().items()) - set(fds_before.items())
    assert api.num_threads() <= api_threads + 2
    print(
        f"\nisolation via HTTP {action}: {resp.status_code} {err['code']} in {took:.2f} s; "
        f"workers {sorted(before)} -> {sorted(after)}"
    )


# -- the sandbox: no network, no files beyond the libraries ----------------------------------------


class Counting:
    """TCP (v4/v6), UDP and UNIX listeners that count what reaches them."""

    def __init__(self, tmp: Path) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp6: socket.socket | None
        try:
            self.tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        except OSError:
            self.tcp6 = None
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.unix_path = str(tmp / "daemon.sock")
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.unix_path)
        self.unix.listen(4)
        self.hits = 0
        for s in (self.tcp, self.tcp6, self.udp, self.unix):
            if s is not None:
                threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket) -> None:
        while True:
            try:
                if s.type == socket.SOCK_DGRAM:
                    s.recv(100)
                else:
                    s.accept()[0].close()
            except OSError:
                return
            self.hits += 1

    def close(self) -> None:
        for s in (self.tcp, self.tcp6, self.udp, self.unix):
            if s is not None:
                s.close()


@pytest.fixture(scope="module")
def sandbox_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Counting, Path, Path]]:
    tmp = tmp_path_factory.mktemp("sandbox")
    secret = tmp / "secret.txt"
    secret.write_text("api key")
    listeners = Counting(tmp)
    yield listeners, tmp, secret
    listeners.close()


def _attempts(listeners: Counting, tmp: Path, secret: Path, media_root: Path) -> list[tuple[str, str, Any]]:
    rows: list[tuple[str, str, Any]] = [
        ("tcp to 127.0.0.1", "connect-tcp", listeners.tcp.getsockname()[:2]),
        ("udp to 127.0.0.1", "send-udp", listeners.udp.getsockname()),
        ("a named UNIX socket (like docker.sock)", "connect-unix", listeners.unix_path),
        ("a secret file outside the input", "read", str(secret)),
        ("list a directory outside the input", "list", str(tmp)),
        ("the media root", "list", str(media_root)),
        ("/etc/passwd", "read", "/etc/passwd"),
        ("/etc/hostname", "read", "/etc/hostname"),
        ("the API process's environment", "read", f"/proc/{os.getpid()}/environ"),
        ("the API process's memory map", "read", f"/proc/{os.getpid()}/maps"),
        ("a write to the temp dir", "write", str(tmp / "dropped")),
        ("a write to /dev/shm", "write", "/dev/shm/videomodel-escape"),
        ("exec a shell", "exec", ["/bin/sh", "-c", "true"]),
        ("a signal to the API process", "signal-parent", None),
    ]
    if listeners.tcp6 is not None:
        rows.insert(1, ("tcp to ::1", "connect-tcp6", listeners.tcp6.getsockname()[:2]))
    return rows


async def test_a_decode_worker_cannot_reach_the_network_or_files_beyond_its_input(
    video_file: Path, sandbox_world: tuple[Counting, Path, Path], tmp_path: Path
) -> None:
    listeners, tmp, secret = sandbox_world
    media_root = video_file.parent
    outcomes: dict[str, str] = {}
    async with DecodePool(1, memory_bytes=WORKER_MEMORY, threads=1) as pool:
        for what, action, arg in _attempts(listeners, tmp, secret, media_root):
            exc = await _hostile(pool, video_file, action, arg)
            assert exc.message.startswith(OUTCOME), (what, exc)
            outcomes[what] = exc.message.removeprefix(OUTCOME)
        # Confined, the worker still does its job: the input arrives as a descriptor.
        probe = await _probe_ok(pool, video_file)
        assert probe.width == 64
    time.sleep(0.2)
    print("\nsandbox, from inside a decode worker:")
    for what, outcome in outcomes.items():
        print(f"  {what}: {outcome}")
    allowed = {what: o for what, o in outcomes.items() if not o.startswith("refused")}
    assert allowed == {}, f"a decode worker could: {allowed}"
    assert listeners.hits == 0
    assert not (tmp / "dropped").exists() and not Path("/dev/shm/videomodel-escape").exists()
