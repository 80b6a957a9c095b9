"""Fixtures of the image tests (their helpers are tests/harness/shipping.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.shipping import DOCKERFILES


@pytest.fixture(params=DOCKERFILES, ids=lambda p: p.parent.name)
def dockerfile_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path
