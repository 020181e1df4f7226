#!/usr/bin/env bash
# Build a deliberately bad release for the demo and the tests: this source tree with one defect
# (the strategy raises on its first decision, as a real bug would), as its own wheelhouse.
# It starts, warms up and waits in standby like any release; it fails once it holds the leases and
# decides, which is what the handover's crash check and the gates must catch and roll back.
# Usage: scripts/build-bad-release.sh [OUTPUT_DIR]   (default build/bad); prints the archive's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/build/bad}")
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
for part in pyproject.toml README.md scripts bot proxmox lab quantshift; do cp -a "$root/$part" "$src/"; done
find "$src" -name __pycache__ -prune -exec rm -rf {} +
python3 - "$src/bot/strategy.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
anchor = "        if len(bars) < self.warmup:\n            return None\n"
assert text.count(anchor) == 1, "strategy.decide changed: update scripts/build-bad-release.sh"
text = text.replace(anchor, anchor + '        raise RuntimeError("deliberately bad release: the strategy fails on every decision")\n')
open(path, "w").write(text)
PY
PYTHON="$root/.venv/bin/python" "$src/scripts/build-wheelhouse.sh" "$out"
