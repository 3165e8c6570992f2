#!/usr/bin/env bash
# Set up the project's virtual environment on a fresh machine (idempotent).
#   bash scripts/setup.sh          runtime dependencies (requirements.lock)
#   bash scripts/setup.sh --dev    + test/lint tools (requirements-dev.lock)
# The venv lives in .venv; VENV=/path overrides. Reinstalls only when the lock
# file changed (a stamp file records its hash); uv's cache makes a rebuild fast.
set -euo pipefail
cd "$(dirname "$0")/.."

lock=requirements.lock
[ "${1:-}" = "--dev" ] && lock=requirements-dev.lock
venv=${VENV:-.venv}
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "setup: Python 3.11 is required (found $("$python" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
[ -x "$venv/bin/uv" ] || "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

stamp="$venv/.audioguard-$(basename "$lock").sha256"
want=$(sha256sum "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $lock into $venv"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$lock"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps -e .
  echo "$want" > "$stamp"
fi
# A venv moved or copied from elsewhere keeps entry points that name the old
# interpreter ("cannot execute: required file not found"): write them again.
if [ "$(head -1 "$venv/bin/audioguard" 2>/dev/null)" != "#!$(cd "$venv" && pwd)/bin/python" ]; then
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps --reinstall -e .
fi
echo "setup: $venv ready ($lock)"
