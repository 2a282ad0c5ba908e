#!/usr/bin/env bash
# The whole test suite: services up, .venv ready, lint, types, import layers, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1

echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy .
echo "== import layers"; .venv/bin/lint-imports
echo "== pytest"; .venv/bin/python -m pytest "$@"
