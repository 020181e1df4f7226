"""What the lab tests and benches share to drive the pipeline on a private LXC lab: the environment that
points the quantshift command and the playbooks at it, running a playbook, reading a bot's /healthz,
building a deliberately bad release, and checking that the books agree after a fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis

from lab import settings
from quantshift_bot.state import State
from tests import ROOT, labkit


def lab_env(facts: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    return lab_env_for(facts["settings"], tmp_path)


def lab_env_for(lab: settings.LabSettings, tmp_path: Path) -> dict[str, str]:
    """The environment that points the quantshift command, the inventory and the playbooks at a
    private lab (its spec written into `tmp_path`). The audit log and deploy lock are shared in the
    lab's Redis, as on a real environment; this controller's export file is in `tmp_path`."""
    from lab import services

    spec = labkit.lab_spec_for(lab, tmp_path / "containers.yml")
    try:
        shared = {"QUANTSHIFT_AUDIT_REDIS_URL": str(services.env(lab)["redis_url"])}
    except services.LabError:
        shared = {}  # the lab is not up yet (the demo brings it up itself and points the audit at it)
    return (
        os.environ
        | {
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "QUANTSHIFT_LAB_SPEC": str(spec),
            **lab.as_env(),
            "QUANTSHIFT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "ANSIBLE_FORCE_COLOR": "0",
        }
        | shared
    )


def destroy_all(env: dict[str, str]) -> None:
    """Remove the spec's containers (the lab is shared by the session's lxc tests: leave it empty)."""
    subprocess.run(
        [sys.executable, "-m", "quantshift", "provision", "destroy", "--spec", env["QUANTSHIFT_LAB_SPEC"], "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def lab_facts(env: dict[str, str]) -> dict[str, Any]:
    """The lab's connection facts, secrets included (`quantshift lab env --json`)."""
    out = subprocess.run([sys.executable, "-m", "quantshift", "lab", "env", "--json"], env=env, capture_output=True, text=True, check=True)
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def flat(text: str) -> str:
    """Ansible's YAML results wrap long messages: compare text with the line breaks folded."""
    return " ".join(text.replace("''", "'").split())


