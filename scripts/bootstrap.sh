#!/usr/bin/env bash
# Create .venv and install the project with its dev tools; a no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.switchover-installed
wanted=$(cat pyproject.toml requirements.lock scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "bootstrap: installing Switchover and its dependencies into .venv"
  # Every dependency at the version and hash of the lock (README: how to refresh it); torch is
  # pinned there to the CPU build, so pip never picks a CUDA one of gigabytes.
  .venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$wanted" > "$stamp"
fi
