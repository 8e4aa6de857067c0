#!/usr/bin/env bash
# The test command (README): installs what is missing, builds the local cluster (cached), starts it,
# runs the whole test suite against it, and stops it again. Extra arguments go to pytest,
# e.g. `scripts/test.sh tests/unit` or `scripts/test.sh -m "not realnode"`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/bootstrap.sh | tail -n 1)"
export PYTHONPATH="$PWD/client:$PWD/controller:$PWD"

"$PY" -m devcluster down >/dev/null 2>&1 || true   # leftovers of an interrupted earlier run
"$PY" -m devcluster up
trap '"$PY" -m devcluster down' EXIT
"$PY" -m devcluster status

"$PY" -m pytest -p no:cacheprovider -ra "$@"
