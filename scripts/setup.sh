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
  podman runc uidmap slirp4netns fuse-overlayfs  # Molecule's podman driver
  prometheus prometheus-alertmanager  # the lab's monitoring; promtool tests the alert rules
  chromium                 # headless: the HTML reports are checked in a real browser
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
  # The packages start their own Prometheus and Alertmanager on every address (9090, 9093, 9094): the
  # lab runs its own on loopback only, so the ones this set-up just installed are stopped and disabled.
  for svc in prometheus prometheus-alertmanager; do
    if [[ " ${missing[*]} " == *" $svc "* ]] && command -v systemctl >/dev/null && systemctl is-enabled "$svc" >/dev/null 2>&1; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi
# Podman on this kind of machine: crun fails on hybrid cgroups, and its default ulimits exceed what
# root may set here. Written only where there is no containers.conf yet, or ours.
conf=/etc/containers/containers.conf
if [[ $(id -u) -eq 0 ]] && { [[ ! -e $conf ]] || grep -q '^# quantshift-setup' "$conf"; }; then
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [[ $nofile == unlimited || $nofile -gt 16384 ]] && nofile=16384
  [[ $nproc == unlimited || $nproc -gt 16384 ]] && nproc=16384
  mkdir -p /etc/containers
  cat > "$conf.tmp" <<CONF
# quantshift-setup: written by scripts/setup.sh (remove this line to keep your own edits)
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
CONF
  if ! cmp -s "$conf.tmp" "$conf"; then mv "$conf.tmp" "$conf"; else rm -f "$conf.tmp"; fi
elif [[ -e $conf ]] && ! grep -q '^# quantshift-setup' "$conf"; then
  echo "setup: $conf exists and is not ours; Molecule here needs runtime = \"runc\" and default_ulimits <= the hard limits" >&2
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $PY is $("$PY" -V 2>&1); QuantShift needs Python >= 3.11" >&2
  exit 1
fi
stamp=.venv/.quantshift-setup
want=$(cat requirements/controller.lock pyproject.toml bot/pyproject.toml strategies/ma_cross/pyproject.toml demo/strategies/*/pyproject.toml \
  | sha256sum | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
echo "setup: installing the Python tool set into .venv (about 90 s the first time)"
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip
# Every dependency from the lock, each file checked against its hash (make lock writes it), then this
# project's own packages without dependencies: the controller (.), the bot runtime (bot/: quantshift-bot,
# import quantshift_bot, what hosts get alone), and the strategy packages, the example and the demo's
# (the bot finds strategies through entry points, as on the hosts).
.venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements/controller.lock
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e . -e bot -e strategies/ma_cross -e demo/strategies/ma_trend \
  -e demo/strategies/ma_inverted
echo "$want" > "$stamp"
echo "setup: done (.venv ready)"
