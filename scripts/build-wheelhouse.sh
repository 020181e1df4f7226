#!/usr/bin/env bash
# Build the wheelhouse the hosts install from (they have no package index): the bot runtime's wheel
# (bot/: quantshift-bot, nothing of the controller), the release's strategy package and every runtime dependency, as one archive Ansible copies in one transfer.
# The strategy comes from QUANTSHIFT_STRATEGY, a JSON {"name", "package", "params"} (a release manifest's
# strategy section, as `quantshift deploy manifest` prints it); default: the example ma_cross.
# The archive also carries strategy.json (what the bots load) and requirements.txt (what the host installs).
# Usage: scripts/build-wheelhouse.sh [OUTPUT_DIR]   (default build/); prints the archive's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build}")  # absolute: callers run it from anywhere
py=${PYTHON:-.venv/bin/python}
version=$("$py" -c 'import tomllib; print(tomllib.load(open("bot/pyproject.toml","rb"))["project"]["version"])')
# The strategy, checked and normalised (name, package: an absolute directory or a pinned requirement, params).
strategy=$("$py" - "${QUANTSHIFT_STRATEGY:-}" <<'PY'
import dataclasses, json, sys
from quantshift.manifest import StrategySpec
raw = sys.argv[1]
spec = json.loads(raw) if raw else dataclasses.asdict(StrategySpec())
print(json.dumps({"name": spec["name"], "package": spec["package"], "params": spec.get("params") or {}}, sort_keys=True))
PY
)
package=$("$py" -c 'import json,sys; print(json.loads(sys.argv[1])["package"])' "$strategy")
strategy_files=()
if [[ -d $package ]]; then
  mapfile -t strategy_files < <(find "$package" -type f \( -name '*.py' -o -name 'pyproject.toml' -o -name 'setup.cfg' -o -name '*.json' -o -name '*.txt' \) \
    -not -path '*/build/*' -not -path '*.egg-info/*' -not -path '*/__pycache__/*' -not -path '*/.*' | sort)
fi
# The host's Python (the role finds it; default Debian 12's) and the locked dependencies for it.
target=${QUANTSHIFT_TARGET_PYTHON:-3.11.2}
minor=$(echo "$target" | cut -d. -f1,2)
lock=requirements/host-py$minor.lock
if [[ ! -f $lock ]]; then
  served=$(ls requirements/host-py*.lock 2>/dev/null | sed 's/.*host-py\(.*\)\.lock/\1/' | paste -sd, | sed 's/,/, /g')
  echo "build-wheelhouse: Python $target is not one the project serves (it serves ${served:-none}: requirements/host-py*.lock; see make lock)" >&2
  exit 2
fi
# Content hash of everything that goes into the archive: it is rebuilt exactly when one changes.
stamp=$( (cat bot/pyproject.toml "$0" "$lock" requirements/tools.lock $(find bot -name '*.py' -not -path '*/build/*' | sort) ${strategy_files[@]+"${strategy_files[@]}"}; echo "$strategy $minor") \
  | sha256sum | cut -c1-12)
dir="$out/wheelhouse"
mkdir -p "$out"
exec 9>"$out/.wheelhouse.lock"  # one build at a time per output directory (parallel deploys, tests)
flock 9
archive="$out/wheelhouse-$version-py$minor-$stamp.tar"
latest="$out/wheelhouse.tar"  # a stable name for playbooks; points at the newest build
if [[ -f $archive ]]; then
  ln -sfn "$(basename "$archive")" "$latest"
  echo "$archive"; exit 0
fi
rm -rf "$dir" && mkdir -p "$dir"
quiet=(--quiet --disable-pip-version-check)
if ! "$py" -m pip wheel "${quiet[@]}" --no-deps --wheel-dir "$dir" ./bot >/dev/null 2>"$out/.bot-build.log"; then
  echo "build-wheelhouse: the bot runtime (bot/) does not build: $(tail -1 "$out/.bot-build.log")" >&2
  exit 1
