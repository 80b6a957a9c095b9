"""Session summaries (the oracle's extremes, the hardening figures) that survive pytest-xdist.

A pytest plugin (loaded by tests/conftest.py). An area's conftest :func:`keep`-s its summary
object; tests record into it. Under ``-n`` the tests run in xdist workers while the terminal
summary is printed by the controller, which collects nothing: each worker sends its summaries
when its session ends (``workeroutput``, pickled) and the controller merges them as the workers
go down, then prints every summary that recorded something. Without xdist the same objects are
printed in place.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any, Protocol, Self, TypeVar

import pytest


class SessionSummary(Protocol):
    title: str

    def merge(self, other: Self) -> None: ...

    def summary_lines(self) -> list[str]:
        """The lines to print (none: the section is left out)."""
        ...


S = TypeVar("S", bound=SessionSummary)
_KEPT: dict[str, Any] = {}


def keep(key: str, summary: S) -> S:
    """Register ``summary`` under ``key`` (once per process; a later call gets the first object)."""
    kept: S = _KEPT.setdefault(key, summary)
    return kept


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["summaries"] = base64.b64encode(pickle.dumps(_KEPT)).decode()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get("summaries")
    if raw is None:
        return
    theirs: dict[str, Any] = pickle.loads(base64.b64decode(raw))
    for key, summary in theirs.items():
        if key in _KEPT:
            _KEPT[key].merge(summary)
        else:
            _KEPT[key] = summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for summary in _KEPT.values():
        lines = summary.summary_lines()
        if lines:
            terminalreporter.section(summary.title)
            for line in lines:
                terminalreporter.write_line(line)
