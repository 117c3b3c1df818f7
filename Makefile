# Quick start: `make demo` (set up, then compress and decompress the bundled photo with
# the bundled model) and `make test` (set up, then run the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): each peaks at ~7 GiB, so not one per core on big hosts.
TEST_WORKERS ?= 2

.PHONY: setup demo test lint

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m eval.demo

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
