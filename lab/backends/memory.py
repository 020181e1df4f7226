"""The memory backend: containers are records, tasks take a configurable delay; thousands are cheap."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from lab import settings
from lab.backends.base import BackendError, TaskLog, default_mac
from lab.pve.schema import NET
from lab.pve.store import Container


class MemoryBackend:
    name = "memory"

    def __init__(self, task_delay: float = 0.0, fail_vmids: frozenset[int] = frozenset()) -> None:
        self.task_delay = task_delay
        # Containers whose create task fails, so clients can test how they report a failed task.
        self.fail_vmids = fail_vmids

    def _work(self, log: TaskLog, line: str) -> None:
        log(line)
        if self.task_delay:
            time.sleep(self.task_delay)

    def create(self, ct: Container, ostemplate: str, ssh_keys: str, log: TaskLog) -> None:
        self._work(log, f"extracting archive '{ostemplate}'")
        if ct.vmid in self.fail_vmids:
            log("tar: ./usr/lib: Cannot mkdir: No space left on device")
            raise BackendError(f"unable to create CT {ct.vmid} - command 'lxc-usernsexec tar xpf' failed: exit code 2")
        log(f"Total bytes written: {300 * 1024 * 1024} (300MiB)")
        if ssh_keys:
            log("Setting up ssh public keys")

    def start(self, ct: Container, log: TaskLog) -> None:
        self._work(log, f"starting CT {ct.vmid}")

    def stop(self, ct: Container, log: TaskLog) -> None:
        self._work(log, f"stopping CT {ct.vmid}")

    def shutdown(self, ct: Container, timeout: int, log: TaskLog) -> None:
        self._work(log, f"shutting down CT {ct.vmid} (timeout {timeout}s)")

    def destroy(self, ct: Container, log: TaskLog) -> None:
        self._work(log, f"destroying CT {ct.vmid}")

    def snapshot(self, ct: Container, name: str, log: TaskLog) -> None:
        self._work(log, f"snapshotting CT {ct.vmid} as '{name}'")

    def rollback(self, ct: Container, name: str, log: TaskLog) -> None:
        self._work(log, f"rolling CT {ct.vmid} back to '{name}'")

    def delete_snapshot(self, ct: Container, name: str, log: TaskLog) -> None:
        self._work(log, f"deleting snapshot '{name}' of CT {ct.vmid}")

    def is_running(self, ct: Container) -> bool:
        return ct.status == "running"

    def reconfigure(self, ct: Container) -> None:
        return None

    def interfaces(self, ct: Container) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"}]
        for key in sorted(k for k in ct.config if k.startswith("net")):
            net = NET.parse(str(ct.config[key]))
            entry: dict[str, Any] = {"name": net["name"], "hwaddr": net.get("hwaddr", default_mac(ct.vmid, int(key[3:])))}
            ip = str(net.get("ip", ""))
            if ip not in ("", "dhcp", "manual"):
                entry["inet"] = str(ipaddress.IPv4Interface(ip))
            out.append(entry)
        return out

    def usage(self, ct: Container) -> dict[str, Any]:
        running = ct.status == "running"
        return {"mem": 48 * 1024 * 1024 if running else 0, "cpu": 0.01 if running else 0, "pid": 10000 + ct.vmid if running else None}

    def templates(self) -> list[dict[str, Any]]:
        return [
            {
                "volid": f"{settings.STORAGE}:vztmpl/{name}",
                "content": "vztmpl",
                "format": "tzst",
                "size": 129_384_448,
                "ctime": 1_700_000_000,
            }
            for name in settings.TEMPLATES
        ]


def check_vmid_fails(raw: str) -> frozenset[int]:
    """Parse QUANTSHIFT_LAB_FAIL_VMIDS (comma-separated) for the failed-task switch."""
    try:
        return frozenset(int(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise BackendError(f"QUANTSHIFT_LAB_FAIL_VMIDS must list vmids, got {raw!r}") from None
