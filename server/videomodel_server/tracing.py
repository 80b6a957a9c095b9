"""Where one request is and what its stages took: the :class:`Trace` every layer of a request writes.

The route, the per-request scope and the chat service share one :class:`Trace` per request; the
response's report, the stage metrics and the logs read it. The reasons below are the bounded
label values of the cancellation and abort metrics. Pure: stdlib only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

ABORT_CLIENT_DISCONNECT = "client_disconnect"
ABORT_DEADLINE = "deadline"
ABORT_SHUTDOWN = "shutdown"


@dataclass
class Trace:
    """Where one request is and what its stages took (seconds). Mutable, owned by one request."""

    request_id: str
    started: float = field(default_factory=time.monotonic)
    stage: str = "admission"
    timings: dict[str, float] = field(default_factory=dict)
    engine_running: bool = False
    deadline: asyncio.Timeout | None = None
    """The request's overall deadline, once set: tells a deadline abort from a disconnect."""
    stopped_at_shutdown: bool = False
    """The server stopped it at the end of its shutdown grace period (the deadline brought forward)."""

    @property
    def abort_reason(self) -> str:
        """Why work stopped early: shutdown, the deadline if it expired, else the client went away."""
        if self.stopped_at_shutdown:
            return ABORT_SHUTDOWN
        if self.deadline is not None and self.deadline.expired():
            return ABORT_DEADLINE
        return ABORT_CLIENT_DISCONNECT

    def add(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started
