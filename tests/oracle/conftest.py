"""Oracle bookkeeping: the largest under- and over-estimate each oracle check saw.

Every comparison of a budget prediction with a real count goes through ``oracle_record``; the
terminal summary prints the extremes (no ``-s`` needed) and they are also written to
``<cache>/oracle/summary.json`` for the record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from videomodel_devtools.cache import cache_dir


@dataclass
class Extremes:
    checks: int = 0
    largest_under: int = 0
    """Most tokens the budget predicted *below* the real count (must stay 0)."""
    largest_over: int = 0
    largest_over_pct: float = 0.0
    worst_case: dict[str, Any] = field(default_factory=dict)


class OracleSummary:
    def __init__(self) -> None:
        self.rows: dict[str, Extremes] = {}

    def record(self, check: str, predicted: int, real: int, *, upper_bound_only: bool = False, **context: Any) -> None:
        """``upper_bound_only``: the prediction is a bound for this video, not its expected cost, so
        only an under-estimate is a finding (a short video costs far less than the worst case)."""
        row = self.rows.setdefault(check, Extremes())
        row.checks += 1
        row.largest_under = max(row.largest_under, real - predicted)
        if upper_bound_only:
            return
        over_pct = 100.0 * (predicted - real) / real if real else 0.0
        if predicted - real > row.largest_over:
            row.largest_over = predicted - real
        if over_pct > row.largest_over_pct:
            row.largest_over_pct = over_pct
            row.worst_case = {"predicted": predicted, "real": real, **context}

    def merge(self, rows: dict[str, dict[str, Any]]) -> None:
        """Fold in the rows another process recorded (an xdist worker's, sent as plain dicts)."""
        for check, other in rows.items():
            row = self.rows.setdefault(check, Extremes())
            row.checks += other["checks"]
            row.largest_under = max(row.largest_under, other["largest_under"])
            row.largest_over = max(row.largest_over, other["largest_over"])
            if other["largest_over_pct"] > row.largest_over_pct:
                row.largest_over_pct, row.worst_case = other["largest_over_pct"], other["worst_case"]

    def lines(self) -> list[str]:
        out = []
        for check, row in sorted(self.rows.items()):
            out.append(
                f"{check}: {row.checks} checks, largest under-estimate {row.largest_under} tokens, "
                f"largest over-estimate {row.largest_over} tokens / {row.largest_over_pct:.3f}%"
            )
            if row.worst_case:
                out.append(f"    worst over-estimate: {row.worst_case}")
        return out


_SUMMARY = OracleSummary()


@pytest.fixture(scope="session")
def oracle_record() -> OracleSummary:
    return _SUMMARY


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist a worker hands its rows to the controller, which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["oracle"] = json.dumps({k: asdict(v) for k, v in _SUMMARY.rows.items()}, default=str)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    _SUMMARY.merge(json.loads(getattr(node, "workeroutput", {}).get("oracle", "{}")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SUMMARY.rows:
        return
    terminalreporter.section("budget oracle: predicted vs real token counts")
    for line in _SUMMARY.lines():
        terminalreporter.write_line(line)
    path = cache_dir("oracle") / "summary.json"
    path.write_text(json.dumps({k: asdict(v) for k, v in _SUMMARY.rows.items()}, indent=2, default=str) + "\n")
    terminalreporter.write_line(f"(written to {path})")
