"""The audit log and the per-environment deploy lock, shared by every controller.

Every deployment, promotion, gate result, override and rollback is one record: when, who, release,
stage, host, outcome, reason. Soak times are measured from these records.

Where they live: with `QUANTSHIFT_AUDIT_REDIS_URL` set (the playbooks set it from
`quantshift_audit_redis_url`: the bots' Redis of the environment), the records are a Redis stream
(`qs:audit:log`) and the lock a key (`qs:audit:lock:ENV`, owner and expiry), so every controller sees
one history, one lock and the same soak clocks. Each record this controller appends is also written to
its local JSON-lines file (the export; `quantshift deploy history --export FILE` writes all of them).
Redis unreachable: every command refuses with one clear line, before anything changes; the bots
trade on, they never read the audit. Without the variable, the file alone is the log (one controller).

Records worth a message (deploy start and end, a failed gate, rollbacks, overrides) also go to the
webhook when QUANTSHIFT_WEBHOOK_URL is set (quantshift.webhook), after they are stored.
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

from quantshift_bot.errors import UserError

KINDS = ("deploy", "promotion", "gate", "override", "rollback", "lock")
OUTCOMES = ("ok", "failed", "refused", "started")


LOCK_TTL_S = 3600.0  # a deploy lock whose run died frees itself after this long
STREAM = "qs:audit:log"
LOCK_PREFIX = "qs:audit:lock:"
_RELEASE_IF_OWNER = """
local held = redis.call('get', KEYS[1])
if held and (ARGV[2] == '1' or cjson.decode(held)['owner'] == ARGV[1]) then return redis.call('del', KEYS[1]) end
return 0
"""


class AuditError(UserError, RuntimeError):
    """The audit log or the deploy lock refuses: the message says why, before anything changed."""


def default_path() -> Path:
    return Path(os.environ.get("QUANTSHIFT_AUDIT_LOG", str(Path.home() / ".local" / "state" / "quantshift" / "audit.jsonl")))


def redis_url() -> str:
    """The shared store, if this controller has one (QUANTSHIFT_AUDIT_REDIS_URL)."""
    return os.environ.get("QUANTSHIFT_AUDIT_REDIS_URL", "").strip()


def _redis() -> Any:
    """A connection to the shared store that has answered a PING, or one clear AuditError."""
    import redis

    url = redis_url()
    try:
        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3, decode_responses=True)
        client.ping()
    except ValueError as err:
        raise AuditError(f"QUANTSHIFT_AUDIT_REDIS_URL is not a Redis URL ({err})") from None
    except redis.RedisError as err:
        where = url.split("@")[-1]  # never the password
        raise AuditError(
            f"the shared audit log and deploy lock (Redis at {where}) cannot be reached ({err.__class__.__name__}): "
            "nothing was changed; deploys wait until it is back (trading is not affected)"
        ) from None
    return client


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


def notifications() -> dict[str, Any]:
    """The controller's webhook ({}: none), or one AuditError saying what is wrong with its setting."""
    from quantshift import webhook

    try:
        return webhook.from_env()
    except webhook.WebhookError as err:
        raise AuditError(str(err)) from None


def append(record: Record, path: Path | None = None) -> Record:
    """Append one record durably, before the caller acts on it: to the shared stream when there is one
    (then to the local export too), else to the file (flock + fsync)."""
    from quantshift import webhook

    record.check()
    hook = notifications()  # a bad webhook setting refuses here, before anything is written
    if redis_url():
        _redis().xadd(STREAM, {"record": json.dumps(asdict(record), sort_keys=True)})
    _append_file(record, path)
    if hook and webhook.worth_sending(asdict(record)):
        webhook.detached(hook, asdict(record))  # returns at once: a slow receiver never delays the caller
    return record


