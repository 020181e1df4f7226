#!/usr/bin/env bash
# The main job: the whole pipeline on the lab, on real LXC containers, from a fresh machine, with
# both bots (equity on the Alpaca lab, crypto on the Coinbase lab) on each container.
#   lab up (with Prometheus and Alertmanager) -> provision 100-102 -> release A (the example strategy
#   ma_cross) bootstraps production -> a candidate with inverted signals is refused by the replay gate
#   before paper -> release B (a real improvement: the ma_trend package in demo/strategies) passes the
#   replay gate and goes paper -> shadow -> canary -> production (warm handover) -> a deliberately bad
#   release C is forced to production, the handover's crash check / the gate catch it and roll back to
#   B -> release D passes its gate and goes bad afterwards: the release guard on the host rolls back to
#   B by itself, an alert fires and resolves, and the lab's webhook receiver shows every notification.
# Demo shortcuts, said out loud: "now" for the window check is the next weekend day inside both bots'
# windows; soak minimums are seconds instead of days; C skips the soak by an audited override; the
# replay gate judges on 30 days of generated 1-minute bars (python -m lab.history), since a fresh lab
# has recorded only minutes.
# `quantshift lab down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
started=$(date +%s)
step() { printf '\n==> [%3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
out=$PWD/build/demo && mkdir -p "$out"
exec > >(tee "$out/demo.log") 2>&1  # the whole run, for the secret scan at the end
audit_log=${QUANTSHIFT_AUDIT_LOG:-$HOME/.local/state/quantshift/audit.jsonl}

step "Lab: Proxmox-compatible API on https://127.0.0.1:8006, exchanges, Redis, real LXC backend"
quantshift lab up --backend lxc
# One audit log and one deploy lock for the environment, in its Redis (every controller shares them).
QUANTSHIFT_AUDIT_REDIS_URL=${QUANTSHIFT_AUDIT_REDIS_URL:-$(quantshift lab env --json | python -c 'import json, sys; print(json.load(sys.stdin)["redis_url"])')}
export QUANTSHIFT_AUDIT_REDIS_URL

net=$(quantshift lab env --json | python -c 'import json, sys; print(json.load(sys.stdin)["subnet"].rsplit(".", 1)[0])')
primary=$net.10 standby=$net.11 paper=$net.12

step "Provision containers 100 (primary, $primary), 101 (standby, $standby), 102 (paper, $paper) from ${QUANTSHIFT_LAB_SPEC:-inventory/lab/containers.yml}"
ansible-playbook playbooks/provision.yml
ansible-inventory --graph

stamp=$(date -u +%Y%m%d-%H%M%S)
a=${QUANTSHIFT_RELEASE:-lab-$stamp}-a b=${QUANTSHIFT_RELEASE:-lab-$stamp}-b c=${QUANTSHIFT_RELEASE:-lab-$stamp}-c-bad
d=${QUANTSHIFT_RELEASE:-lab-$stamp}-d-errors
# The next time inside the production window of both bots (the lab's "now" for the window check): the
# equity bot deploys after the close, the crypto bot on a weekend, so production moves on a weekend.
at=$(python -c '
import datetime as dt
from quantshift import window
t = dt.datetime.now(dt.UTC).replace(hour=15, minute=0, second=0, microsecond=0)
while not all(window.check(t, m).allowed for m in window.MARKETS):
    t += dt.timedelta(days=1)
print(t.isoformat())')
soak='{"quantshift_soak_durations": {"paper": 1, "shadow": 1, "canary": 1}}'
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Each release declares itself: id, risk class and the strategy package it carries.
manifest_a=$out/release-a.yml manifest=$out/release-b.yml manifest_x=$out/release-x.yml
x=${QUANTSHIFT_RELEASE:-lab-$stamp}-x-inverted
printf 'release: %s\nrisk_class: low\ndescription: demo release A, the example strategy\nrevision: %s\nstrategy: {name: ma_cross, package: %s}\n' \
  "$a" "$revision" "$PWD/strategies/ma_cross" > "$manifest_a"
printf 'release: %s\nrisk_class: high\ndescription: demo release B, a trend filter on the crossover\nrevision: %s\nstrategy: {name: ma_trend, package: %s}\n' \
  "$b" "$revision" "$PWD/demo/strategies/ma_trend" > "$manifest"
printf 'release: %s\nrisk_class: medium\ndescription: a worse candidate, signals inverted\nrevision: %s\nstrategy: {name: ma_inverted, package: %s}\n' \
  "$x" "$revision" "$PWD/demo/strategies/ma_inverted" > "$manifest_x"
bars=$out/bars-30d.csv  # the replay gate's market data: 30 days of the equity bot's symbols
python -m lab.history --days 30 --symbols AAPL,MSFT,NVDA --seed 42 --out "$bars"
replay=(-e "quantshift_replay_bars=$bars" -e quantshift_replay_market=equity)
echo "window time used for production deploys: $at; soak minimums shortened to 1 s per stage (policy: days; each stage takes longer than that)"

step "Release $a (manifest $manifest_a: strategy ma_cross) bootstraps production (empty lab: soak override, audited)"
ansible-playbook playbooks/deploy-production.yml -e "quantshift_manifest=$manifest_a" -e "quantshift_deploy_at=$at" \
  -e "quantshift_soak_override_reason='bootstrap: the lab starts with nothing in production'" -e quantshift_end_canary=false

step "Candidate $x (strategy ma_inverted: signals inverted) is judged by the replay gate before paper, against production $a"
if ansible-playbook playbooks/deploy-paper.yml -e "quantshift_manifest=$manifest_x" "${replay[@]}" > "$out/replay-refused.log" 2>&1; then
  echo "the inverted candidate was NOT refused: see $out/replay-refused.log" >&2
  exit 1
fi
grep -oE "REFUSED by the replay gate: [^\"]*" "$out/replay-refused.log" | head -1
echo "refused before paper: nothing was copied to any host (report: build/reports/replay-$x.html)"

step "Release $b (manifest $manifest: risk high, strategy ma_trend from demo/strategies) through the replay gate to paper (102)"
ansible-playbook playbooks/deploy-paper.yml -e "quantshift_manifest=$manifest" "${replay[@]}"

step "Release $b to shadow on the standby (101): same data as production, would-be orders, no orders"
ansible-playbook playbooks/deploy-shadow.yml -e "quantshift_manifest=$manifest" -e "$soak"

step "Release $b to canary on the standby: production yields NVDA, the canary trades it at canary size"
ansible-playbook playbooks/deploy-canary.yml -e "quantshift_manifest=$manifest" -e "$soak"

ssh_to() { echo "ssh -i ${QUANTSHIFT_LAB_DIR:-/var/lib/quantshift-lab}/ssh/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@$1"; }
ssh_primary=$(ssh_to "$primary")
before_b=$(date +%s)
step "Release $b to production (100): warm handover inside the window, gate, canary ends"
ansible-playbook playbooks/deploy-production.yml -e "quantshift_manifest=$manifest" -e "$soak" -e "quantshift_deploy_at=$at"
quantshift deploy switchover --ssh "$ssh_primary" --bot equity --release "$b" --since "$before_b" | tee "$out/switchover.txt"

step "Deliberately bad release $c forced to production: the checks must catch it and roll back to $b"
bad_wheelhouse=$(scripts/build-bad-release.sh)
if ansible-playbook playbooks/deploy-production.yml -e "quantshift_release=$c" -e "quantshift_deploy_at=$at" -e "quantshift_wheelhouse=$bad_wheelhouse" \
    -e "quantshift_soak_override_reason='demo: a bad release forced through to show the automatic rollback'" -e quantshift_end_canary=false \
    > "$out/bad-release.log" 2>&1; then
  echo "the bad release was NOT caught: see $out/bad-release.log" >&2
  exit 1
fi
grep -E "^fatal|FAILED|msg" "$out/bad-release.log" | tail -3 || true

step "Release $d passes the gate, then its broker calls fail: the guard on the host rolls back to $b by itself"
errors_wheelhouse=$(scripts/build-bad-release.sh "$PWD/build/bad-errors" errors)
ansible-playbook playbooks/deploy-production.yml -e "quantshift_release=$d" -e "quantshift_deploy_at=$at" -e "quantshift_wheelhouse=$errors_wheelhouse" \
  -e "quantshift_soak_override_reason='demo: a release that goes bad after its gate, for the guard to catch'" -e quantshift_end_canary=false \
  > "$out/guarded-release.log" 2>&1
echo "the play passed $d and ended; nothing but the guard on $primary watches it now"
guarded=no
for _ in $(seq 120); do
  if quantshift guard status --ssh "$ssh_primary" --json 2>/dev/null \
    | python -c 'import json, sys; s = json.load(sys.stdin); sys.exit(0 if (s["release"], s["outcome"]) == (sys.argv[1], "rolled_back") else 1)' "$d"; then
    guarded=yes && break
  fi
  sleep 1
done
quantshift guard status --ssh "$ssh_primary"
[[ $guarded == yes ]] || { echo "the guard did NOT roll $d back within 120 s" >&2; exit 1; }
echo "what the environment's webhook received (the lab's receiver, Slack format):"
quantshift lab webhooks | grep -v alertmanager | tail -8

# Alertmanager's messages to the lab's receiver: has ALERT gone STATUS (firing | resolved)?
alert_seen() {
  quantshift lab webhooks --json | python -c '
import json, sys
alert, status = sys.argv[1], sys.argv[2]
got = [a for m in json.load(sys.stdin) if m["channel"].startswith("alertmanager") for a in m["body"]["alerts"]]
sys.exit(0 if any(a["labels"]["alertname"] == alert and a["status"] == status for a in got) else 1)' "$1" "$2"
}
step "Monitoring: the lab's Prometheus scraped $d's broker errors at the stable address; Alertmanager pages"
for _ in $(seq 60); do alert_seen QuantShiftBrokerErrorRatioHigh firing && break; sleep 1; done
alert_seen QuantShiftBrokerErrorRatioHigh firing || { echo "QuantShiftBrokerErrorRatioHigh did NOT fire for $d" >&2; exit 1; }
quantshift lab webhooks | grep alertmanager | tail -4

step "Summary"
quantshift status
quantshift deploy history --limit 40
env_json=$(quantshift lab env --json)
AUDIT_LOG=$audit_log QS_ENV="$env_json" python - "$out" <<'PY'
import json, os, subprocess, sys
out = sys.argv[1]
env = json.loads(os.environ["QS_ENV"])
report = f"{out}/shadow-vs-production.html"
subprocess.run(["quantshift", "compare", "--redis-url", env["redis_url"], "--account", "lab-live-equity", "--html", report],
               capture_output=True, check=False)
print(f"\naudit log: {os.environ['AUDIT_LOG']} (quantshift deploy history)")
print(f"shadow vs production report: {report}")
print(f"bad release log: {out}/bad-release.log; switchover: {open(out + '/switchover.txt').read().strip()}")
PY
step "The alert resolves once the rollback's clean looks fill its 30 s look-back"
for _ in $(seq 90); do alert_seen QuantShiftBrokerErrorRatioHigh resolved && break; sleep 1; done
alert_seen QuantShiftBrokerErrorRatioHigh resolved || { echo "QuantShiftBrokerErrorRatioHigh did NOT resolve after the rollback" >&2; exit 1; }
quantshift lab webhooks | grep alertmanager | tail -4
quantshift deploy history --export "$out/audit.jsonl" >/dev/null
quantshift deploy timeline --audit-log "$out/audit.jsonl" --out "$out/timeline.html" && echo "deploy timeline: $out/timeline.html"

step "Secret scan: this run's output, the playbook logs, the audit log and every container's journal"
for ip in "$primary" "$standby" "$paper"; do $(ssh_to "$ip") journalctl --no-pager -o cat > "$out/journal-$ip.log"; done
quantshift lab scan-secrets "$out" "$audit_log"

printf '\nDone in %ss. The lab stays up: `quantshift lab status`; remove everything with `quantshift lab down`.\n' "$(( $(date +%s) - started ))"
