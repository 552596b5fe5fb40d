#!/usr/bin/env bash
# First README command: set everything up and run the demo (SQLite, national site tree, worker and
# console in one process) on http://127.0.0.1:${ECOCLOUD_PORT:-8080}/. Options go to 'ecocloud-ops demo'
# (e.g. --with-dr: also the DR lab, a replicated PostgreSQL pair to drill; --with-cloud: also the
# OpenStack lab as the three resource pools).
set -euo pipefail
cd "$(dirname "$0")/.."
# --with-dr (the DR lab) needs PostgreSQL's server binaries, sshd and arping; --with-cloud (the OpenStack
# lab) needs RabbitMQ and sshd: setup installs them.
flags=()
[[ " $* " == *" --with-dr "* ]] && flags+=(--with-dr)
[[ " $* " == *" --with-cloud "* ]] && flags+=(--with-cloud)
bash scripts/setup.sh "${flags[@]}"
export ECOCLOUD_INSTANCE_DIR=${ECOCLOUD_INSTANCE_DIR:-$PWD/instance}
exec .venv/bin/ecocloud-ops demo "$@"
