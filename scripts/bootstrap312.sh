#!/usr/bin/env bash
# Create or refresh .venv312/: a small Python 3.12 environment for the checks that start no engine
# (`make test312`: mypy for 3.12 and the engine-free tests). No vLLM, torch or FastAPI: only the
# packages named below, each at the version requirements/lock.txt pins (the lock is filtered, never
# restated), installed with --no-deps like .venv. Idempotent: skipped when the lock, this script and
# pyproject.toml are unchanged since the last successful run (stamp in .venv312/).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv312
LOCK=requirements/lock.txt
# What the engine-free tests and mypy import (FastAPI, uvicorn and prometheus-client only for their
# types), with everything those need: closed under their dependencies for Python 3.12 on Linux
# (`uv pip check` below fails if a name is missing).
NAMES="
pydantic pydantic-core annotated-types typing-extensions typing-inspection pyyaml numpy
kopf aiohttp aiohappyeyeballs aiosignal attrs frozenlist multidict propcache yarl idna
click iso8601 jsonpatch jsonpointer python-json-logger
kubernetes aiohttp-retry certifi durationpy oauthlib python-dateutil requests requests-oauthlib
charset-normalizer urllib3 websocket-client
kmock
kubernetes-validate jsonschema jsonschema-specifications referencing rpds-py importlib-resources packaging
cel-python google-re2 jmespath lark pendulum tzdata
av httpx httpcore h11 anyio pillow cryptography cffi pycparser opencv-python-headless
fastapi starlette annotated-doc uvicorn prometheus-client
pytest iniconfig pluggy pygments pytest-asyncio pytest-timeout pytest-xdist execnet hypothesis sortedcontainers
mypy mypy-extensions pathspec librt ast-serialize types-pyyaml
"

stamp=$VENV/.bootstrap-stamp
key=$(cat "$LOCK" scripts/bootstrap312.sh pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  exit 0
fi

start=$(date +%s)
# pyenv's 3.12 (PYENV_VERSION selects it behind the shim), else any python3.12 on PATH.
PY312=${PY312:-$(PYENV_VERSION=3.12.1 python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null \
  || python3.12 -c 'import sys; print(sys.executable)')}
uv_pin=$(grep -E '^uv==' "$LOCK")
[ -x "$VENV/bin/python" ] || "$PY312" -m venv --without-pip "$VENV"
UV=.venv/bin/uv   # the same uv the lock pins; .venv may not exist yet (make test312 alone)
if [ ! -x "$UV" ] || [ "$("$UV" --version | cut -d' ' -f2)" != "${uv_pin#uv==}" ]; then
  [ -x "$VENV/bin/uv" ] || { "$VENV/bin/python" -m ensurepip --default-pip >/dev/null &&
    "$VENV/bin/python" -m pip --isolated install --quiet "$uv_pin"; }
  UV=$VENV/bin/uv
fi

# The lock's lines for NAMES (names compared in normalized form); every name must be found.
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
awk -v names="$NAMES" '
  BEGIN { n = split(names, a, /[[:space:]]+/); for (i = 1; i <= n; i++) if (a[i] != "") want[a[i]] = 1 }
  /^[A-Za-z0-9]/ { split($0, p, "=="); k = tolower(p[1]); gsub(/[_.]+/, "-", k); if (k in want) { print; got[k] = 1 } }
  END { for (k in want) if (!(k in got)) { print "bootstrap312: not in the lock: " k > "/dev/stderr"; bad = 1 } exit bad }
' "$LOCK" > "$pins"

"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps -r "$pins"
"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
# The test and demo tooling (its own distribution, as in scripts/bootstrap.sh).
[ ! -f devtools/pyproject.toml ] || "$UV" pip install --quiet --python "$VENV/bin/python" --no-deps -e devtools/
"$UV" pip check --python "$VENV/bin/python"
echo "$key" > "$stamp"
echo "bootstrap312: done in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1) in $VENV" >&2
