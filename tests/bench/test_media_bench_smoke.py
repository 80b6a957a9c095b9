"""`make bench` still runs and reports: its smoke mode (one 2 s clip, once, each path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_media_bench_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_SMOKE": "1", "BENCH_OUT": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "bench.media_bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "media_bench.json").read_text())
    assert {row["method"] for row in report["rows"]} == {"videomodel", "vLLM loader", "qwen-vl-utils"}
    assert all(row["load_s"] > 0 and row["frames"] > 0 for row in report["rows"])
    assert report["repeated"]["hits"][1:] == [True] * 4
    assert (tmp_path / "media_bench.png").read_bytes().startswith(b"\x89PNG")
    assert "| clip |" in (tmp_path / "media_bench.md").read_text()
