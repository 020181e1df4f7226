#!/usr/bin/env bash
# The Molecule platform image: Debian 12 with systemd as PID 1, imported into podman from the lab's
# debootstrap template (built once, about a minute). Name: $QUANTSHIFT_MOLECULE_IMAGE.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${QUANTSHIFT_MOLECULE_IMAGE:-localhost/quantshift-debian12-systemd:latest}
rootfs=$(.venv/bin/python -c 'from lab import settings, template; print(template.build(settings.from_env().template_rootfs))')
stamp=$(stat -c %Y "$rootfs/etc/os-release")
if [[ $(podman image inspect --format '{{ index .Labels "quantshift.template" }}' "$image" 2>/dev/null) == "$stamp" ]]; then
  echo "$image"; exit 0
fi
tar -C "$rootfs" --exclude=./dev --numeric-owner -cf - . \
  | podman import --change 'CMD=["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' --change "LABEL quantshift.template=$stamp" - "$image" >/dev/null
echo "$image"
