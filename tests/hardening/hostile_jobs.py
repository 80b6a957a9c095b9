"""Test-only hostile jobs for the real DecodePool: what a compromised or broken decoder does.

:class:`HostileLimits` stands in for the ``MediaLimits`` of a probe job. The pool (API side)
reads only ``decode_timeout_seconds``; the worker's probe reads any other field, and that read
runs :func:`act` *inside the worker*, with the request's media descriptor open: a segfault, an
abort, a hang, unbounded allocation, or an attempt to reach the network or a file. The outcome
of an attempt comes back as the message of an ``InvalidVideo`` (the pool's ordinary error path).

Kept free of heavy imports: the worker imports this module when it unpickles the job (so it is
imported after the worker's sandbox is in place, through ``sys.path``, as any library would be).
Nothing here is reachable from HTTP: a test swaps it in by wrapping ``DecodePool.probe``.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import time
from typing import Any

OUTCOME = "OUTCOME:"


class HostileLimits:
    def __init__(self, action: str, arg: Any = None, timeout: float = 10.0) -> None:
        self.action = action
        self.arg = arg
        self.decode_timeout_seconds = timeout

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("action", "arg"):
            raise AttributeError(name)  # pickle's protocol lookups: never act while (un)pickling
        act(self.action, self.arg)
        raise AssertionError("unreachable")


def _report(result: str) -> None:
    from videomodel_server.media.errors import InvalidVideo

    raise InvalidVideo(f"{OUTCOME}{result}")


def _attempt(fn: Any) -> None:
    try:
        fn()
    except OSError as exc:
        _report(f"refused {type(exc).__name__} errno={exc.errno}")
    _report("allowed")


def act(action: str, arg: Any) -> None:
    if action == "segfault":
        ctypes.string_at(0)  # read address 0: SIGSEGV, as a decoder bug would
    elif action == "abort":
        os.abort()  # SIGABRT: a failed assertion in C
    elif action == "spin":
        while True:  # a decoder stuck in a loop, burning a core
            pass
    elif action == "hog":
        # Unbounded allocation, touched (resident): must end at RLIMIT_DATA with a MemoryError.
        hoard = []
        while True:
            hoard.append(bytearray(32 << 20))
    elif action == "hog-virtual":
        # Unbounded reservations (never touched): the address-space limit stops it too.
        import numpy as np

        hoard_np = []
        while True:
            hoard_np.append(np.empty(256 << 20, dtype=np.uint8))
    elif action == "hog-unchecked":
        # C code that does not check malloc's result: reserves until the limit bites, then writes
        # through the NULL it got back.
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        while True:
            p = libc.malloc(256 << 20)
            if not p:
                ctypes.memset(0, 1, 1 << 20)
    elif action == "connect-tcp" or action == "connect-tcp6":
        _attempt(lambda: socket.create_connection(arg, timeout=2).close())
    elif action == "send-udp":

        def udp() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"exfiltrate", arg)

        _attempt(udp)
    elif action == "connect-unix":

        def unix() -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(arg)

        _attempt(unix)
    elif action == "read":

        def read() -> None:
            with open(arg, "rb") as f:
                f.read(16)

        _attempt(read)
    elif action == "list":
        _attempt(lambda: os.listdir(arg))
    elif action == "write":

        def write() -> None:
            with open(arg, "wb") as f:
                f.write(b"x")

        _attempt(write)
    elif action == "exec":

        def run() -> None:
            subprocess.run(arg, check=True, timeout=5, capture_output=True)

        try:
            run()
        except subprocess.CalledProcessError as exc:
            _report(f"refused exit={exc.returncode}")
        except OSError as exc:
            _report(f"refused {type(exc).__name__} errno={exc.errno}")
        _report("allowed")
    elif action == "signal-parent":
        _attempt(lambda: os.kill(os.getppid(), 0))
    elif action == "sleep":
        time.sleep(float(arg))
        _report("slept")
    _report(f"unknown action {action}")
