"""Pieces of chat requests that many tests send."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any


def data_url(path: Path, mime: str = "video/mp4") -> str:
    """The file at ``path`` inline, as a ``data:`` URL."""
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def video_part(url: str) -> dict[str, Any]:
    """An OpenAI-style ``video_url`` content part."""
    return {"type": "video_url", "video_url": {"url": url}}
