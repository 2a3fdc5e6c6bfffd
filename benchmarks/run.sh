#!/usr/bin/env bash
# One command for the benchmark: installs what it needs (wrk from Debian, the
# bench extra into .venv), then runs it. Extra arguments go to benchmarks.run
# (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v wrk >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[bench]'
exec .venv/bin/python -m benchmarks.run "$@"
