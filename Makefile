# Quick start: `make pipeline` (the main job) and `make test`. Both set everything up first.
.PHONY: setup pipeline test test-fast check-pythons ui gpu-carry gpu-check

# Runs every time: it checks the interpreter (PYTHON=..., else python3) and rebuilds .venv when
# another Python made it; it installs only when pyproject.toml, constraints.txt or itself changed.
setup:
	bash scripts/setup.sh

pipeline: setup
	bash scripts/pipeline.sh

test: setup
	.venv/bin/python -m pytest

test-fast: setup
	.venv/bin/python -m pytest -m "not slow"

# The Pythons pyproject.toml promises: vermin against the floor, and the smoke tests on the floor's
# interpreter where this machine has one (scripts/check-pythons.sh).
check-pythons: setup
	bash scripts/check-pythons.sh

ui: setup
	.venv/bin/python -m dcgan.servers.ui --host 127.0.0.1 --port 5000

# The GPU check (benchmarks/README.md): what the GPU machine needs, then the check itself there.
GPU_OUT ?= reports/gpu
PY312_WHEELS = pydantic==$(shell .venv/bin/python -c 'import pydantic; print(pydantic.VERSION)') \
	pydantic-core==$(shell .venv/bin/python -c 'import pydantic_core; print(pydantic_core.__version__)') \
	annotated-types typing-inspection typing-extensions

gpu-carry: setup
	mkdir -p .gpu-carry/fashion-mnist .gpu-carry/wheels .gpu-carry/eval
	cp /usr/share/datasets/fashion-mnist/*.gz .gpu-carry/fashion-mnist/
	.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux_2_17_x86_64 -d .gpu-carry/wheels $(PY312_WHEELS)
	# A study's scores (gpu_check.py --study): the domain classifier and the test split, made here.
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/dvc repro classifier  # the stages run the venv's python
	cp models/classifier.pt data/eval/test.pt .gpu-carry/eval/
	du -sh .gpu-carry

gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_OUT)
