#!/usr/bin/env bash
# Create or refresh .venv/ from requirements/lock.txt. Idempotent: skipped when the lock, this
# script and pyproject.toml are unchanged since the last successful run (stamp in .venv/).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
UV_VERSION=0.13.9
stamp=.venv/.bootstrap-stamp
key=$(cat requirements/lock.txt scripts/bootstrap.sh pyproject.toml | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  exit 0
fi

echo "bootstrap: building .venv (first run downloads about 6 GB; later runs are skipped)" >&2
start=$(date +%s)
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# --isolated: ignore machine-wide pip config (local wheel folders, constraint files).
.venv/bin/python -m pip --isolated install --quiet "uv==$UV_VERSION"
# uv reads no pip config either; the lock is complete, so no resolution happens here.
.venv/bin/uv pip install --python .venv/bin/python --no-deps -r requirements/lock.txt
.venv/bin/uv pip install --python .venv/bin/python --no-deps -e .
.venv/bin/uv pip install --python .venv/bin/python --no-deps -e devtools/  # test and demo tooling, not in the wheel
echo "$key" > "$stamp"
echo "bootstrap: done in $(( $(date +%s) - start )) s, $(du -sh .venv | cut -f1) in .venv" >&2
