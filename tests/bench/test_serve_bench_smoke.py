"""`make bench-serve` and `make bench-floor` still run and report: their smoke modes.

The serve bench's smoke starts this server once (tiny Qwen2-VL, no warm-up run, no `vllm serve`)
and runs every part once, small: 2 requests at concurrency 1, one overload wave, 3 repeats. It
asserts only that each part ran and reported; no timing is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_SMOKE": "1", "BENCH_OUT": str(out)}
    return subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_floor_bench_smoke(tmp_path: Path) -> None:
    run = _run("bench.floor_bench", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "floor_bench.json").read_text())
    (row,) = report["rows"]
    assert row["full_frames"] > row["keyframes"] > 0
    assert (tmp_path / "floor_bench.png").read_bytes().startswith(b"\x89PNG")
    assert "| clip |" in (tmp_path / "floor_bench.md").read_text()


@pytest.mark.engine
def test_serve_bench_smoke(tmp_path: Path) -> None:
    run = _run("bench.serve_bench", tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "serve_bench.json").read_text())
    (level,) = report["e2e"]
    assert level["server"] == "videomodel" and level["requests"] == 2 and level["rps"] > 0
    overload = report["overload"]
    assert overload["sent"] == overload["accepted"] + overload["rejected"] + overload["other"]
    assert {"reject_p50_ms", "rejected_gets", "rejected_bytes", "videos_decoded"} <= set(overload)
    (repeated,) = report["repeated"]
    assert repeated["same URL"]["first_s"] > 0 and len(repeated["same bytes, new URLs"]["later_s"]) == 2
    assert (tmp_path / "serve_bench.png").read_bytes().startswith(b"\x89PNG")
    assert "## End to end" in (tmp_path / "serve_bench.md").read_text()
