"""The audit log (append-only JSON lines on the controller) and the per-environment deploy lock.

Every deployment, promotion, gate result, override and rollback is one record: when, who, release,
stage, host, outcome, reason. Soak times are measured from these records.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("deploy", "promotion", "gate", "override", "rollback", "lock")
OUTCOMES = ("ok", "failed", "refused", "started")


class AuditError(RuntimeError):
    user_facing = True


def default_path() -> Path:
    return Path(os.environ.get("QUANTSHIFT_AUDIT_LOG", str(Path.home() / ".local" / "state" / "quantshift" / "audit.jsonl")))


@dataclass
class Record:
    kind: str
    release: str
    stage: str
    outcome: str
    host: str = ""
    reason: str = ""
    who: str = field(default_factory=lambda: os.environ.get("QUANTSHIFT_ACTOR") or getpass.getuser())
    when: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise AuditError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.outcome not in OUTCOMES:
            raise AuditError(f"outcome must be one of {', '.join(OUTCOMES)}, got {self.outcome!r}")
        if self.kind == "override" and not self.reason.strip():
            raise AuditError("an override needs a reason")


def append(record: Record, path: Path | None = None) -> Record:
    """Append one record durably (flock + fsync), before the caller acts on it."""
    record.check()
    target = path or default_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(asdict(record), sort_keys=True) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read(path: Path | None = None) -> list[Record]:
    target = path or default_path()
    if not target.exists():
        return []
    out = []
    for n, line in enumerate(target.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Record(**json.loads(line)))
        except (ValueError, TypeError) as err:
            raise AuditError(f"{target}:{n}: not an audit record ({err})") from None
    return out


def render(records: list[Record]) -> str:
    """A table; the release column is as wide as the longest id shown (ids are never cut)."""
    width = max([len("release"), *(len(r.release) for r in records)])
    lines = [f"{'when (UTC)':<20} {'who':<10} {'kind':<9} {'release':<{width}} {'stage':<10} {'host':<20} {'outcome':<8} reason"]
    for r in records:
        when = dt.datetime.fromtimestamp(r.when, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{when:<20} {r.who[:10]:<10} {r.kind:<9} {r.release:<{width}} {r.stage:<10} {r.host[:20]:<20} {r.outcome:<8} {r.reason}"
        )
    return "\n".join(lines)


class DeployLock:
    """One deployment per environment at a time: a lock file created exclusively, stale after `ttl`."""

    def __init__(self, environment: str, directory: Path | None = None, ttl: float = 3600) -> None:
        self.path = (directory or default_path().parent) / f"deploy-{environment}.lock"
        self.environment, self.ttl = environment, ttl

    def acquire(self, owner: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                held = self.holder()
                if held and time.time() - float(held.get("since", 0)) > self.ttl:
                    self.path.unlink(missing_ok=True)  # stale: its deploy died without releasing
                    continue
                since = dt.datetime.fromtimestamp(float(held.get("since", 0)), dt.UTC).strftime("%H:%M:%S UTC") if held else "?"
                raise AuditError(
                    f"another deployment to {self.environment} is running ({held.get('owner', '?') if held else '?'} since {since}): "
                    f"wait for it; if its run died, `quantshift deploy lock release --environment {self.environment} --force` (audited)"
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump({"owner": owner, "since": time.time(), "pid": os.getpid()}, fh)
            return
        raise AuditError(f"could not take the {self.environment} deploy lock")

    def holder(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return data
        except (OSError, ValueError):
            return None

    def release(self, owner: str, force: bool = False) -> bool:
        held = self.holder()
        if held is None or (held.get("owner") != owner and not force):
            return False
        self.path.unlink(missing_ok=True)
        return True
