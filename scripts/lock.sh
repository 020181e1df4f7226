#!/usr/bin/env bash
# Lock every dependency, with hashes: the controller's environment (requirements/controller.lock, what
# `make setup` installs) and the bot runtime's for each host Python the project serves
# (requirements/host-pyX.Y.lock, what a wheelhouse for such a host is downloaded from), and the
# installer a wheelhouse carries (requirements/tools.lock: uv). Run it after
# changing a pin in pyproject.toml or bot/pyproject.toml: `make lock`. Needs uv (in the dev tools).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
platform=x86_64-manylinux_2_36  # Debian 12's glibc, the oldest the hosts run
pythons=(3.11 3.13)             # Debian 12 and Debian 13: the host Pythons the project serves
mkdir -p requirements
"$uv" pip compile --quiet --generate-hashes --no-header --python-version 3.11 --python-platform "$platform" \
  pyproject.toml --extra dev -o requirements/controller.lock
for v in "${pythons[@]}"; do
  "$uv" pip compile --quiet --generate-hashes --no-header --python-version "$v" --python-platform "$platform" \
    bot/pyproject.toml -o "requirements/host-py$v.lock"
done
# The tools a host installs with: uv, shipped in every wheelhouse (pip is the fallback).
grep -oE '"uv==[^"]+"' pyproject.toml | tr -d '"' | "$uv" pip compile --quiet --generate-hashes --no-header \
  --python-version 3.11 --python-platform "$platform" - -o requirements/tools.lock
echo "locked: requirements/controller.lock and, for host Python ${pythons[*]}, requirements/host-py*.lock"
