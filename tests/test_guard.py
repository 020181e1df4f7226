"""The release guard's decisions and records, without a host: its trigger rules, its bake file, and its
rollback record in the shared audit log (a real Redis). Its hand-back on a host is tested on LXC
(tests/test_pipeline.py: a release that goes bad after the gate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import hostkit
from tests.hostkit import guard

SCRIPT = hostkit.GUARD
THRESHOLDS = {"max_restarts": 0, "stalled_s": 2, "max_error_rate": 0.05, "max_drawdown": 0.15, "max_win_rate_drop": 0.10, "min_trades": 10}


def healthy(**over: Any) -> dict[str, Any]:
    return {"restarts": 0, "status": "ready", "error_rate": 0.0, "trades": 20, "win_rate": 0.55, "drawdown": 0.01} | over


@pytest.mark.parametrize(
    ("figures", "stalled_for", "fired"),
    [
        (healthy(), None, None),
        (healthy(restarts=1), None, "restarts"),
        (healthy(status="stalled"), 2.5, "stalled"),
        (healthy(status="stalled"), 1.0, None),  # not for long enough yet
        (healthy(error_rate=0.2), None, "error_rate"),
        (healthy(drawdown=0.3), None, "drawdown"),
        (healthy(win_rate=0.30), None, "win_rate"),  # 0.60 before: 30 points lower
        (healthy(win_rate=0.30, trades=5), None, None),  # too few trades to judge
        (healthy(win_rate=0.52), None, None),  # within 10 points
    ],
)
def test_each_trigger_fires_on_its_own_figure_and_only_then(figures: dict[str, Any], stalled_for: float | None, fired: str | None) -> None:
    g = guard()
    cfg = {"thresholds": THRESHOLDS}
    bake = {"baseline": {"equity": {"win_rate": 0.60, "trades": 40}}}
    now = 1000.0
    stalled = {"equity": now - stalled_for} if stalled_for is not None else {}
    found = g.evaluate(cfg, bake, {"equity": figures}, stalled, now)
    assert (found[0] if found else None) == fired
    if found:
        assert found[1] == "equity" and found[2]  # which bot, and a reason an operator can read


def test_a_bake_starts_at_the_switch_and_status_reports_it(tmp_path: Path) -> None:
    config = tmp_path / "guard.json"
    base = tmp_path / "opt"
    config.write_text(
        json.dumps(
            {
                "base_dir": str(base),
                "host": "h1",
                "stage": "production",
                "bake_s": 600,
                "interval_s": 0.5,
                "decide_within_s": 5,
                "thresholds": THRESHOLDS,
                "audit_redis_url": "",
                "bots": [{"name": "equity", "metrics_port": 1, "slot_port_offset": 100}],
            }
        )
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), *args, "--config", str(config)], capture_output=True, text=True, timeout=60)

    started = run(
        "switched",
        "--slot",
        "b",
        "--release",
        "r2",
        "--previous-slot",
        "a",
        "--previous-release",
        "r1",
        "--baseline",
        '{"equity": {"win_rate": 0.6}}',
    )
    assert started.returncode == 0, started.stderr
    bake = json.loads((base / "guard" / "bake.json").read_text())
    assert (bake["release"], bake["slot"], bake["previous_release"], bake["baseline"]["equity"]["win_rate"]) == ("r2", "b", "r1", 0.6)
    assert (base / "guard" / "bake.json").stat().st_mode & 0o777 == 0o600
    status = json.loads(run("status", "--json").stdout)
    assert status["watching"] == "r2" and status["previous"] == "r1" and 590 < status["bake_left_s"] <= 600
    missing = run("switched", "--slot", "b")
    assert missing.returncode != 0 and "required" in missing.stderr and "Traceback" not in missing.stderr


def test_the_guards_rollback_record_joins_the_shared_audit_log(tmp_path: Path, redis_url: str) -> None:
    g = guard()
    (tmp_path / "guard").mkdir()
    cfg = {"base_dir": str(tmp_path), "audit_redis_url": redis_url}
    record = {"kind": "rollback", "release": "r2", "stage": "production", "outcome": "ok", "host": "h1", "reason": "guard: error_rate",
              "who": "guard@h1", "when": 1.0, "extra": {"figures": {}}}  # fmt: skip
    assert g.audit(cfg, record) == "shared"
    env = os.environ | {"QUANTSHIFT_AUDIT_REDIS_URL": redis_url}
    shown = subprocess.run(
        [sys.executable, "-m", "quantshift", "deploy", "history", "--json", "--audit-log", str(tmp_path / "ctl.jsonl")],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    assert [(r["kind"], r["who"]) for r in json.loads(shown.stdout)] == [("rollback", "guard@h1")]
    # Redis gone: the record is kept on the host, and the guard says so instead of failing the rollback.
    assert g.audit(cfg | {"audit_redis_url": "redis://127.0.0.1:1/0"}, record).startswith("local only")
    assert len((tmp_path / "guard" / "audit.jsonl").read_text().splitlines()) == 2


def test_a_hand_back_rewrites_the_roles_local_facts_to_what_trades_now(tmp_path: Path) -> None:
    g = guard()
    facts = tmp_path / "quantshift.fact"
    facts.write_text(json.dumps({"release": "r2", "previous": "r1", "slot": "a", "active_ports": {"equity": 9108}, "bots": ["equity"]}))
    cfg = {"facts_path": str(facts), "bots": [{"name": "equity", "metrics_port": 9108, "slot_port_offset": 100}]}
    g.update_facts(cfg, "r1", "r2", "b")
    doc = json.loads(facts.read_text())
    assert (doc["release"], doc["previous"], doc["slot"], doc["active_ports"], doc["bots"]) == (
        "r1",
        "r2",
        "b",
        {"equity": 9208},
        ["equity"],
    )
    assert facts.stat().st_mode & 0o777 == 0o644
    g.update_facts(cfg | {"facts_path": str(tmp_path / "none.fact")}, "r1", "r2", "b")  # a host without facts: nothing to fix
    assert not (tmp_path / "none.fact").exists()


def test_the_scrape_address_follows_the_active_slot(tmp_path: Path, redis_url: str) -> None:
    """One address per bot whatever slot trades: the guard forwards /metrics/BOT to slots/active."""
    import urllib.error
    import urllib.request

    import redis as redis_lib

    from quantshift_bot.brokers.sim import SimBroker
    from quantshift_bot.config import load
    from quantshift_bot.engine import Engine
    from quantshift_bot.health import HealthServer
    from tests.labkit import free_port

    g = guard()
    port, offset = free_port(), 100
    servers = {}
    for slot, release in (("a", "r1"), ("b", "r2")):
        env = {"QS_MODE": "paper", "QS_BROKER": "sim", "QS_SYMBOLS": "AAA", "QS_ACCOUNT_ID": "acct"}
        env |= {"QS_REDIS_URL": redis_url, "QS_RELEASE": release, "QS_SLOT": slot}
        engine = Engine(load(env), SimBroker(["AAA"]), redis_lib.Redis.from_url(redis_url))
        servers[slot] = HealthServer(engine, "127.0.0.1", port + (offset if slot == "b" else 0))
        servers[slot].start()
    (tmp_path / "slots").mkdir()
    cfg = {"base_dir": str(tmp_path), "host": "h1", "stage": "production", "bake_s": 60}
    cfg["bots"] = [{"name": "equity", "metrics_port": port, "slot_port_offset": offset}]
    front = g.serve_scrapes(cfg | {"scrape": {"host": "127.0.0.1", "port": free_port()}})
    url = f"http://127.0.0.1:{front.server_address[1]}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    try:
        for slot, release in (("a", "r1"), ("b", "r2")):
            os.symlink(slot, tmp_path / "slots" / "active.new")
            os.replace(tmp_path / "slots" / "active.new", tmp_path / "slots" / "active")
            code, text = get("/metrics/equity")
            assert code == 200 and f'quantshift_build_info{{mode="paper",release="{release}",slot="{slot}"}} 1.0' in text
        status = json.loads(get("/status")[1])  # what `quantshift status` reads of each host
        assert (status["host"], status["active"], status["bake"]) == ("h1", "b", None)
        assert {slot: doc["release"] for slot, doc in status["bots"]["equity"]["slots"].items()} == {"a": "r1", "b": "r2"}
        servers["b"].shutdown()
        servers["b"].server_close()
        g.unit_state = lambda unit: ("activating", "auto-restart", 1)  # systemd's view (LXC tests run the real one)
        code, text = get("/metrics/equity")
        assert code == 503 and f"port {port + offset}" in text  # the active slot is down: Prometheus sees the bot down
        g.unit_state = lambda unit: ("inactive", "dead", 0)
        code, text = get("/metrics/equity")
        assert code == 200 and "stopped on purpose" in text and "quantshift_" not in text  # not down: nothing runs
        code, text = get("/metrics")
        assert code == 200 and "quantshift_guard_up 1" in text and "quantshift_guard_baking 0" in text
        assert get("/metrics/nobot")[0] == 404
    finally:
        front.shutdown()
        servers["a"].shutdown()
