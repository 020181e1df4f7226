#!/usr/bin/env bash
# One set-up path for QuantShift: the Debian packages the lab and tests need, then the venv at .venv.
# Idempotent: a second run installs nothing and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  lxc debootstrap          # the lab's real containers and their template
  redis-server             # bot state, the single-writer lease, the audit stream
  openssh-client           # Ansible's transport to the containers
  iproute2                 # the lab bridge
  python3-venv python3-dev # the controller venv
  make git rsync ca-certificates
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root (sudo make setup) or install them: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The lab runs its own redis-server on loopback for tests; the distribution's service is not needed.
if systemctl is-enabled redis-server >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then :; fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $PY is $("$PY" -V 2>&1); QuantShift needs Python >= 3.11" >&2
  exit 1
fi
stamp=.venv/.quantshift-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
echo "setup: installing the Python tool set into .venv (about 90 s the first time)"
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
echo "$want" > "$stamp"
echo "setup: done (.venv ready)"
