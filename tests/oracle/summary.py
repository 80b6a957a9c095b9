"""The oracle's record: the largest under- and over-estimate each comparison of a budget
prediction with a real count saw (kept by ``oracle_record``, printed by the oracle conftest)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

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
    title = "budget oracle: predicted vs real token counts"

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

    def merge(self, other: OracleSummary) -> None:
        """Fold in what another process recorded (an xdist worker's summary)."""
        for check, theirs in other.rows.items():
            row = self.rows.setdefault(check, Extremes())
            row.checks += theirs.checks
            row.largest_under = max(row.largest_under, theirs.largest_under)
            row.largest_over = max(row.largest_over, theirs.largest_over)
            if theirs.largest_over_pct > row.largest_over_pct:
                row.largest_over_pct, row.worst_case = theirs.largest_over_pct, theirs.worst_case

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

    def summary_lines(self) -> list[str]:
        """The extremes, also written to ``<cache>/oracle/summary.json``; none when nothing was recorded."""
        if not self.rows:
            return []
        path = cache_dir("oracle") / "summary.json"
        path.write_text(json.dumps({k: asdict(v) for k, v in self.rows.items()}, indent=2, default=str) + "\n")
        return [*self.lines(), f"(written to {path})"]
