#!/usr/bin/env bash
# First README command: set everything up and run the demo (SQLite, national site tree, worker and
# console in one process) on http://127.0.0.1:${ECOCLOUD_PORT:-8080}/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ECOCLOUD_INSTANCE_DIR=${ECOCLOUD_INSTANCE_DIR:-$PWD/instance}
exec .venv/bin/ecocloud-ops demo "$@"
