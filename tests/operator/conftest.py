"""Fixtures of the operator tests (their helpers are tests/harness/operator.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.operator import FEASIBLE_EXAMPLES


@pytest.fixture(params=FEASIBLE_EXAMPLES, ids=lambda p: p.name)
def example_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path
