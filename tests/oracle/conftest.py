"""Oracle bookkeeping: the largest under- and over-estimate each oracle check saw.

Every comparison of a budget prediction with a real count goes through ``oracle_record``; the
terminal summary prints the extremes (no ``-s`` needed; tests/harness/reports.py, also under
xdist) and they are also written to ``<cache>/oracle/summary.json`` for the record.
"""

from __future__ import annotations

import pytest

from tests.harness import reports

from .summary import OracleSummary

_SUMMARY = reports.keep("oracle", OracleSummary())


@pytest.fixture(scope="session")
def oracle_record() -> OracleSummary:
    return _SUMMARY
