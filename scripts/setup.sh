#!/usr/bin/env bash
# Installs what EcoCloud Ops needs on a Debian 12 machine (as root): Debian packages, a virtual
# environment with the Python packages, the console's front-end assets from the npm registry, and
# the compiled translations. Idempotent: a second run only checks.
#   scripts/setup.sh          the platform
#   scripts/setup.sh --with-dr  plus the DR lab (PostgreSQL server binaries, sshd, arping)
#   scripts/setup.sh --with-cloud  plus the OpenStack lab (RabbitMQ, sshd; its own venv is made at first start)
#   scripts/setup.sh --test   the platform plus what the test suite needs (chromium, pdftotext, PostgreSQL, the DR lab)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WITH_TEST=0
WITH_DR=0
WITH_CLOUD=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1; WITH_DR=1; WITH_CLOUD=1 ;;
    --with-cloud) WITH_CLOUD=1 ;;
    --with-dr) WITH_DR=1 ;;
  esac
done
log() { printf '\033[1;32m==>\033[0m %s\n' "$*"; }

# Debian packages ------------------------------------------------------------------------------
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$(command -v "$cand"); break
    fi
  done
fi
[[ -n "$PY" ]] || need+=(python3 python3-venv)
if [[ -n "$PY" ]] && ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then need+=(python3-venv); fi
command -v npm >/dev/null || need+=(nodejs npm)
# The demo network: namespaces (iproute2), SNMP agents and tools (net-snmp), fast ICMP (fping).
command -v ip >/dev/null || need+=(iproute2)
[[ -x /usr/sbin/snmpd ]] || need+=(snmpd)
command -v snmpget >/dev/null || need+=(snmp)
command -v fping >/dev/null || need+=(fping)
# Reports: PDF rendering (WeasyPrint needs Pango) with CJK fonts embedded.
have_pkg libpango-1.0-0 || need+=(libpango-1.0-0)
have_pkg libpangoft2-1.0-0 || need+=(libpangoft2-1.0-0)
have_pkg fonts-noto-cjk || need+=(fonts-noto-cjk)
if (( WITH_DR )); then
  # The DR lab: a PostgreSQL pair in namespaces reached by Ansible over SSH; arping moves the service address.
  [[ -x /usr/lib/postgresql/15/bin/postgres ]] || need+=(postgresql)
  [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
  command -v ssh >/dev/null || need+=(openssh-client)
  command -v arping >/dev/null || need+=(iputils-arping)
fi
if (( WITH_CLOUD )); then
  # The OpenStack lab runs its own RabbitMQ node on loopback (the package's own service is not started);
  # sshd serves the stand-in guests the post-boot playbook configures.
  [[ -x /usr/sbin/rabbitmq-server ]] || need+=(rabbitmq-server)
  [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
  command -v ssh >/dev/null || need+=(openssh-client)
fi
if (( WITH_TEST )); then
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  # pdftotext reads the reports' PDFs back.
  command -v pdftotext >/dev/null || need+=(poppler-utils)
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  # The network lab: sshd per site namespace (the DR lab's packages above), sshpass and ping for the tests.
  command -v sshpass >/dev/null || need+=(sshpass)
  command -v ping >/dev/null || need+=(iputils-ping)
fi
if (( ${#need[@]} )); then
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Install without starting the packages' own services (snmpd, sshd): the platform runs its own.
  had_policy=0; [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  (( had_policy )) || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  (( had_policy )) || rm -f /usr/sbin/policy-rc.d
fi
[[ -n "$PY" ]] || PY=$(command -v python3.11 || command -v python3)

# Python ---------------------------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $PY"
  "$PY" -m venv .venv
fi
extra=""
(( WITH_TEST )) && extra="[test]"
stamp=".venv/.installed$extra"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  log "installing Python packages"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".$extra"
  touch "$stamp"
else
  .venv/bin/pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || .venv/bin/pip install -q -e ".$extra"
fi

# Front-end assets from the npm registry (served locally: the console works offline) ------------
VENDOR=src/ecocloud_ops/web/static/vendor
if [[ ! -f "$VENDOR/chart.js/chart.umd.min.js" || frontend/package-lock.json -nt "$VENDOR/chart.js/chart.umd.min.js" ]]; then
  log "installing front-end assets"
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  mkdir -p "$VENDOR/bootstrap"
  cp frontend/node_modules/bootstrap/dist/css/bootstrap.min.css "$VENDOR/bootstrap/"
  cp frontend/node_modules/bootstrap/dist/js/bootstrap.bundle.min.js "$VENDOR/bootstrap/"
  cp frontend/node_modules/bootstrap/LICENSE "$VENDOR/bootstrap/LICENSE"
  mkdir -p "$VENDOR/chart.js"
  cp frontend/node_modules/chart.js/dist/chart.umd.min.js "$VENDOR/chart.js/"
  cp frontend/node_modules/chart.js/LICENSE.md "$VENDOR/chart.js/LICENSE.md"
fi

# Translations ---------------------------------------------------------------------------------
.venv/bin/pybabel compile -d src/ecocloud_ops/web/translations >/dev/null

# PostgreSQL for the test suite ----------------------------------------------------------------
if (( WITH_TEST )); then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [[ -n "$ver" ]] && ! pg_lsclusters -h 2>/dev/null | awk '{print $4}' | grep -q online; then
    log "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  fi
  for _ in $(seq 1 30); do
    runuser -u postgres -- psql -qtAc 'select 1' >/dev/null 2>&1 && break; sleep 1
  done
  runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='ecocloud'" | grep -q 1 ||
    runuser -u postgres -- psql -qc "CREATE ROLE ecocloud LOGIN SUPERUSER PASSWORD 'ecocloud'" >/dev/null
fi
log "set-up complete in $ROOT"
