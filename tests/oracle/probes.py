"""Running one oracle probe (``python -m tests.oracle.<probe> <family>``) in a process of its own.

A probe builds a vLLM engine or processor from the plan and prints one ``RESULT {json}`` line; a
fresh process keeps vLLM's global state out of the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from videomodel_server.budget import Family

REPO = Path(__file__).resolve().parents[2]


def run_probe(probe: str, family: Family, tiny_model_dir: Any, timeout: float) -> tuple[dict[str, Any], str]:
    """The probe's result and everything it printed (stdout, then stderr)."""
    tiny_model_dir(family)  # build (or find) the checkpoint before the probe's clock starts
    proc = subprocess.run(
        [sys.executable, "-m", f"tests.oracle.{probe}", family.value],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"probe failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return dict(json.loads(lines[-1].removeprefix("RESULT "))), proc.stdout + proc.stderr
