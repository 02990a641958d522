# Tether: every user-facing command. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
BOARD ?= esp32
PYTEST_ARGS ?=

.PHONY: help venv test lint format demo bench clean

help:
	@echo "make test        run every test (CPython + MicroPython unix port)"
	@echo "make demo        run the firmware on the unix port against the local cloud emulator"
	@echo "make lint        ruff format --check + ruff check"
	@echo "make bench       benchmarks (memory, latency, throughput, size)"

# The virtual environment is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff format --check lib tests tools firmware boards manifest.py
	$(BIN)/ruff check lib tests tools firmware boards manifest.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check lib tests tools firmware boards manifest.py
	$(BIN)/ruff check lib tests tools firmware boards manifest.py

format: $(STAMP)
	$(BIN)/ruff format lib tests tools firmware boards manifest.py
	$(BIN)/ruff check --fix lib tests tools firmware boards manifest.py

# The local cloud emulator + the firmware on the unix port (docs/emulator.md). The emulator
# creates the test PKI (tools/pki.py) under var/demo/pki on first run.
# DEMO_SECONDS=N stops after N seconds (exit status 1 if the board never connected).
demo: $(STAMP)
	$(BIN)/python -m tools.demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
