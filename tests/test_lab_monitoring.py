"""The lab's Prometheus and Alertmanager (Debian's packages): up with the lab on loopback only, the
project's rules loaded, and a real bot scraped through a guard's stable scrape address found by the
file-based service discovery `quantshift monitor targets` writes."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import monitoring, services
from quantshift import fleet
from tests import labkit
from tests.botkit import bots
from tests.hostkit import guard
from tests.test_bot_lab import alpaca_env

pytestmark = pytest.mark.skipif(not monitoring.available(), reason="prometheus and prometheus-alertmanager are not installed (make setup)")


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.load(resp)["data"]


@pytest.fixture
def monitored_lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    lab = labkit.lab_settings(tmp_path, "10.231.15.0/24", "qsbrm0")
    with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_MARKET_SPEED": "600"}, with_monitoring=True) as facts:
        facts["settings"] = lab
        yield facts


def listeners(pid: int) -> set[str]:
    """The TCP addresses a process listens on (from /proc, no tools needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                host, port = fields[1].split(":")
                out.add(f"{host}:{int(port, 16)}")
    return out


def test_the_labs_prometheus_scrapes_a_bot_through_its_stable_address(
    monitored_lab: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    lab = monitored_lab["settings"]
    state = services.read_state(lab)
    # Bound to loopback only (127.0.0.1 is 0100007F in /proc), Alertmanager's cluster port off.
    for name in ("prometheus", "alertmanager"):
        bound = listeners(int(state[f"{name}_pid"]))
        assert bound and all(addr.startswith("0100007F:") for addr in bound), (name, bound)
    rules = {r["name"] for g in api(lab.prometheus_port, "/api/v1/rules")["groups"] for r in g["rules"]}
    assert {"QuantShiftBrokerErrorRatioHigh", "QuantShiftLeaseHeldTwice", "QuantShiftBotDown"} <= rules

    with bots(alpaca_env(monitored_lab, redis_url), tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", what="ready")
        (tmp_path / "slots").mkdir()
        (tmp_path / "slots" / "active").symlink_to("a")
        cfg = {"base_dir": str(tmp_path), "host": "qs-test", "stage": "production", "bake_s": 60}
        cfg["bots"] = [{"name": "equity", "metrics_port": bot.port, "slot_port_offset": 100}]
        front = guard().serve_scrapes(cfg | {"scrape": {"host": "127.0.0.1", "port": labkit.free_port()}})
        try:
            host = fleet.Host("qs-test", "127.0.0.1", "production", "lab", front.server_address[1], (fleet.Bot("equity", "x"),))
            fleet.write_targets([host], monitoring.targets_dir(lab))
            deadline = time.monotonic() + 30
            found: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not found:
                query = urllib.parse.quote('quantshift_build_info{job="quantshift",bot="equity",host="qs-test"}')
                found = api(lab.prometheus_port, f"/api/v1/query?query={query}")["result"]
                time.sleep(0.5)
            assert found, "Prometheus never scraped the bot through the guard's address"
            assert found[0]["metric"]["release"] == bot.health()["release"] and found[0]["metric"]["stage"] == "production"
            up = api(lab.prometheus_port, "/api/v1/query?query=" + urllib.parse.quote('up{job="quantshift_guard"}'))["result"]
            assert [r["value"][1] for r in up] == ["1"]
        finally:
            front.shutdown()
        assert bot.terminate()[0] == 0
