"""The lxc backend: every container is a real LXC container booting systemd on the lab bridge.

Each container's rootfs is an overlay over the shared template, so create and snapshot copy only
what the container changed. Its LXC config is written afresh from the Proxmox config at every start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lab import settings, template
from lab.backends.base import BackendError, TaskLog, default_mac
from lab.pve.schema import FEATURES, NET
from lab.pve.store import Container

SSH_KEY_TYPES = ("ed25519", "ecdsa", "rsa")


class LxcBackend:
    name = "lxc"

    def __init__(self, lab: settings.LabSettings) -> None:
        self.lab = lab
        self._template_sizes: dict[str, int] = {}
        self.root = lab.lxc_path
        self.root.mkdir(parents=True, exist_ok=True)
        for tool in ("lxc-start", "lxc-stop", "lxc-info", "lxc-attach", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise BackendError(f"{tool} is not installed: run `make setup`")

    # --- paths and commands ---------------------------------------------------------------------
    def _dir(self, ct: Container) -> Path:
        return self.root / str(ct.vmid)

    def _lxc(self, tool: str, ct: Container, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, "-P", str(self.root), "-n", str(ct.vmid), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _must(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            raise BackendError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")

    # --- lifecycle ------------------------------------------------------------------------------
    def create(self, ct: Container, ostemplate: str, ssh_keys: str, log: TaskLog) -> None:
        name = ostemplate.split("/", 1)[-1]
        if name not in settings.TEMPLATES:
            raise BackendError(f"volume '{ostemplate}' does not exist")
        lower = self.lab.rootfs_of(name)
        if not (lower / "etc" / "os-release").exists():
            raise BackendError(f"volume '{ostemplate}' is not built: run `quantshift lab up --backend lxc` (--templates to add it)")
        base = self._dir(ct)
        if base.exists():
            shutil.rmtree(base)
        upper = base / "upper"
        upper.mkdir(parents=True)
        (base / "template").write_text(name + "\n")  # which template this container lies over
        log(f"creating overlay rootfs for CT {ct.vmid} on {ostemplate}")
        if ssh_keys:
            log("Setting up ssh public keys")
            auth = self._upper_file(upper, "root/.ssh/authorized_keys")
            auth.write_text(ssh_keys if ssh_keys.endswith("\n") else ssh_keys + "\n")
            auth.chmod(0o600)
        log("generating SSH host keys")
        ssh_dir = self._upper_file(upper, "etc/ssh/ssh_host_ed25519_key").parent
        for kind in SSH_KEY_TYPES:
            key = ssh_dir / f"ssh_host_{kind}_key"
            proc = subprocess.run(
                ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@CT{ct.vmid}", "-f", str(key)],
                capture_output=True,
                text=True,
                check=False,
            )
            self._must(proc, f"ssh-keygen -t {kind}")
        self._write_identity(ct, upper)
        self._write_config(ct)

    def _lower_of(self, upper: Path) -> Path:
        """The template rootfs under a container's upper layer (its directory records which; the default
        one for a container made before that was recorded)."""
        try:
            return self.lab.rootfs_of((upper.parent / "template").read_text().strip())
        except OSError:
            return self.lab.template_rootfs

    def _lower(self, ct: Container) -> Path:
        """The template rootfs the container lies over."""
        return self._lower_of(self._dir(ct) / "upper")

    def _upper_file(self, upper: Path, rel: str) -> Path:
        """A path in the upper layer whose parent directories copy owner and mode from the template."""
        lower = self._lower_of(upper)
        parts = Path(rel).parts
        for i in range(1, len(parts)):
            sub = Path(*parts[:i])
            target = upper / sub
            if not target.exists():
                target.mkdir()
                src = lower / sub
                if src.is_dir():
                    st = src.stat()
                    os.chown(target, st.st_uid, st.st_gid)
                    target.chmod(st.st_mode & 0o7777)
        return upper / rel

    def _write_identity(self, ct: Container, upper: Path) -> None:
        hostname = str(ct.config.get("hostname", f"CT{ct.vmid}"))
        self._upper_file(upper, "etc/hostname").write_text(hostname + "\n")
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for key in sorted(k for k in ct.config if k.startswith("net")):
            ip = str(NET.parse(str(ct.config[key])).get("ip", ""))
            if "/" in ip:
                lines.append(f"{ipaddress.IPv4Interface(ip).ip}\t{hostname}")
                break
        else:
            lines.append(f"127.0.1.1\t{hostname}")
        (upper / "etc" / "hosts").write_text("\n".join(lines) + "\n")

    def _write_config(self, ct: Container) -> None:
        base = self._dir(ct)
        cfg = [
            f"lxc.uts.name = {ct.config.get('hostname', f'CT{ct.vmid}')}",
            f"lxc.rootfs.path = overlay:{self._lower(ct)}:{base / 'upper'}",
            "lxc.include = /usr/share/lxc/config/common.conf",
            "lxc.apparmor.profile = unconfined",
            "lxc.autodev = 1",
            "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed",
            "lxc.tty.max = 2",
            f"lxc.log.file = {base / 'lxc.log'}",
            "lxc.log.level = WARN",
        ]
        memory = int(ct.config.get("memory", 512))
        swap = int(ct.config.get("swap", 512))
        cfg.append(f"lxc.cgroup.memory.limit_in_bytes = {memory}M")
        if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
            cfg.append(f"lxc.cgroup.memory.memsw.limit_in_bytes = {memory + swap}M")
        if "cores" in ct.config:
            cores = min(int(ct.config["cores"]), os.cpu_count() or 1)
            cfg.append(f"lxc.cgroup.cpuset.cpus = 0-{cores - 1}")
        if "cpulimit" in ct.config and float(ct.config["cpulimit"]) > 0:
            cfg += ["lxc.cgroup.cpu.cfs_period_us = 100000", f"lxc.cgroup.cpu.cfs_quota_us = {int(float(ct.config['cpulimit']) * 100000)}"]
        features = FEATURES.parse(str(ct.config.get("features", "")))
        if features.get("nesting"):
            # What Proxmox's nesting=1 grants a container: /proc and /sys it may mount for its own children.
            cfg.append("lxc.mount.entry = proc dev/.lxc/proc proc create=dir,optional 0 0")
        for key in sorted(k for k in ct.config if k.startswith("net")):
            idx = key[3:]
            net = NET.parse(str(ct.config[key]))
            cfg += [
                f"lxc.net.{idx}.type = veth",
                f"lxc.net.{idx}.link = {net.get('bridge', self.lab.bridge)}",
                f"lxc.net.{idx}.name = {net['name']}",
                f"lxc.net.{idx}.flags = {'down' if net.get('link_down') else 'up'}",
                f"lxc.net.{idx}.hwaddr = {net.get('hwaddr', default_mac(ct.vmid, int(idx)))}",
            ]
            if "mtu" in net:
                cfg.append(f"lxc.net.{idx}.mtu = {net['mtu']}")
            ip = str(net.get("ip", ""))
            if "/" in ip:
                cfg.append(f"lxc.net.{idx}.ipv4.address = {ip}")
                if "gw" in net:
                    cfg.append(f"lxc.net.{idx}.ipv4.gateway = {net['gw']}")
        (base / "config").write_text("\n".join(cfg) + "\n")

    def start(self, ct: Container, log: TaskLog) -> None:
        self._write_identity(ct, self._dir(ct) / "upper")
        self._write_config(ct)
        log(f"starting CT {ct.vmid}")
        self._must(self._lxc("lxc-start", ct, "-d"), f"startup for container '{ct.vmid}'")
        self._must(self._lxc("lxc-wait", ct, "-s", "RUNNING", "-t", "30"), f"waiting for CT {ct.vmid} to run")

    def stop(self, ct: Container, log: TaskLog) -> None:
        log(f"stopping CT {ct.vmid}")
        if self.is_running(ct):
            self._must(self._lxc("lxc-stop", ct, "-k"), f"stopping CT {ct.vmid}")

    def shutdown(self, ct: Container, timeout: int, log: TaskLog) -> None:
        log(f"shutting down CT {ct.vmid} (timeout {timeout}s)")
        proc = self._lxc("lxc-stop", ct, "-t", str(timeout), timeout=timeout + 30)
        if proc.returncode != 0 and self.is_running(ct):
            raise BackendError(f"shutdown of CT {ct.vmid} timed out after {timeout}s")

    def destroy(self, ct: Container, log: TaskLog) -> None:
        if self.is_running(ct):
            self.stop(ct, log)
        log(f"removing {self._dir(ct)}")
        shutil.rmtree(self._dir(ct), ignore_errors=True)

    # --- snapshots: copies of the upper layer -------------------------------------------------------
    def _snapdir(self, ct: Container, name: str) -> Path:
        return self._dir(ct) / "snapshots" / name

    def snapshot(self, ct: Container, name: str, log: TaskLog) -> None:
        target = self._snapdir(ct, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        running = self.is_running(ct)
        if running:
            self._must(self._lxc("lxc-freeze", ct), f"freezing CT {ct.vmid}")
        try:
            log(f"copying the writable layer of CT {ct.vmid} to snapshot '{name}'")
            proc = subprocess.run(
                ["cp", "-a", "--reflink=auto", str(self._dir(ct) / "upper"), str(target)], capture_output=True, text=True, check=False
            )
            self._must(proc, "copying the container's layer")
        finally:
            if running:
                self._lxc("lxc-unfreeze", ct)

    def rollback(self, ct: Container, name: str, log: TaskLog) -> None:
        source = self._snapdir(ct, name)
        if not source.is_dir():
            raise BackendError(f"snapshot '{name}' has no saved layer at {source}")
        upper = self._dir(ct) / "upper"
        log(f"restoring the writable layer of CT {ct.vmid} from snapshot '{name}'")
        staging = upper.with_name("upper.rollback")
        shutil.rmtree(staging, ignore_errors=True)
        proc = subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(staging)], capture_output=True, text=True, check=False)
        self._must(proc, "restoring the container's layer")
        shutil.rmtree(upper)
        staging.rename(upper)

    def delete_snapshot(self, ct: Container, name: str, log: TaskLog) -> None:
        log(f"removing snapshot '{name}' of CT {ct.vmid}")
        shutil.rmtree(self._snapdir(ct, name), ignore_errors=True)

    # --- observation --------------------------------------------------------------------------------
    def is_running(self, ct: Container) -> bool:
        if not (self._dir(ct) / "config").exists():
            return False
        return self._lxc("lxc-info", ct, "-s", "-H", timeout=10).stdout.strip() == "RUNNING"

    def reconfigure(self, ct: Container) -> None:
        """Apply new limits to a running container at once (Proxmox hot-plugs them too)."""
        memory = int(ct.config.get("memory", 512))
        swap = int(ct.config.get("swap", 512))
        if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
            # memsw must stay >= memory: raise it first when growing, lower it last when shrinking.
            self._lxc("lxc-cgroup", ct, "memory.memsw.limit_in_bytes", f"{memory + swap}M")
            self._lxc("lxc-cgroup", ct, "memory.limit_in_bytes", f"{memory}M")
            self._lxc("lxc-cgroup", ct, "memory.memsw.limit_in_bytes", f"{memory + swap}M")
        else:
            self._lxc("lxc-cgroup", ct, "memory.limit_in_bytes", f"{memory}M")
        if "cores" in ct.config:
            cores = min(int(ct.config["cores"]), os.cpu_count() or 1)
            self._lxc("lxc-cgroup", ct, "cpuset.cpus", f"0-{cores - 1}")

    def interfaces(self, ct: Container) -> list[dict[str, Any]]:
        proc = self._lxc("lxc-attach", ct, "--", "ip", "-j", "addr", timeout=10)
        self._must(proc, f"reading the interfaces of CT {ct.vmid}")
        out: list[dict[str, Any]] = []
        for link in json.loads(proc.stdout):
            entry: dict[str, Any] = {"name": link["ifname"], "hwaddr": link.get("address", "")}
            for addr in link.get("addr_info", []):
                key = "inet" if addr["family"] == "inet" else "inet6"
                entry.setdefault(key, f"{addr['local']}/{addr['prefixlen']}")
            out.append(entry)
        return out

    def usage(self, ct: Container) -> dict[str, Any]:
        pid = self._lxc("lxc-info", ct, "-p", "-H", timeout=10).stdout.strip()
        mem = self._lxc("lxc-cgroup", ct, "memory.usage_in_bytes", timeout=10).stdout.strip()
        return {"pid": int(pid) if pid.isdigit() else None, "mem": int(mem) if mem.isdigit() else 0, "cpu": 0}

    def templates(self) -> list[dict[str, Any]]:
        out = []
        for name in settings.TEMPLATES:
            rootfs = self.lab.rootfs_of(name)
            if not (rootfs / "etc" / "os-release").exists():
                continue
            if name not in self._template_sizes:  # du over 300 MB: once per process, not per create
                self._template_sizes[name] = template.size_bytes(rootfs)
            out.append(
                {
                    "volid": f"{settings.STORAGE}:vztmpl/{name}",
                    "content": "vztmpl",
                    "format": "tzst",
                    "size": self._template_sizes[name],
                    "ctime": int(rootfs.stat().st_mtime),
                }
            )
        return out
