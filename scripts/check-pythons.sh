#!/usr/bin/env bash
# The Pythons the project promises (pyproject.toml's requires-python), checked without running the
# whole suite twice:
#  1. vermin reads src/, stages/, benchmarks/ and tests/ and fails if any of it needs a newer Python
#     than the floor (a stdlib helper of a later release, new syntax);
#  2. where an interpreter of the floor's version is on this machine (python3.10 on PATH, or pyenv's),
#     the smoke tests run on it, in .venv-<version> built by scripts/setup.sh: the code that differs
#     between Pythons (archives, digests) and a tiny `dvc repro` through every stage.
# The full suite runs on the interpreter that built .venv (`make test`; CI: Debian's /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOOR=$(sed -n 's/^requires-python = ">=\([0-9.]*\)"$/\1/p' pyproject.toml)

echo "check-pythons: vermin, the oldest Python each file needs, against the floor $FLOOR"
.venv/bin/vermin --no-tips --violations -t="$FLOOR-" src stages benchmarks tests

floor_python=""
for candidate in "python$FLOOR" "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$FLOOR".*/bin/python3; do
  if "$candidate" -c 'import sys' 2>/dev/null; then floor_python=$(command -v "$candidate"); break; fi
done
if [ -z "$floor_python" ]; then
  echo "check-pythons: no Python $FLOOR on this machine (python$FLOOR or pyenv's): its smoke tests are skipped."
  exit 0
fi
echo "check-pythons: smoke tests on $("$floor_python" --version) ($floor_python), in .venv-$FLOOR"
PYTHON="$floor_python" VENV=".venv-$FLOOR" bash scripts/setup.sh
".venv-$FLOOR/bin/python" -m pytest -m smoke -p no:cacheprovider
