#!/usr/bin/env bash
# Run the SMART app and the hooks against the real tools, built from sources you supply:
#   tests/real_tools/run.sh --launcher ~/src/smart-launcher-v2 --sandbox ~/src/cds-hooks-sandbox [--out DIR] [--rebuild]
# Needs Node 20 + npm (npm ci fetches the tools' npm packages, nothing else is fetched), Debian's Chromium,
# the repo venv (.venv, with the [test] extra) and sekmet-fhir (.fhir-venv or HER2CDS_SEKMET_BIN).
# Not part of the default CI run (it needs npm and two front-end builds). Screenshots go to --out.
# Each step asserts what a user must see (drive.py); exit status 1 when any does not hold.
# PYTHON=... picks the interpreter (default .venv/bin/python); the service is this checkout's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; repo="$(cd "$here/../.." && pwd)"
launcher="" sandbox="" out="$repo/test-artifacts/real-tools" rebuild=0
while [ $# -gt 0 ]; do
  case "$1" in
    --launcher) launcher="$(cd "$2" && pwd)"; shift 2 ;;
    --sandbox) sandbox="$(cd "$2" && pwd)"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$launcher" ] && [ -n "$sandbox" ] || { sed -n 2,8p "$0" >&2; exit 2; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "Node 20 or later needed" >&2; exit 2; }
mkdir -p "$out"

build() {  # dir, build command, product that proves it was built
  local dir="$1" cmd="$2" product="$3"
  if [ "$rebuild" = 1 ] || [ ! -d "$dir/node_modules" ]; then
    (cd "$dir" && nice npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ "$rebuild" = 1 ] || [ ! -e "$dir/$product" ]; then
    # `env` runs the command's leading VAR=value words as assignments: `nice VAR=x npm …` would
    # make nice try to execute "VAR=x" (exit 127, issue 22).
    (cd "$dir" && eval "nice env $cmd")
  fi
}
echo "== building the SMART App Launcher ($launcher)"
build "$launcher" "GENERATE_SOURCEMAP=false CI=false npm run build" build/index.html
echo "== building the CDS Hooks sandbox ($sandbox)"
build "$sandbox" "npm run build" build/app.bundle.js

python="${PYTHON:-$repo/.venv/bin/python}"
exec "$python" "$here/drive.py" --launcher "$launcher" --sandbox "$sandbox" --out "$out"
