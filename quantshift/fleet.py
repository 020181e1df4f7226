"""The fleet as the inventory describes it: every bot host, its bots and their stable scrape addresses.

`quantshift monitor targets` writes Prometheus file-based service discovery from it; `quantshift status`
asks every host's guard (`/status` on the scrape port) and the bots' Redis, in parallel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantshift_bot.errors import InputError, UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = ROOT / "inventory" / "lab" / "hosts.py"
SCRAPE_PORT = 9464  # the role's quantshift_bot_scrape_port default


@dataclass(frozen=True)
class Bot:
    name: str
    account: str


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    stage: str
    env: str
    scrape_port: int
    bots: tuple[Bot, ...]

    @property
    def scrape(self) -> str:
        return f"{self.address}:{self.scrape_port}"


def hosts(inventory: str | Path | None = None) -> list[Host]:
    """The bot hosts of an inventory (any Ansible inventory: the lab's script, a YAML file, a directory)."""
    source = str(inventory or os.environ.get("ANSIBLE_INVENTORY") or DEFAULT_INVENTORY)
    if not Path(source).exists():
        raise InputError(f"inventory {source} does not exist")
    tool = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if tool is None:
        raise UserError("ansible-inventory is not installed: run `make setup`")
    done = subprocess.run([tool, "-i", source, "--list"], capture_output=True, text=True, check=False, timeout=120, cwd=ROOT)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"inventory {source} could not be read: {last}")
    try:
        hostvars: dict[str, dict[str, Any]] = json.loads(done.stdout).get("_meta", {}).get("hostvars", {})
    except ValueError:
        raise UserError(f"inventory {source}: ansible-inventory gave no JSON") from None
    out = []
    for name, hv in sorted(hostvars.items()):
        instances = hv.get("quantshift_bot_instances") or []
        if not instances:
            continue
        bots = tuple(Bot(str(b["name"]), str((b.get("env") or {}).get("QS_ACCOUNT_ID", ""))) for b in instances)
        env = "lab" if hv.get("quantshift_lab") else str(hv.get("quantshift_environment") or "production")
        port = int(hv.get("quantshift_bot_scrape_port") or SCRAPE_PORT)
        out.append(Host(name, str(hv.get("ansible_host") or name), str(hv.get("quantshift_stage_of_host") or ""), env, port, bots))
    return out


def targets(fleet: list[Host]) -> dict[str, list[dict[str, Any]]]:
    """File-based service discovery, one list per job: each bot at its host's stable scrape address (the
    guard forwards /metrics/BOT to the active slot), and each host's guard."""
    bots = [
        {
            "targets": [h.scrape],
            "labels": {"__metrics_path__": f"/metrics/{b.name}", "bot": b.name, "host": h.name, "env": h.env, "stage": h.stage},
        }
        for h in fleet
        for b in h.bots
    ]
    guards = [{"targets": [h.scrape], "labels": {"host": h.name, "env": h.env, "stage": h.stage}} for h in fleet]
    return {"quantshift": bots, "quantshift_guard": guards}


def write_targets(fleet: list[Host], directory: Path) -> list[Path]:
    """One JSON file per job, replaced atomically (Prometheus re-reads a file when it changes)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write targets to {directory}: {err.strerror}") from None
    written = []
    for job, entries in targets(fleet).items():
        path = directory / f"{job}.json"
        tmp = path.with_suffix(".json.new")
        tmp.write_text(json.dumps(entries, indent=1) + "\n")
        tmp.replace(path)
        written.append(path)
    return written


# --- quantshift status -------------------------------------------------------------------------------
def _ask(host: Host, timeout: float) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    began = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{host.scrape}/status", timeout=timeout) as resp:
            doc: dict[str, Any] = json.load(resp)
        return {"ok": True, "took_s": round(time.monotonic() - began, 3), **doc}
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return {"ok": False, "error": f"{host.name} ({host.scrape}) did not answer: {reason}"}


def _leases(redis_url: str, accounts: set[str]) -> dict[str, Any]:
    import redis

    from quantshift_bot.lease import leases_of

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
        return {"ok": True, "accounts": {a: dict(sorted(leases_of(client, a).items())) for a in sorted(accounts) if a}}
    except (redis.RedisError, ValueError) as err:
        return {"ok": False, "error": f"the bots' Redis did not answer: {err}"}


def _in_flight(now: float) -> list[dict[str, Any]]:
    """Each release's latest stage from the audit log, and its soak clock toward the next stage."""
    from quantshift import audit, soak

    try:
        records = audit.read()
    except (audit.AuditError, OSError) as err:
        return [{"error": f"the audit log could not be read: {err}"}]
    latest: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: r.when):
        if r.kind in ("deploy", "promotion", "rollback") and r.release and r.stage in soak.STAGES:
            latest[r.release] = r
    out = []
    for release, r in sorted(latest.items(), key=lambda kv: -kv[1].when)[:5]:
        since = soak.passed_since(records, release, r.stage)
        out.append(
            {
                "release": release,
                "stage": r.stage,
                "last": r.kind,
                "outcome": r.outcome,
                "since": since,
                "soaked_s": None if since is None else round(now - since, 1),
            }
        )
    return out


