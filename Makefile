# Two commands do everything on a fresh machine with Python >= 3.10:
#   make train [ARGS="agent=consistency_bc seed=1"]   set up, then train on the embedded default
#   make test  [ARGS="-k resume"]                      set up, then run the test suite
#   make lint                                          ruff (pyproject's rule set) and mypy on cmrl/
# Set-up: a virtual environment in .venv, torch pinned FIRST (an unpinned torch pulls gigabytes of
# CUDA wheels on CPU machines), then cmrl with its test, sweep and report extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.cmrl-installed
ARGS ?=

.PHONY: setup train test lint benchmark
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,sweep,report]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

benchmark: $(STAMP)
	$(PY) scripts/benchmark.py $(ARGS)
