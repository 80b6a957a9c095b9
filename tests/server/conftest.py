"""Fixtures of the server tests: a media directory and its loopback server, videos, a real server per family."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import FAMILY_BUDGETS, MediaServer, ServerProcess
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.budget import Family

# data_url, video_part and predicted_video_tokens are the harness's; they are re-exported here only for
# tests/server/test_engine_*.py, test_features_engine.py and tests/operator/test_rendered_server.py
# until those import from tests.harness.


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory served over loopback HTTP and allowed for file:// URLs (copies, no symlinks)."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def media_server(media_root: Path) -> Iterator[MediaServer]:
    with MediaServer(media_root) as server:
        yield server


@pytest.fixture(scope="session")
def publish(media_root: Path) -> Callable[[Path, str], str]:
    """Copy a file into the media root under ``name``; return its path relative to the root."""

    def put(source: Path, name: str) -> str:
        shutil.copyfile(source, media_root / name)
        return name

    return put


@pytest.fixture(scope="session")
def video_file() -> Callable[..., Path]:
    def build(**fields: Any) -> Path:
        return make_video(VideoSpec(**fields))

    return build


@pytest.fixture(scope="session", params=list(Family), ids=lambda f: f.value)
def family_server(
    request: pytest.FixtureRequest, tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Family, ServerProcess]]:
    """One real server per family on :data:`FAMILY_BUDGETS`, shared by every module that asks.

    Session-scoped and parametrized: pytest runs all tests of one family before starting the next
    family's server, so one engine is up at a time and each starts once per run.
    """
    family: Family = request.param
    log_dir = tmp_path_factory.mktemp(family.value)
    with ServerProcess.tiny(tiny_model_dir(family), family, FAMILY_BUDGETS[family], log_dir).serving() as proc:
        yield family, proc
