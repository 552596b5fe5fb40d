#!/usr/bin/env bash
# Second README command: set everything up and run the whole test suite — lint, types, the unit and
# integration tests on SQLite and again on PostgreSQL, the browser tests (once, on PostgreSQL) and
# the smoke test of the default product (once, on SQLite). Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh --test
export PATH=$PWD/.venv/bin:$PATH
mkdir -p test-artifacts
echo "==> ruff"; ruff check src tests
echo "==> mypy"; mypy src
PG_URL=${ECOCLOUD_TEST_PG_URL:-postgresql+psycopg://ecocloud:ecocloud@127.0.0.1:5432/ecocloud_test}
status=0
echo "==> tests on SQLite (plus the default-product smoke test)"
ECOCLOUD_TEST_DATABASE_URL= pytest -m "not e2e and not lab" -p no:cacheprovider --junitxml=test-artifacts/sqlite.xml "$@" || status=1
echo "==> tests on PostgreSQL (plus the network lab and browser tests)"
ECOCLOUD_TEST_DATABASE_URL=$PG_URL pytest -m "not smoke" -p no:cacheprovider --junitxml=test-artifacts/postgresql.xml "$@" || status=1
echo "==> test command finished in $(( $(date +%s) - start )) s with status $status"
exit $status
