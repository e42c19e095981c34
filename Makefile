# Quick start: `make pipeline` (the main job) and `make test`. Both set everything up first.
.PHONY: setup pipeline test test-fast ui

.venv/.installed: pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh

setup: .venv/.installed

pipeline: setup
	bash scripts/pipeline.sh

test: setup
	.venv/bin/python -m pytest

test-fast: setup
	.venv/bin/python -m pytest -m "not slow"

ui: setup
	.venv/bin/python -m dcgan.tracking.ui --host 127.0.0.1 --port 5000
