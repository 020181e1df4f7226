# QuantShift — the two commands that matter are `make demo` (the pipeline on the lab) and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup test lint unit demo bench clean help

help:
	@echo "make setup   install Debian packages (as root) and the venv at .venv"
	@echo "make test    ruff, mypy, ansible-lint (production profile), pytest"
	@echo "make demo    the main job: the lab, then the pipeline on real LXC containers"
	@echo "make bench   run the benchmarks and record their results in bench/"

setup:
	@scripts/setup.sh

lint: setup
	ruff check .
	ruff format --check .
	mypy
	ansible-lint --profile production playbooks roles

unit: setup
	pytest

test: lint unit

demo: setup
	scripts/demo.sh

bench: setup
	python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
