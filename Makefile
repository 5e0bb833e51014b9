# Every target runs in a virtual environment of its own in .venv, made on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUST_SOURCES := $(shell find src -name '*.rs') Cargo.toml Cargo.lock

.DEFAULT_GOAL := help

.PHONY: help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

# Debian packages: .ci/apt-packages to build (CMake and NASM for libjpeg-turbo), the others for
# the tests (MariaDB, a CMYK colour profile). Installed when missing if run as root.
BUILD_PACKAGES := .ci/apt-packages
TEST_PACKAGES := $(filter-out $(BUILD_PACKAGES),$(wildcard .ci/apt-packages*))

.PHONY: build-packages
build-packages:
	@scripts/debian-packages $(BUILD_PACKAGES)

$(VENV)/.installed: pyproject.toml $(RUST_SOURCES) | build-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $@

.PHONY: install
install: $(VENV)/.installed  ## build fastric (release) into .venv with the test and example dependencies

.PHONY: demo
demo: install  ## serve the API backend example locally against a local DynamoDB (moto)
	$(PY) scripts/demo.py

.PHONY: format
format: install  ## format Rust and Python sources
	cargo fmt
	$(VENV)/bin/ruff format python tests examples bench scripts
	$(VENV)/bin/ruff check --fix python tests examples bench scripts

.PHONY: lint-rust
lint-rust: build-packages  ## rustfmt and clippy, warnings as errors
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

.PHONY: lint-python
lint-python: install  ## ruff lint and format check
	$(VENV)/bin/ruff check python tests examples bench scripts
	$(VENV)/bin/ruff format --check python tests examples bench scripts

.PHONY: lint
lint: lint-rust lint-python  ## all linters

.PHONY: test-rust
test-rust: build-packages  ## Rust unit tests
	cargo test --quiet

.PHONY: test-python
test-python: install  ## the pytest suite (benchmarks run once each, untimed)
	@scripts/debian-packages $(TEST_PACKAGES)
	$(PY) -m pytest

.PHONY: test
test: lint test-rust test-python  ## everything CI runs: linters, Rust tests, pytest

.PHONY: bench
bench: install  ## benchmarks against awslambdaric, timed, results saved under .benchmarks
	$(PY) -m pytest bench --benchmark-enable --benchmark-autosave
	$(PY) bench/render.py

.PHONY: clean
clean:  ## remove build products and the virtual environment
	cargo clean
	rm -rf $(VENV) .pytest_cache .ruff_cache
