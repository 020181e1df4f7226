#!/usr/bin/env bash
# The main job: the whole pipeline on the lab, on real LXC containers, from a fresh machine.
# Idempotent: run it again and it converges without changing anything. `quantshift lab down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }

step "Lab: Proxmox-compatible API on https://127.0.0.1:8006, real LXC backend"
quantshift lab up --backend lxc

step "Provision containers 100 (primary), 101 (standby), 102 (paper) from inventory/lab/containers.yml"
ansible-playbook playbooks/provision.yml

step "Inventory read back from the lab's API"
ansible-inventory --graph

release=${QUANTSHIFT_RELEASE:-lab-$(date -u +%Y%m%d)}
step "Deploy release $release to paper (102): wheelhouse venv, hardened units, health wait, gate, audit"
ansible-playbook playbooks/deploy-paper.yml -e "quantshift_release=$release"

step "Audit log"
quantshift deploy history --limit 10

printf '\nDone in %ss. The lab stays up: `quantshift lab status`; remove everything with `quantshift lab down`.\n' "$(( $(date +%s) - started ))"
