#!/usr/bin/env bash
# First README command: set everything up and run the demo (SQLite, national site tree, worker and
# console in one process) on http://127.0.0.1:${ECOCLOUD_PORT:-8080}/. Options go to 'ecocloud-ops demo'
# (e.g. --with-dr: also the DR lab, a replicated PostgreSQL pair to drill).
set -euo pipefail
cd "$(dirname "$0")/.."
# --with-dr (the DR lab) needs PostgreSQL's server binaries, sshd and arping: setup installs them.
if [[ " $* " == *" --with-dr "* ]]; then bash scripts/setup.sh --with-dr; else bash scripts/setup.sh; fi
export ECOCLOUD_INSTANCE_DIR=${ECOCLOUD_INSTANCE_DIR:-$PWD/instance}
exec .venv/bin/ecocloud-ops demo "$@"
