"""The fleet from an inventory: Prometheus targets, and `quantshift status` against real bots behind a real
guard's scrape address, with one host that does not answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import yaml

from tests.hostkit import guard
from tests.labkit import free_port


def inventory(path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    """A YAML inventory whose bots come from group_vars, as the lab's and production's do."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "group_vars").mkdir(exist_ok=True)
    (path / "group_vars" / "primary.yml").write_text(
        yaml.safe_dump(
            {
                "quantshift_stage_of_host": "production",
                "quantshift_bot_instances": [
                    {"name": "equity", "metrics_port": 9108, "env": {"QS_ACCOUNT_ID": "acct-eq"}},
                    {"name": "crypto", "metrics_port": 9109, "env": {"QS_ACCOUNT_ID": "acct-cb"}},
                ],
            }
        )
    )
    (path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"primary": {"hosts": hosts}, "other": {"hosts": {"db": {}}}}}}))
    return path / "hosts.yml"


def quantshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quantshift", *args], capture_output=True, text=True, timeout=120, check=False)


def test_targets_name_each_bot_at_its_hosts_stable_address(tmp_path: Path) -> None:
    inv = inventory(
        tmp_path / "inv", {"qs-a": {"ansible_host": "10.0.0.5"}, "qs-b": {"ansible_host": "10.0.0.6", "quantshift_bot_scrape_port": 9500}}
    )
    done = quantshift("monitor", "targets", "-i", str(inv), "--out", str(tmp_path / "sd"))
    assert done.returncode == 0, done.stderr
    bots = json.loads((tmp_path / "sd" / "quantshift.json").read_text())
    got = {(t["targets"][0], t["labels"]["__metrics_path__"], t["labels"]["bot"], t["labels"]["host"], t["labels"]["stage"]) for t in bots}
    assert got == {
        ("10.0.0.5:9464", "/metrics/equity", "equity", "qs-a", "production"),
        ("10.0.0.5:9464", "/metrics/crypto", "crypto", "qs-a", "production"),
        ("10.0.0.6:9500", "/metrics/equity", "equity", "qs-b", "production"),
        ("10.0.0.6:9500", "/metrics/crypto", "crypto", "qs-b", "production"),
    }  # the host without bots (db) is no target
    guards = json.loads((tmp_path / "sd" / "quantshift_guard.json").read_text())
    assert sorted(t["targets"][0] for t in guards) == ["10.0.0.5:9464", "10.0.0.6:9500"]
    missing = quantshift("monitor", "targets", "-i", str(tmp_path / "nope.yml"), "--out", str(tmp_path / "sd"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr


@pytest.fixture
def host_front(tmp_path: Path, redis_url: str) -> Iterator[dict[str, Any]]:
    """Two real bots (slot a) behind a real guard front, as on a bot host."""
    from quantshift_bot.brokers.sim import SimBroker
    from quantshift_bot.config import load
    from quantshift_bot.engine import Engine
    from quantshift_bot.health import HealthServer

    servers = []
    bots = []
    engines = {}
    for name, account in (("equity", "acct-eq"), ("crypto", "acct-cb")):
        port = free_port()
        env = {"QS_MODE": "live", "QS_BROKER": "sim", "QS_SYMBOLS": "AAA", "QS_ACCOUNT_ID": account, "QS_REDIS_URL": redis_url}
        engine = Engine(load(env | {"QS_RELEASE": f"{name}-r1", "QS_SLOT": "a"}), SimBroker(["AAA"]), redis_lib.Redis.from_url(redis_url))
        engines[name] = engine
        assert engine.leases is not None
        engine.leases.refresh()  # it takes its lease as a live bot does
        server = HealthServer(engine, "127.0.0.1", port)
        server.start()
        servers.append(server)
        bots.append({"name": name, "metrics_port": port, "slot_port_offset": 100})
    (tmp_path / "slots").mkdir()
    (tmp_path / "slots" / "active").symlink_to("a")
    cfg = {"base_dir": str(tmp_path), "host": "qs-a", "stage": "production", "bake_s": 60, "bots": bots}
    front = guard().serve_scrapes(cfg | {"scrape": {"host": "127.0.0.1", "port": free_port()}})
    try:
        yield {"port": front.server_address[1], "engines": engines}
    finally:
        front.shutdown()
        for server in servers:
            server.shutdown()
        client = redis_lib.Redis.from_url(redis_url)
        for key in client.scan_iter("qs:lease:acct-*"):
            client.delete(key)


def test_status_shows_every_bot_and_names_the_host_that_did_not_answer(tmp_path: Path, redis_url: str, host_front: dict[str, Any]) -> None:
    dead = free_port()
    inv = inventory(
        tmp_path / "inv",
        {
            "qs-a": {"ansible_host": "127.0.0.1", "quantshift_bot_scrape_port": host_front["port"]},
            "qs-gone": {"ansible_host": "127.0.0.1", "quantshift_bot_scrape_port": dead},
        },
    )
    began = time.monotonic()
    done = quantshift("status", "-i", str(inv), "--redis-url", redis_url, "--json", "--timeout", "2")
    took = time.monotonic() - began
    assert done.returncode == 1, done.stderr  # one host did not answer
    doc = json.loads(done.stdout)
    a = doc["hosts"]["qs-a"]
    assert a["ok"] and a["active"] == "a"
    from quantshift_bot.health import document

    assert {
        name: (b["slots"]["a"]["release"], b["slots"]["a"]["status"], b["slots"]["a"]["strategy"]) for name, b in a["bots"].items()
    } == {name: (f"{name}-r1", document(engine)["status"], "ma_cross") for name, engine in host_front["engines"].items()}
    assert not doc["hosts"]["qs-gone"]["ok"] and f"127.0.0.1:{dead}" in doc["hosts"]["qs-gone"]["error"]
    assert doc["leases"]["ok"] and set(doc["leases"]["accounts"]["acct-eq"]) == {"AAA"}
    assert took < 10  # hosts asked in parallel, each bounded by --timeout
    table = quantshift("status", "-i", str(inv), "--redis-url", redis_url)
    assert "NOT ANSWERING: qs-gone" in table.stdout and "equity-r1" in table.stdout and "a*" in table.stdout
    assert any(line.startswith("HOST") and "STRATEGY" in line for line in table.stdout.splitlines()) and "ma_cross" in table.stdout
