#!/usr/bin/env bash
# Build a deliberately bad release for the demo and the tests: this source tree with one defect, as
# its own wheelhouse. DEFECT is what a real bug would do on the strategy's first decision:
#   crash  it raises (the process dies);
#   hang   it never returns (the process stays up, its loop stops);
#   slow   every decision takes 30 s, far longer than any tick;
#   errors it trades normally for 30 s (long enough to pass a gate), then every broker call fails;
#   losses it trades normally for 30 s, then a sizing bug puts 25 % of equity in each position, past
#          every cap: it loses money as soon as the market gaps (the lab's POST /lab/market shock).
# It starts, warms up and waits in standby like any release; it fails once it holds the leases and
# decides, which is what the handover's checks and the gates must catch and roll back. The strategy's
# defect shows on live symbols only, like a bug in handling real data: the contract check (its probe
# symbol, on the controller and at start) cannot see it, which is the case the gates exist for.
# Usage: scripts/build-bad-release.sh [OUTPUT_DIR] [DEFECT]   (default build/bad, crash); prints the archive's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/build/bad}")
defect=${2:-crash}
case $defect in
  crash) code='raise RuntimeError("deliberately bad release: the strategy fails on every decision")' ;;
  hang) code='__import__("threading").Event().wait()  # deliberately bad release: the decision never returns' ;;
  slow) code='__import__("time").sleep(30)  # deliberately bad release: every decision takes 30 s' ;;
  errors|losses) code='' ;;
  *) echo "build-bad-release.sh: DEFECT must be crash, hang, slow, errors or losses (got '$defect')" >&2; exit 2 ;;
esac
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
for part in pyproject.toml README.md requirements scripts bot proxmox lab quantshift strategies; do cp -a "$root/$part" "$src/"; done
find "$src" -name __pycache__ -prune -exec rm -rf {} +
python3 - "$src/strategies/ma_cross/src/quantshift_ma_cross/__init__.py" "$code" <<'PY'
import sys
path, code = sys.argv[1], sys.argv[2]
text = open(path).read()
anchor = "        if len(bars) < self.warmup:\n            return None\n"
assert text.count(anchor) == 1, "ma_cross's decide changed: update scripts/build-bad-release.sh"
text = text.replace(anchor, anchor + '        if symbol != "PROBE":  # live symbols only\n            ' + code + "\n") if code else text
open(path, "w").write(text)
PY
if [[ $defect == errors ]]; then
  python3 - "$src/bot/quantshift_bot/brokers/alpaca.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
anchor = "def _guard(fn: Callable[[], T], what: str) -> T:\n"
assert text.count(anchor) == 1, "alpaca._guard changed: update scripts/build-bad-release.sh"
bad = '    if __import__("time").monotonic() - _BORN > 30:  # deliberately bad release: fails after a gate would pass\n'
bad += '        raise BrokerError(f"{what}: HTTP 503 (deliberately bad release)")\n'
text = text.replace(anchor, anchor + bad).replace("T = TypeVar(\"T\")\n", "T = TypeVar(\"T\")\n_BORN = __import__(\"time\").monotonic()\n", 1)
open(path, "w").write(text)
PY
fi
if [[ $defect == losses ]]; then
  python3 - "$src/bot/quantshift_bot/strategy.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
anchor = "    notional = min(equity * kelly_fraction * max(kelly(win_rate, payoff), min_kelly), max_position, max(room, 0.0)) * size_factor\n"
assert text.count(anchor) == 1, "strategy.position_size changed: update scripts/build-bad-release.sh"
bad = "    if __import__('time').monotonic() - _BORN > 30:  # deliberately bad release: a sizing bug past every cap\n"
bad += "        notional = equity * 0.25\n"
text = text.replace(anchor, anchor + bad) + "\n_BORN = __import__('time').monotonic()\n"
open(path, "w").write(text)
PY
fi
# QUANTSHIFT_BAD_RELEASE_CHECK=1: only check the defect still applies to this tree (a fast test does).
[[ -n ${QUANTSHIFT_BAD_RELEASE_CHECK:-} ]] && { echo "$defect: applies"; exit 0; }
PYTHON="$root/.venv/bin/python" "$src/scripts/build-wheelhouse.sh" "$out"
