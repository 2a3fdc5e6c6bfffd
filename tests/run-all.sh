#!/usr/bin/env bash
# The README's test command: installs everything the test suite needs on a
# fresh Debian machine, then runs the whole suite. Nothing is skipped: the
# integration tests need PostgreSQL, Chromium and the sekmet-fhir server, and
# fail (not skip) without them.
#
#   bash tests/run-all.sh [pytest args...]
#
# Needs root (or passwordless sudo) for apt-get and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SUDO=""
AS_PG="runuser -u postgres --"
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; AS_PG="sudo -u postgres"; fi
PY=${PYTHON:-python3}

echo "== system packages (PostgreSQL, Chromium)"
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== PostgreSQL"
PGVER=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
$SUDO pg_ctlcluster "$PGVER" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  $AS_PG psql -qtAc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
$AS_PG psql -qtAc "select 1 from pg_roles where rolname='her2cds'" | grep -q 1 \
  || $AS_PG psql -qc "create role her2cds login password 'her2cds'"
$AS_PG psql -qtAc "select 1 from pg_database where datname='her2cds_test'" | grep -q 1 \
  || $AS_PG psql -qc "create database her2cds_test owner her2cds"
export HER2CDS_TEST_POSTGRES_URL=${HER2CDS_TEST_POSTGRES_URL:-postgresql+psycopg://her2cds:her2cds@127.0.0.1:5432/her2cds_test}

echo "== Python environment (.venv)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
# A test database left by an earlier run of an older checkout is brought to this schema
# (a new, empty one is created at it): the suite never meets "out-of-date schema".
HER2CDS_DATABASE_URL="$HER2CDS_TEST_POSTGRES_URL" .venv/bin/her2-cds db upgrade

echo "== sekmet-fhir test server (its own virtualenv, .fhir-venv)"
[ -x .fhir-venv/bin/python ] || "$PY" -m venv .fhir-venv
[ -x .fhir-venv/bin/sekmet ] || .fhir-venv/bin/pip install -q sekmet-fhir==0.1.1
export HER2CDS_SEKMET_BIN="$ROOT/.fhir-venv/bin/sekmet"
export HER2CDS_CHROMIUM=${HER2CDS_CHROMIUM:-$(command -v chromium)}

echo "== tests"
exec .venv/bin/pytest "$@"
