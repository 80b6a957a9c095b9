"""Fixtures of the server tests: a media directory, a loopback media server, the prediction oracle."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.process import ServerProcess
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.budget import FAMILIES, Family, VideoBudget, price_video

from .media_server import MediaServer


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


def data_url(path: Path, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def video_part(url: str) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}}


def predicted_video_tokens(family: Family, spec: VideoSpec, budget: VideoBudget) -> int:
    """What the budget module says one video of ``spec`` costs under ``budget`` (qwen-vl-utils rules)."""
    price = price_video(
        budget,
        FAMILIES[family],
        total_frames=round(spec.seconds * spec.fps),
        source_fps=spec.fps,
        height=spec.height,
        width=spec.width,
    )
    return price.tokens


@pytest.fixture(scope="session")
def video_file() -> Callable[..., Path]:
    def build(**fields: Any) -> Path:
        return make_video(VideoSpec(**fields))

    return build


def family_budget(family: Family) -> VideoBudget:
    """The small budget of the per-family engine tests: 12 s at 2 fps, 12 frames of 4-48 tokens' pixels."""
    factor = FAMILIES[family].factor
    return VideoBudget(
        max_seconds=12,
        fps=2,
        max_frames=12,
        min_pixels=4 * factor * factor,
        max_pixels=48 * factor * factor,
        max_prompt_tokens=128,
        max_output_tokens=32,
    )


FAMILY_BUDGETS = {family: family_budget(family) for family in Family}


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
