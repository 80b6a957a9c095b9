"""If the server process dies, its engine processes die with it.

vLLM's ``AsyncLLM`` runs its EngineCore in a child process and stops it on a clean shutdown, but
nothing stops it when the server process is killed (SIGKILL, the OOM killer): the orphaned
EngineCore keeps its memory and its GPU, and a restarted container may not fit beside it. vLLM
0.32 offers no hook to run code in that child, and ``PR_SET_PDEATHSIG`` would not do either: it
fires when the *thread* that forked the child exits, and vLLM forks from a worker thread.

So the server starts this watchdog, a small process of its own, once the engine is up
(:func:`start`). The watchdog polls its parent; when the parent is gone (it has been reparented)
it kills the engine processes it was given, and their descendants. It exits by itself once they
are all gone (a clean shutdown). Each process is identified by pid *and* start time, so a reused
pid is never killed. Linux only (``/proc``); stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

POLL_SECONDS = 0.2


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children of all its threads), depth first."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out.append(int(child))
            out.extend(descendants(int(child)))
    return list(dict.fromkeys(out))


def watch(parent: int, targets: Sequence[tuple[int, int]], poll: float = POLL_SECONDS) -> None:
    """Until every target is gone: if ``parent`` stops being our parent, kill the targets and return."""
    alive = list(targets)
    while alive:
        if os.getppid() != parent:
            kill(alive)
            return
        time.sleep(poll)
        alive = [(pid, started) for pid, started in alive if start_time(pid) == started]


def kill(targets: Sequence[tuple[int, int]]) -> None:
    """SIGKILL each target that is still the same process, and its descendants."""
    victims: list[tuple[int, int | None]] = []
    for pid, started in targets:
        if start_time(pid) == started:
            victims.append((pid, started))
            victims.extend((child, start_time(child)) for child in descendants(pid))
    for pid, identity in victims:
        if identity is not None and start_time(pid) == identity:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start(pids: Sequence[int]) -> subprocess.Popen[bytes] | None:
    """Start a watchdog over ``pids`` for this process; None when there is nothing to watch."""
    targets = [f"{pid}:{started}" for pid in pids if (started := start_time(pid)) is not None]
    if not targets:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "videomodel_server.watchdog", str(os.getpid()), *targets],
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


def main(argv: Sequence[str]) -> int:
    parent, *targets = argv
    # A signal meant for the server's process group (Ctrl-C) must not stop the watch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(parent), [(int(pid), int(started)) for pid, started in (t.split(":") for t in targets)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
