#!/usr/bin/env bash
# The GPU check on a machine without this project's venv (the lent GPU machine: torch, no pydantic,
# no network): installs the wheels carried in .gpu-carry/wheels, then runs benchmarks/gpu_check.py.
#   bash benchmarks/gpu_check.sh OUT        (see benchmarks/README.md for the carry step)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: bash benchmarks/gpu_check.sh OUT}"
if ! python -c 'import pydantic' 2>/dev/null; then
  [ -d .gpu-carry/wheels ] || { echo "gpu_check: pydantic is missing and .gpu-carry/wheels is not here: run 'make gpu-carry' first (benchmarks/README.md)" >&2; exit 1; }
  python -m pip install -q --no-index --no-deps --target .gpu-carry/site .gpu-carry/wheels/*.whl
  export PYTHONPATH="$PWD/.gpu-carry/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec python benchmarks/gpu_check.py "$out" "${@:2}"