def _append_file(record: Record, path: Path | None) -> None:
    target = path or default_path()
    line = json.dumps(asdict(record), sort_keys=True) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as err:
        raise AuditError(f"the audit log {target} cannot be written ({err.strerror}): nothing was recorded") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path | None = None) -> list[Record]:
    """Every record, oldest first: the shared stream when there is one, else the file."""
    if redis_url():
        out = []
        for entry_id, fields in _redis().xrange(STREAM):
            try:
                out.append(Record(**json.loads(fields["record"])))
            except (KeyError, ValueError, TypeError) as err:
                raise AuditError(f"{STREAM} entry {entry_id}: not an audit record ({err})") from None
        return out
    target = path or default_path()
    if not target.exists():
        return []
    try:
        lines = target.read_text().splitlines()
    except OSError as err:
        raise AuditError(f"the audit log {target} cannot be read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise AuditError(f"the audit log {target} is not a text file") from None
    out = []
    for n, line in enumerate(lines, 1):
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


def export(records: list[Record], path: Path) -> None:
    """Write `records` as JSON lines (0600), replacing the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as err:
        raise AuditError(f"cannot write {path} ({err.strerror})") from None
    with os.fdopen(fd, "w") as fh:
        fh.writelines(json.dumps(asdict(r), sort_keys=True) + "\n" for r in records)


def deploy_lock(environment: str, directory: Path | None = None, ttl: float = LOCK_TTL_S) -> DeployLock | SharedDeployLock:
    """The environment's lock: the shared one in Redis when there is a shared store, else a file."""
    return SharedDeployLock(environment, ttl) if redis_url() else DeployLock(environment, directory, ttl)


def _busy(environment: str, held: dict[str, Any] | None) -> AuditError:
    since = dt.datetime.fromtimestamp(float(held.get("since", 0)), dt.UTC).strftime("%H:%M:%S UTC") if held else "?"
    return AuditError(
        f"another deployment to {environment} is running ({held.get('owner', '?') if held else '?'} since {since}): "
        f"wait for it; if its run died, `quantshift deploy lock release --environment {environment} --force` (audited)"
    )


class SharedDeployLock:
    """One deployment per environment across every controller: a Redis key set only if absent, with the
    owner and an expiry (`ttl`), so a lock whose run died frees itself."""

    def __init__(self, environment: str, ttl: float = LOCK_TTL_S) -> None:
        self.key, self.environment, self.ttl = LOCK_PREFIX + environment, environment, ttl

    def acquire(self, owner: str) -> None:
        client = _redis()
        doc = json.dumps({"owner": owner, "since": time.time(), "pid": os.getpid(), "host": os.uname().nodename})
        if not client.set(self.key, doc, nx=True, px=max(1, int(self.ttl * 1000))):
            raise _busy(self.environment, self.holder())

    def holder(self) -> dict[str, Any] | None:
        raw = _redis().get(self.key)
        try:
            return dict(json.loads(raw)) if raw else None
        except ValueError:
            return None

    def release(self, owner: str, force: bool = False) -> bool:
        client = _redis()
        return bool(client.eval(_RELEASE_IF_OWNER, 1, self.key, owner, "1" if force else "0"))


class DeployLock:
    """One deployment per environment at a time: a lock file created exclusively, stale after `ttl`."""

    def __init__(self, environment: str, directory: Path | None = None, ttl: float = LOCK_TTL_S) -> None:
        self.path = (directory or default_path().parent) / f"deploy-{environment}.lock"
        self.environment, self.ttl = environment, ttl

    def acquire(self, owner: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AuditError(f"cannot take the {self.environment} deploy lock in {self.path.parent} ({err.strerror})") from None
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                held = self.holder()
                if held and time.time() - float(held.get("since", 0)) > self.ttl:
                    self.path.unlink(missing_ok=True)  # stale: its deploy died without releasing
                    continue
                raise _busy(self.environment, held) from None
            except OSError as err:
                raise AuditError(f"cannot take the {self.environment} deploy lock {self.path} ({err.strerror})") from None
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
