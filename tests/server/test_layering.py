"""Layering: the pure core of the server imports no web framework, engine or ML stack."""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "videomodel_server.settings",
    "videomodel_server.errors",
    "videomodel_server.conversation",
    "videomodel_server.admission",
    "videomodel_server.responses",
    "videomodel_server.checkpoint",
    "videomodel_server.serving",
    "videomodel_server.engine",
    "videomodel_server.loading",
    "videomodel_server.media_adapter",
]
HEAVY = ["fastapi", "starlette", "vllm", "torch", "transformers", "uvicorn", "av"]


def test_pure_core_imports_nothing_heavy() -> None:
    code = f"import sys; import {', '.join(PURE)}; print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