fi
wanted=("$dir"/quantshift_bot-*.whl)
if [[ -d $package ]]; then
  before=$(ls "$dir")
  if ! "$py" -m pip wheel "${quiet[@]}" --no-deps --wheel-dir "$dir" "$package" >/dev/null 2>"$out/.strategy-build.log"; then
    echo "build-wheelhouse: the strategy package $package does not build: $(grep -m1 -iE 'error' "$out/.strategy-build.log" || tail -1 "$out/.strategy-build.log")" >&2
    exit 2
  fi
  built=$(comm -13 <(echo "$before") <(ls "$dir") | grep '\.whl$' | head -1)
  wanted+=("$dir/$built")
else
  wanted+=("$package")
fi
# The locked dependencies for the host's Python, binary wheels for its glibc, each checked against the
# lock's hashes; then whatever the strategy package needs beyond them (constrained to the lock's versions).
platforms=()
for tag in manylinux_2_36 manylinux_2_34 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1 linux; do
  platforms+=(--platform "${tag}_x86_64")
done
for_host=(--only-binary=:all: --python-version "$target" --implementation cp "${platforms[@]}")
noise=(grep -v -e "is ignored: it is neither")
"$py" -m pip download "${quiet[@]}" --dest "$dir" "${for_host[@]}" --no-deps --require-hashes -r "$lock" 2> >("${noise[@]}" >&2) >&2
# The installer the host uses, uv (a static binary in a wheel), kept apart from what it installs.
"$py" -m pip download "${quiet[@]}" --dest "$dir/tools" --only-binary=:all: --implementation cp "${platforms[@]}" --python-version "$target" \
  --no-deps --require-hashes -r requirements/tools.lock 2> >("${noise[@]}" >&2) >&2
grep -oE '^[A-Za-z0-9._-]+==[^ ;\\]+' "$lock" > "$out/.constraints.txt"
"$py" -m pip download "${quiet[@]}" --dest "$dir" "${for_host[@]}" -c "$out/.constraints.txt" "${wanted[@]:1}" 2> >("${noise[@]}" >&2) >&2
# What the bots load (strategy.json) and what the host installs (requirements.txt), from the wheels themselves.
"$py" - "$dir" "$strategy" "$lock" "$target" <<'PY'
import json, pathlib, sys, zipfile
from email.parser import Parser
wheelhouse, spec = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2])
found = None
for wheel in sorted(wheelhouse.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        if points is None:
            continue
        text, group = z.read(points).decode(), None
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("["):
                group = line.strip("[]")
            elif group == "quantshift.strategies" and line.split("=")[0].strip() == spec["name"]:
                meta = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
                found = (meta["Name"], meta["Version"])
if found is None:
    sys.exit(f"build-wheelhouse: no package in the wheelhouse offers the strategy {spec['name']!r} (an entry point in quantshift.strategies)")
(wheelhouse / "strategy.json").write_text(json.dumps({**spec, "distribution": found[0], "version": found[1]}, indent=2, sort_keys=True) + "\n")
# Every wheel pinned with its file's hash: the host installs exactly these, hashes required.
import hashlib, re
lines, names = [], set()
for wheel in sorted(wheelhouse.glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    names.add(re.sub(r"[-_.]+", "-", name).lower())
    lines.append(f"{name}=={version} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}")
(wheelhouse / "requirements.txt").write_text("\n".join(lines) + "\n")
lock = pathlib.Path(sys.argv[3])
locked = {re.sub(r"[-_.]+", "-", m.group(1)).lower() for m in re.finditer(r"^([A-Za-z0-9._-]+)==", lock.read_text(), re.M)}
ours = {"quantshift-bot", re.sub(r"[-_.]+", "-", found[0]).lower()}
build = {
    "python": sys.argv[4],
    "lock": lock.name,
    "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
    "unlocked": sorted(names - locked - ours),  # what the strategy needs beyond the lock, pinned here by hash only
}
(wheelhouse / "build.json").write_text(json.dumps(build, indent=2) + "\n")
if build["unlocked"]:
    print(f"build-wheelhouse: the strategy brings dependencies the lock does not hold: {', '.join(build['unlocked'])}", file=sys.stderr)
PY
tar -C "$dir" -cf "$archive.tmp" .
mv "$archive.tmp" "$archive"
ln -sfn "$(basename "$archive")" "$latest"
echo "$archive"