def status(fleet: list[Host], redis_url: str, timeout: float = 3.0) -> dict[str, Any]:
    """Every host's guard and the bots' Redis, asked at once: a slow or dead host costs `timeout`, not more."""
    now = time.time()
    accounts = {b.account for h in fleet for b in h.bots}
    with ThreadPoolExecutor(max_workers=min(32, len(fleet) + 2)) as pool:
        asked = {h.name: pool.submit(_ask, h, timeout) for h in fleet}
        leases = pool.submit(_leases, redis_url, accounts) if redis_url else None
        flight = pool.submit(_in_flight, now)
        return {
            "at": now,
            "hosts": {name: f.result() for name, f in asked.items()},
            "leases": leases.result() if leases else {"ok": False, "error": "no Redis URL (--redis-url or QUANTSHIFT_AUDIT_REDIS_URL)"},
            "releases": flight.result(),
        }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} d"


def render(doc: dict[str, Any], fleet: list[Host]) -> str:
    rows = [("HOST", "BOT", "SLOT", "RELEASE", "STRATEGY", "MODE", "STATUS", "LEASES", "LAST TICK", "GUARD")]
    problems = []
    for h in fleet:
        got = doc["hosts"].get(h.name) or {}
        if not got.get("ok"):
            problems.append(got.get("error", f"{h.name}: no answer"))
            rows += [(h.name, b.name, "?", "?", "?", "?", "no answer", "", "", "") for b in h.bots]
            continue
        bake = got.get("bake") or {}
        if bake and not bake.get("outcome"):
            left = bake.get("left_s")
            guard = f"baking {bake['release']}" + (" (whole canary)" if left is None else f", {_age(left)} left")
        elif bake:
            guard = f"{bake.get('outcome')} {bake.get('release')}" + (f" ({bake.get('trigger')})" if bake.get("trigger") else "")
        else:
            guard = "idle"
        for b in h.bots:
            info = (got.get("bots") or {}).get(b.name) or {}
            for slot, s in sorted((info.get("slots") or {}).items()):
                active = "*" if slot == info.get("active") else " "
                held = ",".join(sym for sym, mine in (s.get("lease") or {}).items() if mine) or "-"
                rows.append(
                    (h.name, b.name, f"{slot}{active}", str(s.get("release")), str(s.get("strategy") or "-"), str(s.get("mode")),
                     str(s.get("status")), held, _age(s.get("last_tick_age_s")), guard)
                )  # fmt: skip
            if not info.get("slots"):
                rows.append((h.name, b.name, "-", "-", "-", "-", "not running", "-", "-", guard))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("(* the active slot)")
    leases = doc.get("leases") or {}
    if leases.get("ok"):
        for account, held in leases["accounts"].items():
            owners = ", ".join(f"{sym} {owner.split('#')[0]}" for sym, owner in held.items() if sym != "yielded") or "none held"
            lines.append(f"leases {account}: {owners}")
    else:
        problems.append(leases.get("error", "leases unknown"))
    for r in doc.get("releases") or []:
        if "error" in r:
            problems.append(r["error"])
        else:
            soaked = f", {_age(r['soaked_s'])} clean in {r['stage']}" if r.get("soaked_s") is not None else ""
            lines.append(f"release {r['release']}: {r['stage']} ({r['last']} {r['outcome']}){soaked}")
    lines += [f"NOT ANSWERING: {p}" for p in problems]
    return "\n".join(lines)
