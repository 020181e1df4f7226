#!/usr/bin/env bash
# Build the wheelhouse the hosts install from (they have no package index): the quantshift wheel and
# every runtime dependency, as one archive Ansible copies in a single transfer.
# Usage: scripts/build-wheelhouse.sh [OUTPUT_DIR]   (default build/); prints the archive's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build}")  # absolute: callers run it from anywhere
py=${PYTHON:-.venv/bin/python}
version=$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
# Content hash of everything that goes into the wheels: the archive is rebuilt exactly when one changes.
stamp=$(cat pyproject.toml "$0" $(find bot proxmox lab quantshift -name '*.py' | sort) | sha256sum | cut -c1-12)
dir="$out/wheelhouse"
mkdir -p "$out"
exec 9>"$out/.wheelhouse.lock"  # one build at a time per output directory (parallel deploys, tests)
flock 9
archive="$out/wheelhouse-$version-$stamp.tar"
latest="$out/wheelhouse.tar"  # a stable name for playbooks; points at the newest build
if [[ -f $archive ]]; then
  ln -sfn "$(basename "$archive")" "$latest"
  echo "$archive"; exit 0
fi
rm -rf "$dir" && mkdir -p "$dir"
quiet=(--quiet --disable-pip-version-check)
"$py" -m pip wheel "${quiet[@]}" --no-deps --wheel-dir "$dir" . 2>/dev/null >&2
# Resolve the dependencies for the hosts' Python (Debian 12: 3.11.2), binary wheels for their glibc.
# pip evaluates environment markers against the controller's Python even with --python-version, so
# what the hosts need beyond that is named here: redis wants async-timeout below Python 3.11.3.
target=${QUANTSHIFT_TARGET_PYTHON:-3.11.2}
platforms=()
for tag in manylinux_2_36 manylinux_2_34 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1 linux; do
  platforms+=(--platform "${tag}_x86_64")
done
"$py" -m pip download "${quiet[@]}" --dest "$dir" --only-binary=:all: --python-version "$target" --implementation cp \
  "${platforms[@]}" "$dir"/quantshift-*.whl "async-timeout>=4.0.3" 2> >(grep -v -e "is ignored: it is neither" >&2) >&2
tar -C "$dir" -cf "$archive.tmp" .
mv "$archive.tmp" "$archive"
ln -sfn "$(basename "$archive")" "$latest"
echo "$archive"
