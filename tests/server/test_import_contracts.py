"""The import contracts (pyproject.toml's [tool.importlinter], run by ``make check``) bite.

The layering itself is checked by lint-imports, not here. These tests prove the check works: an
upward import written into a copy of the source fails it. One thing lint-imports cannot see is
when an import runs: the engine and the media pipeline import vLLM, transformers and PyAV inside
functions, so that the API process stays free of them; the last test checks that at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"server": "videomodel_server", "operator": "videomodel_operator", "devtools": "videomodel_devtools"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the three packages and the contracts, which lint-imports keeps as they are."""
    root = tmp_path_factory.mktemp("tree")
    for folder, package in PACKAGES.items():
        shutil.copytree(ROOT / folder / package, root / folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", root / "pyproject.toml")
    kept = _lint(root)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    return root


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / folder) for folder in PACKAGES)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "upward", "broken"),
    [
        # The shared request types must not know the wire format (the old engine -> conversation -> api chain).
        (
            "server/videomodel_server/jobs.py",
            "from .api.chat import protocol as _upward",
            "videomodel_server.jobs is not allowed to import videomodel_server.api",
        ),
        # The chat service knows no wire format.
        (
            "server/videomodel_server/api/chat/service.py",
            "from . import protocol as _upward",
            "videomodel_server.api.chat.service is not allowed to import videomodel_server.api.chat.protocol",
        ),
        # Inside the media pipeline: the frame-sequence checks know nothing of the pool that runs them
        # (the old frames <-> pool loop).
        (
            "server/videomodel_server/media/frames.py",
            "from . import pool as _upward",
            "videomodel_server.media.frames is not allowed to import videomodel_server.media.pool",
        ),
        # The media pipeline knows nothing of the engine.
        (
            "server/videomodel_server/media/pipeline.py",
            "from .. import engine as _upward",
            "videomodel_server.media",
        ),
        # The operator's pure core knows nothing of the reconciler above it.
        (
            "operator/videomodel_operator/planning.py",
            "from . import reconciling as _upward",
            "videomodel_operator.planning is not allowed to import videomodel_operator.reconciling",
        ),
        # Sizing is given the serving contract; it never derives one (the old server <-> sizing loop).
        (
            "operator/videomodel_operator/rendering/sizing.py",
            "from .server import serving_contract as _upward",
            "videomodel_operator.rendering.sizing is not allowed to import videomodel_operator.rendering.server",
        ),
    ],
)
def test_an_upward_import_fails_lint_imports(tree: Path, module: str, upward: str, broken: str) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{upward}  # noqa\n")
    try:
        result = _lint(tree)
    finally:
        path.write_text(original)
    report = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "BROKEN" in report and broken in report, result.stdout


def test_the_api_process_loads_no_engine_or_decoder_at_import() -> None:
    """vLLM and transformers load when the engine starts; PyAV and Pillow only in decode workers."""
    code = (
        "import sys, videomodel_server.app, videomodel_server.wiring, videomodel_server.media_adapter, "
        "videomodel_server.media, videomodel_server.cli; "
        "print(','.join(m for m in ('vllm', 'torch', 'transformers', 'av', 'PIL', 'kopf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
