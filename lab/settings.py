"""Where the lab keeps its state and which addresses it uses; all overridable from the environment."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "lab"
STORAGE = "local"
TEMPLATE_NAME = "debian-12-quantshift-lab_12.0-3_amd64.tar.zst"  # the default: Debian 12, Python 3.11
TEMPLATE_VOLID = f"{STORAGE}:vztmpl/{TEMPLATE_NAME}"
# Every template the lab can build: its file name -> the Debian suite debootstrap builds it from.
TEMPLATES = {
    TEMPLATE_NAME: "bookworm",
    "debian-13-quantshift-lab_13.0-1_amd64.tar.zst": "trixie",  # Debian 13, Python 3.13
}
TOKEN_USER = "root@pam"
TOKEN_NAME = "quantshift"


@dataclass(frozen=True)
class LabSettings:
    """One lab instance: its state directory, API port, bridge and subnet."""

    state_dir: Path
    cache_dir: Path
    host: str
    port: int
    bridge: str
    subnet: ipaddress.IPv4Network
    alpaca_port: int = 8010
    coinbase_port: int = 8011
    redis_port: int = 6390
    webhook_port: int = 8012
    prometheus_port: int = 9190  # the lab's Prometheus and Alertmanager (loopback only; not the packages' 9090/9093)
    alertmanager_port: int = 9193

    def as_env(self) -> dict[str, str]:
        """The QUANTSHIFT_LAB_* variables that select this lab (the inverse of from_env)."""
        return {
            "QUANTSHIFT_LAB_DIR": str(self.state_dir),
            "QUANTSHIFT_LAB_CACHE": str(self.cache_dir),
            "QUANTSHIFT_LAB_PORT": str(self.port),
            "QUANTSHIFT_LAB_BRIDGE": self.bridge,
            "QUANTSHIFT_LAB_SUBNET": str(self.subnet),
            "QUANTSHIFT_LAB_ALPACA_PORT": str(self.alpaca_port),
            "QUANTSHIFT_LAB_COINBASE_PORT": str(self.coinbase_port),
            "QUANTSHIFT_LAB_REDIS_PORT": str(self.redis_port),
            "QUANTSHIFT_LAB_WEBHOOK_PORT": str(self.webhook_port),
            "QUANTSHIFT_LAB_PROMETHEUS_PORT": str(self.prometheus_port),
            "QUANTSHIFT_LAB_ALERTMANAGER_PORT": str(self.alertmanager_port),
        }

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The bridge's own address: the first host of the lab subnet."""
        return next(self.subnet.hosts())

    @property
    def api_url(self) -> str:
        return f"https://{self.host}:{self.port}/api2/json"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.pem"

    @property
    def lxc_path(self) -> Path:
        return self.state_dir / "lxc"

    @property
    def template_rootfs(self) -> Path:
        return self.rootfs_of(TEMPLATE_NAME)

    def rootfs_of(self, name: str) -> Path:
        """Where the template `name` (a key of TEMPLATES) is built."""
        return self.cache_dir / "templates" / name.removesuffix(".tar.zst") / "rootfs"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"


def from_env(environ: dict[str, str] | None = None) -> LabSettings:
    """Settings from QUANTSHIFT_LAB_* variables, with the defaults the README documents."""
    env = os.environ if environ is None else environ
    subnet = ipaddress.IPv4Network(env.get("QUANTSHIFT_LAB_SUBNET", "10.231.7.0/24"), strict=True)
    if not subnet.is_private:
        raise ValueError(f"QUANTSHIFT_LAB_SUBNET={subnet} is not a private network: the lab never routes to a real one")
    return LabSettings(
        state_dir=Path(env.get("QUANTSHIFT_LAB_DIR", "/var/lib/quantshift-lab")),
        cache_dir=Path(env.get("QUANTSHIFT_LAB_CACHE", "/var/cache/quantshift-lab")),
        host="127.0.0.1",
        port=int(env.get("QUANTSHIFT_LAB_PORT", "8006")),
        bridge=env.get("QUANTSHIFT_LAB_BRIDGE", "qsbr0"),
        subnet=subnet,
        alpaca_port=int(env.get("QUANTSHIFT_LAB_ALPACA_PORT", "8010")),
        coinbase_port=int(env.get("QUANTSHIFT_LAB_COINBASE_PORT", "8011")),
        redis_port=int(env.get("QUANTSHIFT_LAB_REDIS_PORT", "6390")),
        webhook_port=int(env.get("QUANTSHIFT_LAB_WEBHOOK_PORT", "8012")),
        prometheus_port=int(env.get("QUANTSHIFT_LAB_PROMETHEUS_PORT", "9190")),
        alertmanager_port=int(env.get("QUANTSHIFT_LAB_ALERTMANAGER_PORT", "9193")),
    )
