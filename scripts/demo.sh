#!/usr/bin/env bash
# The demo command (README): installs what is missing, then runs scripts/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/bootstrap.sh | tail -n 1)"
export PYTHONPATH="$PWD/client:$PWD/controller:$PWD"
exec "$PY" scripts/demo.py "$@"
