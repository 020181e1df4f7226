# QuantShift — the two commands that matter are `make demo` (the pipeline on the lab) and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup lock test lint unit demo bench image wheelhouse molecule clean help

help:
	@echo "make setup   install Debian packages (as root) and the venv at .venv"
	@echo "make test    ruff, mypy, ansible-lint (production profile), pytest"
	@echo "make lock    re-lock the dependencies with hashes (requirements/*.lock) after changing a pin"
	@echo "make demo    the main job: the lab, then the pipeline on real LXC containers"
	@echo "make bench   run the benchmarks and record their results in bench/"
	@echo "make image   the Molecule platform image (Debian 12, systemd) in podman"
	@echo "make molecule  run the Molecule scenario (converge, idempotence, verify)"

setup:
	@scripts/setup.sh

lock: setup
	scripts/lock.sh

lint: setup
	ruff check .
	ruff format --check .
	mypy
	ansible-lint --profile production playbooks roles molecule

unit: setup
	pytest

test: lint unit

demo: setup
	scripts/demo.sh

bench: setup
	python -m bench.run

image: setup
	scripts/build-image.sh

wheelhouse: setup
	scripts/build-wheelhouse.sh

# One scenario by hand: `molecule test -s default` (after `make image`).
molecule: image wheelhouse
	molecule test -s default

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache
