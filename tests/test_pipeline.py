"""The playbooks against a private lab on real LXC containers: provision, then deploy to paper and gate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lab import secretscan
from tests import labkit
from tests.pipekit import active_health, bot_health, build_bad_release, destroy_all, flat, healthz, lab_env, lab_facts, playbook


@pytest.mark.lxc
def test_provision_then_deploy_paper_and_gate(lxc_lab: dict[str, Any], tmp_path: Path) -> None:
    env = lab_env(lxc_lab, tmp_path)
    provisioned = playbook(env, "provision.yml")
    assert provisioned.returncode == 0, provisioned.stdout[-4000:]
    try:
        deployed = playbook(env, "deploy-paper.yml", "-e", "quantshift_release=t1")
        assert deployed.returncode == 0, deployed.stdout[-6000:]
        paper_ip = lxc_lab["subnet"].rsplit(".", 1)[0] + ".12"
        with urllib.request.urlopen(f"http://{paper_ip}:9108/healthz", timeout=5) as resp:
            health = json.load(resp)
        assert (health["status"], health["mode"], health["release"]) == ("ready", "paper", "t1")
        crypto = bot_health(paper_ip, "crypto")  # the crypto bot on the Coinbase lab, over TLS to the lab's CA
        assert (crypto["status"], crypto["mode"], crypto["release"], crypto["account"]) == ("ready", "paper", "t1", "lab-paper-crypto")
        secrets = lab_facts(env)
        for secret in (secrets["alpaca"]["paper"]["secret_key"], secrets["redis_url"].split("@")[0].rsplit(":", 1)[1]):
            assert secret not in deployed.stdout + deployed.stderr
        records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(r["kind"], r["outcome"]) for r in records if r["kind"] != "lock"] == [
            ("deploy", "started"),
            ("gate", "ok"),  # one per bot: equity, then crypto
            ("gate", "ok"),
            ("deploy", "ok"),
        ]
        again = playbook(env, "deploy-paper.yml", "-e", "quantshift_release=t1")
        assert again.returncode == 0 and "changed=0 " in again.stdout  # nothing changed on the host (the audit record is the controller's)

        # The user's own strategy: scaffolded, named by a release manifest, built into the wheelhouse, checked
        # on the controller, replayed (nothing in production yet: inconclusive, so on to paper), and loaded by
        # both bots on the paper host.
        made = subprocess.run(
            [sys.executable, "-m", "quantshift", "strategy", "new", "breakout", "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        manifest = tmp_path / "t2.yml"
        manifest.write_text("release: t2\nrisk_class: medium\nstrategy: {name: breakout, package: ./breakout, params: {entry_bars: 15}}\n")
        # The replay gate judges it on three hours of bars: too little for a verdict, so on to paper.
        bars = tmp_path / "bars.csv"
        subprocess.run(
            [sys.executable, "-m", "lab.history", "--days", "1", "--symbols", "AAPL,MSFT", "--out", str(bars)], check=True, timeout=120
        )
        bars.write_text("".join(bars.read_text().splitlines(keepends=True)[: 1 + 2 * 180]))
        mine = playbook(env, "deploy-paper.yml", "-e", f"quantshift_manifest={manifest}", "-e", f"quantshift_replay_bars={bars}")
        assert mine.returncode == 0, mine.stdout[-6000:]
        assert "strategy breakout (quantshift-strategy-breakout 0.1.0): the contract holds" in mine.stdout
        assert "replay verdict: INCONCLUSIVE" in flat(mine.stdout)
        for bot in ("equity", "crypto"):
            health = bot_health(paper_ip, bot)
            assert (health["status"], health["release"], health["strategy"]) == ("ready", "t2", "breakout"), health
        # A strategy that breaks the contract is refused on the controller: nothing changes on the host.
        init = tmp_path / "breakout" / "src" / "qs_strategy_breakout" / "__init__.py"
        init.write_text(init.read_text().replace("def warmup(self) -> int:\n", "def warmup(self) -> int:\n        return 0\n", 1))
        manifest.write_text("release: t3\nrisk_class: low\nstrategy: {name: breakout, package: ./breakout}\n")
        refused = playbook(env, "deploy-paper.yml", "-e", f"quantshift_manifest={manifest}")
        assert refused.returncode != 0, refused.stdout[-4000:]
        assert "warmup must be a whole number of bars >= 1, got 0" in flat(refused.stdout)
        assert bot_health(paper_ip, "equity")["release"] == "t2"
        assert "t3" not in labkit.ssh(lxc_lab, paper_ip, "ls /opt/quantshift/releases").stdout
    finally:  # the lab is shared by the session's lxc tests: leave it empty
        destroy_all(env)


def wait_for_alert(lab: Any, alertname: str, timeout: float) -> dict[str, list[str]]:
    """The states Alertmanager sent to the lab's receiver for `alertname` on the primary, in order, per
    bot; returned once every bot that fired has resolved again (or the timeout passes). Each bot is its
    own alert group, so one bot can fire after the other has already resolved."""
    from lab import services

    deadline = time.monotonic() + timeout
    while True:
        states: dict[str, list[str]] = {}
        for m in services.webhooks(lab):
            if not m["channel"].startswith("alertmanager"):
                continue
            for a in m["body"]["alerts"]:
                if a["labels"]["alertname"] == alertname and a["labels"].get("stage") == "production":
                    states.setdefault(a["labels"]["bot"], []).append(a["status"])
        if (states and all(s[-1] == "resolved" for s in states.values())) or time.monotonic() > deadline:
            return states
        time.sleep(1)


@pytest.mark.lxc
def test_whole_pipeline_then_a_bad_release_is_rolled_back(lxc_lab: dict[str, Any], tmp_path: Path) -> None:
    """paper -> shadow -> canary -> production with a warm handover; then a bad release forced to
    production is caught and the previous release trades again. Nothing secret in any output."""
    env = lab_env(lxc_lab, tmp_path)
    net = lxc_lab["subnet"].rsplit(".", 1)[0]
    primary, standby = f"{net}.10", f"{net}.11"
    at = "quantshift_deploy_at=2026-11-28T15:00:00+00:00"  # a Saturday: inside the equity and the crypto windows
    soak = '{"quantshift_soak_durations": {"paper": 0, "shadow": 0, "canary": 0}}'
    outputs: list[str] = []

    def run(name: str, *extra: str, ok: bool = True, from_playbooks: bool = False) -> subprocess.CompletedProcess[str]:
        done = playbook(env, name, *extra, from_playbooks=from_playbooks)
        outputs.append(done.stdout + done.stderr)
        assert (done.returncode == 0) == ok, f"{name}: rc {done.returncode}\n{done.stdout[-6000:]}"
        return done

    def force_to_production(release: str, defect: str, reason: str, ok: bool) -> subprocess.CompletedProcess[str]:
        """A bad release straight to production, its soak overridden (audited), the canary left as it is."""
        wheelhouse = build_bad_release(tmp_path / defect, defect)
        return run(
            "deploy-production.yml",
            "-e", f"quantshift_release={release}", "-e", at, "-e", f"quantshift_wheelhouse={wheelhouse}",
            "-e", f"quantshift_soak_override_reason=test: {reason}", "-e", "quantshift_end_canary=false",
            ok=ok,
        )  # fmt: skip

    run("provision.yml")
    try:
        run(
            "deploy-production.yml",
            "-e",
            "quantshift_release=p1",
            "-e",
            at,
            "-e",
            "quantshift_soak_override_reason=bootstrap",
            "-e",
            "quantshift_end_canary=false",
        )
        assert (active_health(primary)["release"], active_health(primary)["mode"]) == ("p1", "live")
        assert (bot_health(primary, "crypto")["release"], bot_health(primary, "crypto")["mode"]) == ("p1", "live")
        # Each bot's market has its own window: a weekday evening suits the equity bot, not the crypto bot.
        weekday = run(
            "deploy-production.yml", "-e", "quantshift_release=p1", "-e", "quantshift_deploy_at=2026-11-24T22:00:00+00:00", ok=False
        )
        assert "crypto bots deploy on weekends only" in flat(weekday.stdout) and active_health(primary)["release"] == "p1"
        # Production refuses a release that has not soaked, before anything changes.
        refused = run("deploy-production.yml", "-e", "quantshift_release=p2", "-e", at, ok=False)
        assert "may not go to production yet" in flat(refused.stdout) and active_health(primary)["release"] == "p1"

        run("deploy-paper.yml", "-e", "quantshift_release=p2", "-e", "quantshift_risk_class=high")
        # As the card says it: from playbooks/, `ansible-playbook deploy-shadow.yml`.
        run("deploy-shadow.yml", "-e", "quantshift_release=p2", "-e", "quantshift_risk_class=high", "-e", soak, from_playbooks=True)
        shadow = active_health(standby)
        assert (shadow["mode"], shadow["orders_sent"], shadow["account"]) == ("shadow", 0, "lab-live-equity")
        assert shadow["would_be_orders"] >= 1
        assert (bot_health(standby, "crypto")["mode"], bot_health(standby, "crypto")["account"]) == ("shadow", "lab-live-crypto")

        run("deploy-canary.yml", "-e", "quantshift_release=p2", "-e", "quantshift_risk_class=high", "-e", soak)
        canary = active_health(standby)
        assert canary["mode"] == "canary" and canary["lease"] == {"NVDA": True}
        assert active_health(primary)["lease"] == {"AAPL": True, "MSFT": True, "NVDA": False}  # yielded to the canary
        assert bot_health(standby, "crypto")["lease"] == {"ETH-USD": True}
        assert bot_health(primary, "crypto")["lease"] == {"BTC-USD": True, "ETH-USD": False}

        before = float(labkit.ssh(lxc_lab, primary, "date +%s").stdout.strip() or 0)
        run("deploy-production.yml", "-e", "quantshift_release=p2", "-e", "quantshift_risk_class=high", "-e", soak, "-e", at)
        live = active_health(primary)
        assert (live["release"], live["mode"], live["status"]) == ("p2", "live", "ready")
        for _ in range(50):  # the canary ended: its slice comes back to production within a heartbeat
            if active_health(primary)["lease"] == {"AAPL": True, "MSFT": True, "NVDA": True}:
                break
            time.sleep(0.1)
        assert active_health(primary)["lease"] == {"AAPL": True, "MSFT": True, "NVDA": True}
        crypto = bot_health(primary, "crypto")
        assert (crypto["release"], crypto["status"], crypto["lease"]) == ("p2", "ready", {"BTC-USD": True, "ETH-USD": True})
        journal = labkit.ssh(lxc_lab, primary, f"journalctl --no-pager -o cat -u 'quantshift-equity@*' --since @{int(before)}").stdout
        from quantshift import switchover

        handover = switchover.find(switchover.events(journal.splitlines()), "p2", before)
        assert handover is not None and handover.old_release == "p1" and handover.gap_s > 0

        failed = force_to_production("p3-bad", "crash", "a bad release", ok=False)
        assert "crashed" in flat(failed.stdout) and "it runs p2 again" in flat(failed.stdout)
        back = active_health(primary)
        assert (back["release"], back["status"]) == ("p2", "ready")
        records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        last = [
            (r["kind"], r["release"], r["outcome"]) for r in records if r["stage"] == "production" and r["kind"] in ("deploy", "rollback")
        ][-2:]
        assert last == [("deploy", "p3-bad", "failed"), ("rollback", "p3-bad", "ok")]

        # A release whose strategy hangs on its first decision (the process stays up): its loop stops
        # completing ticks, it hands the leases back and /healthz says stalled; the play goes back at once.
        failed = force_to_production("p3-hang", "hang", "a hanging release", ok=False)
        assert "stalled" in flat(failed.stdout) and "it runs p2 again" in flat(failed.stdout)
        back = active_health(primary)
        assert (back["release"], back["status"]) == ("p2", "ready")

        # By hand, at once: rollback.yml hands production back to the release before (p1).
        run("rollback.yml", "-e", "quantshift_hosts=primary")
        manual = active_health(primary)
        assert (manual["release"], manual["mode"], manual["status"]) == ("p1", "live", "ready")
        records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert (records[-1]["kind"], records[-1]["release"], records[-1]["outcome"]) == ("rollback", "p1", "ok")

        # A release that passes the gate, then goes bad after the play has ended (every broker call fails
        # 30 s after it starts): the guard on the host hands back to the release before, with no controller,
        # and records the rollback in the environment's shared audit log.
        force_to_production("p4-errors", "errors", "goes bad after the gate", ok=True)
        assert active_health(primary)["release"] == "p4-errors"  # the play passed it

        def guard_status() -> dict[str, Any]:
            return dict(
                json.loads(labkit.ssh(lxc_lab, primary, "python3 /usr/local/lib/quantshift/quantshift-guard.py status --json").stdout)
            )

        # The guard closes the bake once every bot of the host (equity and crypto) trades the old release again.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and guard_status().get("outcome") is None:
            time.sleep(0.5)
        guarded = active_health(primary)
        assert (guarded["release"], guarded["status"]) == ("p1", "ready")
        assert (bot_health(primary, "crypto")["release"], bot_health(primary, "crypto")["status"]) == ("p1", "ready")
        status = guard_status()
        assert status["outcome"] == "rolled_back" and "error rate" in status["reason"] and status["previous"] == "p1"
        facts = json.loads(labkit.ssh(lxc_lab, primary, "cat /etc/ansible/facts.d/quantshift.fact").stdout)
        assert (facts["release"], facts["previous"]) == ("p1", "p4-errors")  # the playbooks find production where it is
        assert healthz(primary, facts["active_ports"]["equity"])["release"] == "p1"
        shared = subprocess.run(
            [sys.executable, "-m", "quantshift", "deploy", "history", "--json", "--stage", "production"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        last = json.loads(shared.stdout)[-1]
        assert (last["kind"], last["release"], last["who"].split("@")[0]) == ("rollback", "p4-errors", "guard")
        # Every step was also told to the environment's webhook (the lab's receiver, Slack format): from the
        # controller the deploys and the failed ones, from the guard on the host its trigger and its rollback.
        from lab import services

        sent = [m["body"]["text"] for m in services.webhooks(lxc_lab["settings"]) if not m["channel"].startswith("alertmanager")]
        for expected in ("deploy started p1", "deployed p2", "DEPLOY FAILED p3-bad", "ROLLING BACK p4-errors", "ROLLED BACK p4-errors"):
            assert any(expected in text for text in sent), (expected, sent)
        assert any("ROLLED BACK p4-errors on " in t and " by guard@" in t and "error rate" in t for t in sent), sent
        # The lab's Prometheus scraped the bad release at the bots' stable addresses (targets written by
        # provision.yml from the inventory): the error-ratio alert fired, and resolves after the rollback.
        alert_states = wait_for_alert(lxc_lab["settings"], "QuantShiftBrokerErrorRatioHigh", timeout=120)
        assert "equity" in alert_states, alert_states
        for bot_states in alert_states.values():
            assert bot_states[0] == "firing" and bot_states[-1] == "resolved", alert_states

        # Secret scan: every playbook output, the audit log, and each container's journal.
        scanned = tmp_path / "scan"
        scanned.mkdir()
        for n, out in enumerate(outputs):
            (scanned / f"playbook-{n}.log").write_text(out)
        for name, ip in (("primary", primary), ("standby", standby), ("paper", f"{net}.12")):
            (scanned / f"journal-{name}.log").write_text(labkit.ssh(lxc_lab, ip, "journalctl --no-pager -o cat", timeout=60).stdout)
        (scanned / "audit.jsonl").write_text((tmp_path / "audit.jsonl").read_text())
        facts = lab_facts(env)
        secrets = secretscan.secrets_of(facts)
        assert {"alpaca live secret_key", "redis password", "token_secret"} <= secrets.keys()
        count, size, found = secretscan.scan([scanned], secrets)
        assert count >= len(outputs) + 4 and size > 10_000
        assert found == [], f"secrets leaked: {found}"  # (file, which secret): never the value
    finally:
        destroy_all(env)
