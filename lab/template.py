"""The container templates: a Debian 12 (or 13) rootfs with systemd and sshd, built once with debootstrap.

The lab publishes it as `local:vztmpl/...`; the lxc backend lays each container over it
(overlayfs), so a create costs milliseconds instead of unpacking 300 MB.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lab.errors import LabError

MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "procps",
    "openssh-server",
    "python3",
    "python3-venv",
    "python3-packaging",
    "python3-apt",
    "sudo",
    "acl",
    "ca-certificates",
    "curl",
)
# Units that only make sense on real hardware or would wait for a network the lab sets from outside.
MASKED_UNITS = ("systemd-networkd-wait-online.service", "getty@tty1.service", "systemd-timesyncd.service")
BUILD_TIMEOUT_S = 1800.0  # about a minute on a good mirror; a stalled download must not hang `lab up` for ever
PROGRESS_EVERY_S = 5.0  # at most one progress line this often (plain lines: a log or Ansible reads them too)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class TemplateError(LabError):
    """The template could not be built; the message says which step failed."""


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:120] if lines else ""


def run_watched(
    cmd: list[str],
    what: str,
    log: Path,
    timeout: float = BUILD_TIMEOUT_S,
    write: Callable[[str], None] = _to_stderr,
    every: float = PROGRESS_EVERY_S,
) -> None:
    """Run a long command with its output in `log`: a line on `write` at the start (what, the bound), then
    one every `every` seconds (elapsed, left, its latest output line); TemplateError on failure or timeout."""
    write(f"{what}: up to {timeout:g} s (output in {log})")
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                proc.kill()
                proc.wait()
                raise TemplateError(f"{what} did not finish within {timeout:g} s (last: {_last_line(log) or 'no output'}); see {log}")
            try:
                code = proc.wait(timeout=min(every, left))
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - start
                write(f"  {elapsed:.0f} s of {timeout:g} s, {max(0.0, timeout - elapsed):.0f} s left: {_last_line(log) or 'no output yet'}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise TemplateError(f"{what} failed (exit {code}):\n" + "\n".join(tail))


def build(rootfs: Path, log: Path | None = None, suite: str = "bookworm") -> Path:
    """Build the template of Debian `suite` at `rootfs` unless it is already there; a failed build leaves
    nothing but the debootstrap log (`log`, default next to the template)."""
    if (rootfs / "etc" / "os-release").exists():
        return rootfs
    if shutil.which("debootstrap") is None:
        raise TemplateError("debootstrap is not installed: run `make setup` (apt-get install debootstrap)")
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=rootfs.parent))
    try:
        run_watched(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), suite, str(work), MIRROR],
            f"lab template: debootstrap {suite} from {MIRROR}",
            log or rootfs.parent / "debootstrap.log",
        )
        _customise(work)
        work.rename(rootfs)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return rootfs


def _customise(root: Path) -> None:
    # Every container gets its own host keys and machine id at create/boot; none may be shared.
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("")
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    for unit in MASKED_UNITS:
        link = root / "etc" / "systemd" / "system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # A container without host keys (an image made from this template) makes its own at first boot.
    dropin = root / "etc" / "systemd" / "system" / "ssh.service.d" / "host-keys.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n")
    sshd_conf = root / "etc" / "ssh" / "sshd_config.d" / "quantshift-lab.conf"
    sshd_conf.parent.mkdir(parents=True, exist_ok=True)
    sshd_conf.write_text("PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
    # apt inside a lab container has no network; keep its lists out of the template.
    shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (root / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True, exist_ok=True)


def size_bytes(rootfs: Path) -> int:
    """Apparent size of the template, as the storage content listing reports it."""
    out = subprocess.run(["du", "-sb", str(rootfs)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0
