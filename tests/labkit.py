"""Helpers for tests that run a private lab: its own state dir, port, bridge and subnet."""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from proxmoxer import ProxmoxAPI

from lab import services, settings

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nobody listens on now, below the kernel's ephemeral range: a port the kernel picked would
    be free to any outgoing connection until the lab's server binds it (seen as "Address already in
    use" under load). Never the same port twice in one test process."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(20000, max(20001, ephemeral_low - 1))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def lab_settings(tmp: Path, subnet: str, bridge: str) -> settings.LabSettings:
    default_cache = settings.from_env().cache_dir
    return settings.LabSettings(
        state_dir=tmp / "lab",
        cache_dir=Path(os.environ.get("QUANTSHIFT_LAB_CACHE", str(default_cache))),
        host="127.0.0.1",
        port=free_port(),
        bridge=bridge,
        subnet=ipaddress.IPv4Network(subnet),
        alpaca_port=free_port(),
        coinbase_port=free_port(),
        redis_port=free_port(),
        webhook_port=free_port(),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
    )


@contextmanager
def running_lab(
    lab: settings.LabSettings, backend: str, extra_env: dict[str, str] | None = None, with_monitoring: bool = False
) -> Iterator[dict[str, Any]]:
    """Bring a lab up and always take it down again, even when the test fails."""
    saved = {k: os.environ.get(k) for k in (extra_env or {})}
    os.environ.update(extra_env or {})
    try:
        facts = services.up(lab, backend, progress=lambda *_: None, with_monitoring=with_monitoring)
        yield facts
    finally:
        services.down(lab, progress=lambda *_: None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pid_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def lab_spec_for(lab: settings.LabSettings, dest: Path) -> Path:
    """The shipped lab spec (inventory/lab/containers.yml) pointed at a private lab: its port, state
    directory, bridge and subnet. Written to `dest`; returns it."""
    root = Path(__file__).resolve().parent.parent
    text = (root / "inventory" / "lab" / "containers.yml").read_text()
    text = (
        text.replace("port: 8006", f"port: {lab.port}")
        .replace("/var/lib/quantshift-lab", str(lab.state_dir))
        .replace("bridge: qsbr0", f"bridge: {lab.bridge}")
        .replace("10.231.7.", str(lab.subnet).rsplit(".", 1)[0] + ".")
    )
    dest.write_text(text)
    return dest


def client(facts: dict[str, Any], token_secret: str | None = None, token_name: str | None = None) -> Any:
    return ProxmoxAPI(
        facts["host"],
        port=facts["port"],
        user=facts["user"],
        token_name=token_name or facts["token_name"],
        token_value=token_secret or facts["token_secret"],
        verify_ssl=facts["ca_cert"],
        timeout=30,
    )


def wait(node: Any, upid: str, timeout: float = 120) -> dict[str, Any]:
    """Poll a task until it stops; return its final status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = node.tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.05)
    raise TimeoutError(f"task {upid} still running after {timeout}s")


def ssh(facts: dict[str, Any], ip: str, command: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            facts["ssh_private_key"],
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=2",
            f"root@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_ssh(facts: dict[str, Any], ip: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh(facts, ip, "true").returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no SSH on {ip} after {timeout}s")
