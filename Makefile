# Tether: every user-facing command. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
BOARD ?= esp32
PYTEST_ARGS ?=

.PHONY: help venv deps test lint format demo bench clean

help:
	@echo "make demo [CLOUD=azure]   the firmware on the unix port against the local cloud emulator"
	@echo "make test                 every test (CPython + MicroPython unix port), after ruff"
	@echo "make lint | format        ruff format --check + ruff check | fix them"
	@echo "make bench                every benchmark, both halves below (docs/performance.md, ~25 min)"
	@echo "make bench-core           the Arduino client: memory, latency, throughput, size; blocks; flash"
	@echo "make bench-clouds         per cloud: heap, RSS, start-up, rates, against the official SDKs"
	@echo "make soak                 random faults for SOAK_SECONDS (600); must lose 0 values"
	@echo "make mpy BOARD=esp32 [CLOUDS=a,b] [CERTAUTH=1]   .mpy bundle for a board (esp32, portenta, nano_rp2040)"
	@echo "make deploy BOARD=.. PORT=.. [CERTAUTH=0|1]   copy bundle (the settings' cloud), settings and app with mpremote"
	@echo "make firmware BOARD=.. MPY_DIR=.. [CLOUDS=a,b] [CERTAUTH=1]  an image with Tether frozen in (BOARD=unix too)"
	@echo "                          CERTAUTH=1: + certificate auth (key/cert files, PEM, SE05x; 13 KB flash)"
	@echo "make simboard | simboard-stop  the unix port behind a pty, driven like a board"
	@echo "make venv | clean         create / remove the virtual environment"

# Debian packages a target needs, installed when missing (apt-get as root, else `sudo -n`,
# else it stops with the command to run); one dpkg-query when all are there. `make test`
# and `make demo` set the profile; every other target only needs what .venv needs.
DEPS_PROFILE ?= venv
test: DEPS_PROFILE = test
demo: DEPS_PROFILE = demo
deps:
	@$(PYTHON) tools/ensure_deps.py $(DEPS_PROFILE)

# The virtual environment is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml | deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff format --check lib tests tools firmware boards bench examples manifests manifest.py
	$(BIN)/ruff check lib tests tools firmware boards bench examples manifests manifest.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check lib tests tools firmware boards bench examples manifests manifest.py
	$(BIN)/ruff check lib tests tools firmware boards bench examples manifests manifest.py

format: $(STAMP)
	$(BIN)/ruff format lib tests tools firmware boards bench examples manifests manifest.py
	$(BIN)/ruff check --fix lib tests tools firmware boards bench examples manifests manifest.py

# The local cloud emulator + the firmware on the unix port (docs/emulator.md). The emulator
# creates the test PKI (tools/pki.py) under var/demo/pki on first run.
# DEMO_SECONDS=N stops after N seconds (exit status 1 if the board never connected).
# CLOUD=azure runs the Azure variant instead (examples/azure_firmware/demo.py: DPS, hub,
# twin, a method, then a reboot that skips DPS), against the emulator's Azure plug-in.
CLOUD ?= arduino
demo: $(STAMP)
ifeq ($(CLOUD),azure)
	$(BIN)/python examples/azure_firmware/demo.py $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))
else
	$(BIN)/python -m tools.demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))
endif

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache

# --- benchmarks (docs/performance.md) -------------------------------------------------------
# Memory, latency, throughput, start-up, size and loop stalls on the unix port against the
# local emulator; prints one table and writes bench/results.json. Never fails on speed.
# BENCH_ARGS: e.g. --runs 3, --quick (seconds, for a try), --no-massif, --markdown.
# Then the flash each component adds per board (bench/flash.py; with MPY_DIR=<MicroPython
# checkout> and arm-none-eabi-gcc also frozen into a real 32-bit qemu image).
# `make bench` runs both halves: bench-core (the Arduino client, the building blocks, flash,
# qemu) and bench-clouds (each cloud's heap figures and its SDK comparison), ~25 min.
BENCH_ARGS ?=
.PHONY: bench bench-core
bench: bench-core bench-clouds

bench-core: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.flash $(if $(MPY_DIR),--mpy-dir $(MPY_DIR))
	$(if $(MPY_DIR),MPY_DIR=$(MPY_DIR) $(BIN)/python -m bench.qemu --mpy-dir $(MPY_DIR))
	$(if $(MPY_DIR),MPY_DIR=$(MPY_DIR) $(BIN)/python -m pytest -q tests/qemu_heap_check.py)

# Per cloud, against its emulator (and the official SDK where there is one): smallest heap
# on the unix port, RSS, start-up, messages/s, round trips. Minutes each; one table each.
.PHONY: bench-clouds
bench-clouds: $(STAMP)
	$(BIN)/python -m bench.core_memory
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.azure_memory
	$(BIN)/python -m bench.azure_vs_sdk
	$(BIN)/python -m bench.akenza
	$(BIN)/python -m bench.sap
	$(BIN)/python -m bench.astarte

# --- firmware: .mpy bundles, deploy, frozen images, simulated board -----------------------
# BOARD is case-insensitive with short forms (esp32, portenta, nano, nano_rp2040); the one
# mapping lives in tools/boards.py. Details: docs/boards.md.
# CLOUDS=a,b and CERTAUTH=1 (certificate auth: key/cert files, PEM, the SE05x; boards leave
# it out by default, deploy adds it when the settings use it) reach tools.bundle from the
# environment.
PORT ?=
SETTINGS ?= settings.json
APP ?= app.py
MPY_DIR ?=
SIMBOARD_DIR ?= build/simboard
.PHONY: mpy deploy firmware simboard simboard-stop

mpy: $(STAMP)
	$(BIN)/python -m tools.bundle build $(BOARD)

deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make BOARD=$(BOARD) deploy PORT=/dev/ttyUSB0 [SETTINGS=settings.json APP=app.py RESUME=1]"; exit 2; }
	$(BIN)/python -m tools.bundle deploy $(BOARD) --port $(PORT) --settings $(SETTINGS) --app $(APP) $(if $(RESUME),--resume)

firmware: $(STAMP)
	@test -n "$(MPY_DIR)" || { echo "usage: make BOARD=$(BOARD) firmware MPY_DIR=/path/to/micropython"; exit 2; }
	$(BIN)/python -m tools.bundle firmware $(BOARD) --mpy-dir $(MPY_DIR)

simboard: $(STAMP)
	$(BIN)/python -m tools.simboard start --dir $(SIMBOARD_DIR)

simboard-stop:
	$(BIN)/python -m tools.simboard stop --dir $(SIMBOARD_DIR)

# Soak (not part of `make test`): a simulated board on the unix port publishes QoS 1
# values through the fault proxy while random faults hit it for SOAK_SECONDS; ends with a
# report (produced, delivered, lost = must be 0, duplicates, reconnects, stall, heap).
SOAK_SECONDS ?= 600
.PHONY: soak
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m tools.soak --seconds $(SOAK_SECONDS)
