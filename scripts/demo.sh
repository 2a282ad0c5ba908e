#!/usr/bin/env bash
# The demo on embedded defaults: simulated API and self-hosted models, SQLite, in-process worker.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/switchover demo "$@"
