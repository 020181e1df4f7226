"""The lab bridge: a host bridge carrying the lab subnet, with no route or NAT to anywhere else."""

from __future__ import annotations

import json
import subprocess

from lab.errors import LabError
from lab.settings import LabSettings


class NetworkError(LabError):
    """The lab bridge could not be set up."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def bridge_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name).returncode == 0


def ensure_bridge(lab: LabSettings) -> bool:
    """Create the lab bridge with the gateway address; True when this call created it."""
    cidr = f"{lab.gateway}/{lab.subnet.prefixlen}"
    if bridge_exists(lab.bridge):
        addrs = json.loads(_ip("-j", "addr", "show", "dev", lab.bridge).stdout or "[]")
        have = {f"{a['local']}/{a['prefixlen']}" for link in addrs for a in link.get("addr_info", [])}
        if cidr not in have:
            raise NetworkError(f"bridge {lab.bridge} exists without the lab address {cidr}: it is not the lab's; set QUANTSHIFT_LAB_BRIDGE")
        return False
    for args in (
        ("link", "add", lab.bridge, "type", "bridge"),
        ("addr", "add", cidr, "dev", lab.bridge),
        ("link", "set", lab.bridge, "up"),
    ):
        proc = _ip(*args)
        if proc.returncode != 0:
            _ip("link", "del", lab.bridge)
            raise NetworkError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return True


def remove_bridge(name: str) -> None:
    if bridge_exists(name):
        _ip("link", "del", name)
