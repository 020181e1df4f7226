"""The rollout's checks that need no lab: release manifests, the shadow check, the gate's watch,
soak durations from the command line, and the switchover gap read from the bots' log lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quantshift import gate, manifest, shadow, switchover
from tests import ROOT


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quantshift", *args], capture_output=True, text=True, timeout=60, check=False, env=env)


# --- release manifests ---------------------------------------------------------------------------
def test_manifest_good_and_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("release: 2026.11.24-1\nrisk_class: medium\ndescription: wider stops\n")
    assert manifest.load(good) == manifest.Manifest("2026.11.24-1", "medium", "wider stops", "unknown")
    out = cli("deploy", "manifest", str(good))
    assert out.returncode == 0 and json.loads(out.stdout)["risk_class"] == "medium"

    bad = tmp_path / "bad.yml"
    bad.write_text("release: ../etc\nrisk_class: extreme\nowner: me\n")
    with pytest.raises(manifest.ManifestError) as err:
        manifest.load(bad)
    for part in ("unknown key(s) owner", "release must be an id", "risk_class must be one of low, medium, high, got 'extreme'"):
        assert part in str(err.value)
    out = cli("deploy", "manifest", str(bad))
    assert out.returncode == 2 and "risk_class" in out.stderr and not out.stdout
    (tmp_path / "list.yml").write_text("- a\n")
    assert cli("deploy", "manifest", str(tmp_path / "list.yml")).returncode == 2
    assert cli("deploy", "manifest", str(tmp_path / "missing.yml")).returncode == 2


# --- the shadow check ----------------------------------------------------------------------------
class Feeds:
    """Scripted /healthz documents for a shadow and a primary, one per poll."""

    def __init__(self, shadow_docs: list[dict[str, Any]], primary_docs: list[dict[str, Any]]) -> None:
        self.docs = {"shadow": shadow_docs, "primary": primary_docs}
        self.polls = 0

    def fetch(self, url: str) -> dict[str, Any]:
        docs = self.docs[url]
        doc = docs[min(self.polls // 2, len(docs) - 1)]
        self.polls += 1
        return doc


def doc(mode: str, market: dict[str, Any], would_be: int = 0, orders: int = 0, account: str = "acct") -> dict[str, Any]:
    return {"mode": mode, "account": account, "market": market, "would_be_orders": would_be, "orders_sent": orders}


def run_shadow(feeds: Feeds, timeout: float = 10) -> gate.GateResult:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    return shadow.check("shadow", "primary", shadow.ShadowExpectations(1, timeout, 1.0), feeds.fetch, lambda: now[0], sleep)


def test_shadow_passes_once_it_saw_the_same_bars_and_recorded_would_be_orders() -> None:
    bar1, bar2 = {"t": 60, "c": 10.0}, {"t": 120, "c": 11.0}
    feeds = Feeds(
        [doc("shadow", {"AAA": bar1, "BBB": bar1}), doc("shadow", {"AAA": bar2, "BBB": bar2}, would_be=2)],
        [doc("live", {"AAA": bar1, "BBB": bar2}), doc("live", {"AAA": bar2, "BBB": bar2})],
    )
    result = run_shadow(feeds)
    assert result.passed, result.table()
    assert {c.name: c.value for c in result.checks}["same market data"] == "2/2 symbols"


@pytest.mark.parametrize(
    ("shadow_doc", "primary_doc", "failing"),
    [
        (doc("shadow", {"AAA": {"t": 60, "c": 10.0}}, would_be=1), doc("live", {"AAA": {"t": 60, "c": 10.5}}), "same market data"),
        (doc("shadow", {"AAA": {"t": 60, "c": 10.0}}), doc("live", {"AAA": {"t": 60, "c": 10.0}}), "would-be orders recorded"),
        (doc("shadow", {"AAA": {"t": 60, "c": 1.0}}, 1, orders=1), doc("live", {"AAA": {"t": 60, "c": 1.0}}), "orders sent by the shadow"),
        (doc("canary", {"AAA": {"t": 60, "c": 1.0}}, 1), doc("live", {"AAA": {"t": 60, "c": 1.0}}), "shadow mode"),
        (doc("shadow", {"AAA": {"t": 60, "c": 1.0}}, 1, account="x"), doc("live", {"AAA": {"t": 60, "c": 1.0}}), "same account"),
        ({}, doc("live", {"AAA": {"t": 60, "c": 1.0}}), "shadow mode"),
    ],
)
def test_shadow_fails_and_names_the_check(shadow_doc: dict[str, Any], primary_doc: dict[str, Any], failing: str) -> None:
    result = run_shadow(Feeds([shadow_doc], [primary_doc]))
    assert not result.passed
    assert failing in [c.name for c in result.checks if not c.ok], result.table()
    assert "FAILED" in result.table()


def test_a_shadow_that_sent_an_order_fails_at_once() -> None:
    feeds = Feeds([doc("shadow", {}, orders=1)], [doc("live", {"AAA": {"t": 1, "c": 1.0}})])
    run_shadow(feeds, timeout=100)
    assert feeds.polls == 2  # one look, no waiting out the timeout


# --- the gate's watch ----------------------------------------------------------------------------
def test_gate_watch_fails_at_the_first_bad_look(monkeypatch: pytest.MonkeyPatch) -> None:
    looks = iter([0.0, 0.01, 0.2, 0.0])
    calls = []

    def check(url: str, t: Any) -> dict[str, Any]:
        err = next(looks)
        calls.append(err)
        return {"health": {"status": "ready"}, "metrics": {"quantshift_broker_error_ratio": err}}

    monkeypatch.setattr(gate.monitor, "check", check)
    now = [0.0]
    result = gate.run(
        "http://x",
        None,
        gate.GateThresholds(),
        0,
        observe_s=30,
        poll_s=1,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert not result.passed and calls == [0.0, 0.01, 0.2]
    assert {c.name: c.ok for c in result.checks}["error rate"] is False


def test_gate_watch_passes_when_every_look_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        gate.monitor, "check", lambda url, t: {"health": {"status": "ready"}, "metrics": {"quantshift_broker_error_ratio": 0.0}}
    )
    now = [0.0]
    looks = []

    def sleep(s: float) -> None:
        looks.append(s)
        now[0] += s

    result = gate.run("http://x", None, gate.GateThresholds(), 0, observe_s=3, poll_s=1, clock=lambda: now[0], sleep=sleep)
    assert result.passed and len(looks) == 3
    crashed = gate.evaluate({"health": {"status": "ready"}, "metrics": {}}, None, gate.GateThresholds(), restarts=2)
    assert not crashed.passed and "not restarting" in crashed.table()


def test_the_gate_judges_the_candidates_own_drawdown_not_the_accounts_history() -> None:
    history = {"quantshift_max_drawdown_ratio": 0.72}  # an earlier release lost money on this account
    clean = gate.evaluate({"health": {"status": "ready", "session": {"drawdown": 0.01}}, "metrics": history}, None, gate.GateThresholds())
    losing = gate.evaluate({"health": {"status": "ready", "session": {"drawdown": 0.3}}, "metrics": {}}, None, gate.GateThresholds())
    older = gate.evaluate({"health": {"status": "ready"}, "metrics": history}, None, gate.GateThresholds())  # no session figures
    assert [r.passed for r in (clean, losing, older)] == [True, False, False]


# --- soak durations from the command line ------------------------------------------------------------
def test_soak_durations_can_be_shortened_and_bad_ones_are_refused(tmp_path: Path) -> None:
    log = str(tmp_path / "audit.jsonl")
    assert (
        cli("deploy", "record", "--audit-log", log, "--kind", "deploy", "--release", "r", "--stage", "paper", "--outcome", "ok").returncode
        == 0
    )
    base = ["deploy", "soak", "--audit-log", log, "--release", "r", "--risk", "low", "--stage", "production"]
    refused = cli(*base)
    assert refused.returncode == 3 and "paper: soaked 0:00:00 of 1.0 d" in refused.stdout
    allowed = cli(*base, "--duration", "paper=0")
    assert allowed.returncode == 0 and "shortened" in allowed.stderr
    bad = cli(*base, "--duration", "papr=5")
    assert bad.returncode != 0 and "STAGE=SECONDS" in bad.stderr
    assert cli(*base, "--duration", "paper=soon").returncode != 0


# --- the switchover gap from the bots' own log lines ---------------------------------------------------
def test_switchover_gap_from_journal_lines() -> None:
    lines = [
        'Nov 24 bot[1]: {"event": "first_decision", "t": 100.0, "release": "r1"}',
        "not json at all",
        '{"event": "last_decision", "t": 199.95, "release": "r1", "at": 199.80}',
        '{"event": "first_decision", "t": 200.05, "release": "r2"}',
        '{"event": "last_decision", "t": 300.0, "release": "r2", "at": 299.9}',
    ]
    found = switchover.find(switchover.events(lines), "r2")
    assert found is not None and (found.old_release, found.new_release) == ("r1", "r2")
    assert found.gap_s == pytest.approx(0.25)
    assert switchover.find(switchover.events(lines), "r3") is None
    assert switchover.find(switchover.events(lines[:2] + lines[3:4]), "r2") is None  # no old release stopping
    # A plain restart of one release: told apart by the process id.
    restart = [
        '{"event": "last_decision", "t": 10.5, "release": "r1", "at": 10.2, "pid": 7}',
        '{"event": "first_decision", "t": 9.0, "release": "r1", "pid": 7}',
        '{"event": "first_decision", "t": 11.4, "release": "r1", "pid": 8}',
    ]
    found = switchover.find(switchover.events(restart), "r1", since=9.5)
    assert found is not None and found.gap_s == pytest.approx(1.2)


def test_the_role_checks_release_ids_with_the_controllers_pattern() -> None:
    import yaml

    from quantshift import manifest
    from tests import ROOT

    role = yaml.safe_load((ROOT / "roles/quantshift_bot/vars/main.yml").read_text())
    assert role["quantshift_bot_release_pattern"] == manifest.RELEASE_ID.pattern
    bad = cli("deploy", "manifest", "--release", "../1")
    assert bad.returncode == 2 and "release must be an id" in bad.stderr
    assert json.loads(cli("deploy", "manifest", "--release", "2026.11.24-1").stdout) == {"release": "2026.11.24-1"}


# --- ansible.cfg from the root and from playbooks/ -----------------------------------------------------
def test_playbooks_find_the_same_inventory_roles_and_strategy_from_the_root_and_from_playbooks() -> None:
    """The card's `ansible-playbook deploy-shadow.yml` is run from playbooks/: Ansible then reads
    playbooks/ansible.cfg, whose paths must resolve to the same places as the root's."""
    import configparser
    import shutil

    def dump(where: Path) -> dict[str, str]:
        tool = shutil.which("ansible-config", path=str(Path(sys.executable).parent))
        assert tool is not None
        done = subprocess.run([tool, "dump", "--only-changed"], cwd=where, capture_output=True, text=True, check=True, timeout=60)
        out = {}
        for line in done.stdout.splitlines():
            name, _, value = line.partition(" = ")
            if not name.startswith("CONFIG_FILE"):  # which file was read: the one thing that differs
                out[name.split("(", 1)[0]] = value
        return out

    root, here = dump(ROOT), dump(ROOT / "playbooks")
    assert root == here and {"DEFAULT_HOST_LIST", "DEFAULT_ROLES_PATH", "DEFAULT_STRATEGY_PLUGIN_PATH"} <= root.keys()
    assert str(ROOT / "inventory/lab/hosts.py") in root["DEFAULT_HOST_LIST"]
    # Every setting of one file is in the other (a new setting added to only one would drift).
    a, b = configparser.ConfigParser(), configparser.ConfigParser()
    a.read(ROOT / "ansible.cfg")
    b.read(ROOT / "playbooks/ansible.cfg")
    assert {s: set(a[s]) for s in a.sections()} == {s: set(b[s]) for s in b.sections()}