def playbook(env: dict[str, str], name: str, *extra: str, from_playbooks: bool = False) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook playbooks/NAME` from the repository root, or `ansible-playbook NAME` run in playbooks/."""
    where, path = (ROOT / "playbooks", name) if from_playbooks else (ROOT, f"playbooks/{name}")
    return subprocess.run(["ansible-playbook", path, *extra], cwd=where, env=env, capture_output=True, text=True, timeout=900, check=False)


def healthz(ip: str, port: int) -> dict[str, Any]:
    """A bot's /healthz; a 503 (degraded, stalled, stopping) carries the document too."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/healthz", timeout=5) as resp:
            doc: dict[str, Any] = json.load(resp)
            return doc
    except urllib.error.HTTPError as err:
        failed: dict[str, Any] = json.loads(err.read() or b"{}")
        return failed


def build_bad_release(dest: Path, defect: str = "crash") -> str:
    """A deliberately bad release's wheelhouse (scripts/build-bad-release.sh DEST DEFECT); its path."""
    built = subprocess.run(
        [str(ROOT / "scripts/build-bad-release.sh"), str(dest), defect], capture_output=True, text=True, timeout=600, check=False
    )
    if built.returncode != 0:
        raise RuntimeError(f"build-bad-release.sh {defect} failed: {built.stderr[-2000:]}")
    return built.stdout.strip()


def host_status(ip: str) -> dict[str, Any]:
    """What the host's guard says at its scrape address (/status): each bot's slots, the active one, the bake."""
    with urllib.request.urlopen(f"http://{ip}:9464/status", timeout=5) as resp:
        doc: dict[str, Any] = json.load(resp)
    return doc


def bot_health(ip: str, bot: str) -> dict[str, Any]:
    """The /healthz summary of `bot`'s active slot on a host, from its guard."""
    info = host_status(ip)["bots"][bot]
    return dict(info["slots"].get(info["active"]) or {})


def active_health(ip: str) -> dict[str, Any]:
    """/healthz of whichever slot answers (a on 9108, b on 9208)."""
    for port in (9108, 9208):
        try:
            return healthz(ip, port)
        except OSError:
            continue
    raise AssertionError(f"no bot answers on {ip}")


def attach(lab: dict[str, Any], vmid: int, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command in a container without SSH (lxc-attach on the lab's own containers)."""
    settings = lab["lab"]["settings"]
    return subprocess.run(
        ["lxc-attach", "-P", str(settings.lxc_path), "-n", str(vmid), "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(what: str, check: Any, timeout: float = 120) -> None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_books_agree(env: dict[str, str], account: str, book: str, journal: str) -> None:
    """No order doubled (the exchange never saw a client order id twice), no position lost (Redis and
    the exchange agree), and no order left open and orphaned (every open order is one the bots know)."""
    assert "client_order_id must be unique" not in journal
    facts = lab_facts(env)
    stats = urllib.request.Request(facts["alpaca_url"] + "/lab/stats", headers={"X-Lab-Admin": facts["exchange_admin_token"]})
    keys = facts["alpaca"][book]
    open_orders = urllib.request.Request(
        facts["alpaca_url"] + "/v2/orders?status=open&limit=500",
        headers={"APCA-API-KEY-ID": keys["key_id"], "APCA-API-SECRET-KEY": keys["secret_key"]},
    )
    state = State(redis.Redis.from_url(facts["redis_url"]), account)

    def agree() -> bool:
        with urllib.request.urlopen(stats, timeout=5) as resp:
            exchange = {s: q for s, q in json.load(resp)[book]["positions"].items() if abs(q) > 1e-9}
        mine = {s: p.qty for s, p in state.positions().items()}
        return exchange.keys() == mine.keys() and all(abs(exchange[s] - mine[s]) < 1e-6 for s in mine)

    wait_for("Redis and the exchange to agree on positions", agree, timeout=15)
    with urllib.request.urlopen(open_orders, timeout=5) as resp:
        at_exchange = {o["client_order_id"] for o in json.load(resp)}
    known = set(state.orders())

    def parent(cid: str) -> str:  # a bracket's take-profit and stop-loss legs carry its id plus -tp / -sl
        return cid.rsplit("-", 1)[0] if cid.endswith(("-tp", "-sl")) else cid

    orphans = sorted(cid for cid in at_exchange if parent(cid) not in known)
    assert not orphans, f"open orders the bots do not know: {orphans}"


def journal(lab: dict[str, Any], vmid: int) -> str:
    return attach(lab, vmid, "journalctl", "--no-pager", "-o", "cat", "-u", "quantshift-equity@*").stdout


def health_or_none(where: str, raw: bool = False) -> dict[str, Any]:
    urls = [f"http://{where}/healthz"] if raw else [f"http://{where}:{p}/healthz" for p in (9108, 9208)]
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                doc: dict[str, Any] = json.load(resp)
                return doc
        except OSError:
            continue
        except ValueError:
            continue
    return {}


def alpaca(env: dict[str, str], path: str, body: dict[str, Any] | None = None) -> Any:
    """The lab's Alpaca API as the live account (and its /lab admin switches): GET, or POST `body`."""
    facts = lab_facts(env)
    keys = facts["alpaca"]["live"]
    headers = {"APCA-API-KEY-ID": keys["key_id"], "APCA-API-SECRET-KEY": keys["secret_key"], "X-Lab-Admin": facts["exchange_admin_token"]}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(facts["alpaca_url"] + path, data=data, headers=headers | {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def journal_events(facts: dict[str, Any], ip: str, unit: str, since: float) -> list[dict[str, object]]:
    """The JSON event lines a unit (a glob such as quantshift-equity@*) wrote on a lab host since a time."""
    from quantshift import switchover

    out = labkit.ssh(facts, ip, f"journalctl --no-pager -o cat -u '{unit}' --since @{int(since) - 1}", timeout=60).stdout
    return switchover.events(out.splitlines())
