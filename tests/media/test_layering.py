"""Layering: the media package pulls in no web framework or engine, and the API process never
loads FFmpeg or Pillow itself (they are imported only inside decode workers)."""

from __future__ import annotations

import subprocess
import sys


def test_media_imports_nothing_heavy() -> None:
    code = (
        "import sys, videomodel_server.media as m; "
        "bad = [n for n in ('fastapi', 'vllm', 'torch', 'transformers', 'av', 'PIL', 'kopf') if n in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
