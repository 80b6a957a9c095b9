"""Where generated artefacts (tiny checkpoints, synthetic videos) are cached: outside git."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """``$VIDEOMODEL_CACHE/<kind>`` or ``<repo>/.cache/<kind>``, created on first use."""
    root = os.environ.get("VIDEOMODEL_CACHE")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / ".cache"
    path = base / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
