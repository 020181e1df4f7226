"""Faults during deployments, on a private LXC lab: two deploys at once, a full release directory,
the container stopped in the middle of deploy-production, SSH lost in the middle of a play.
(Faults inside the bot - kill -9 during an order, exchange 5xx and hangs, Redis outages, two bots on
one account - are in test_bot_lab.py and test_bot_core.py.)

For each: what the operator sees, that the previous release keeps running, that no order was
doubled (the exchange rejected no repeated client order id) and no position was lost (Redis and the
exchange agree)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import labkit
from tests.pipekit import (
    ROOT,
    active_health,
    assert_books_agree,
    attach,
    destroy_all,
    flat,
    health_or_none,
    journal,
    lab_env,
    playbook,
    wait_for,
)

AT = "quantshift_deploy_at=2026-11-28T15:00:00+00:00"
BOOTSTRAP = ("-e", "quantshift_soak_override_reason=fault test", "-e", "quantshift_end_canary=false", "-e", AT)


@pytest.fixture()
def lab(lxc_lab: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = lab_env(lxc_lab, tmp_path)
    done = playbook(env, "provision.yml")
    assert done.returncode == 0, done.stdout[-3000:]
    net = lxc_lab["subnet"].rsplit(".", 1)[0]
    facts = {"env": env, "lab": lxc_lab, "tmp": tmp_path, "primary": f"{net}.10", "paper": f"{net}.12"}
    try:
        yield facts
    finally:
        destroy_all(env)


@pytest.mark.lxc
def test_two_deploys_at_once_the_second_is_refused(lab: dict[str, Any]) -> None:
    procs = [
        subprocess.Popen(
            ["ansible-playbook", "playbooks/deploy-paper.yml", "-e", "quantshift_release=t1"],
            cwd=ROOT,
            env=lab["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, outs
    refused = outs[[p.returncode for p in procs].index(codes[1])]
    assert "another deployment to paper is running (paper-t1-" in flat(refused)  # the operator is told who holds it
    assert active_health(lab["paper"])["release"] == "t1"


@pytest.mark.lxc
def test_a_full_release_directory_fails_the_install_and_the_running_release_stays(lab: dict[str, Any]) -> None:
    assert playbook(lab["env"], "deploy-paper.yml", "-e", "quantshift_release=t1").returncode == 0
    full = "/opt/quantshift/releases/t2"
    assert attach(lab, 102, "sh", "-ec", f"mkdir -p {full} && mount -t tmpfs -o size=2m tmpfs {full}").returncode == 0
    try:
        failed = playbook(lab["env"], "deploy-paper.yml", "-e", "quantshift_release=t2")
        assert failed.returncode != 0
        assert "installing release t2 failed" in flat(failed.stdout) and "No space left on device" in flat(failed.stdout)
        health = active_health(lab["paper"])
        assert (health["release"], health["status"]) == ("t1", "ready")
        assert attach(lab, 102, "readlink", "/opt/quantshift/current").stdout.strip() == "releases/t1"
    finally:
        attach(lab, 102, "umount", full)
    again = playbook(lab["env"], "deploy-paper.yml", "-e", "quantshift_release=t2")  # space again: it goes through
    assert again.returncode == 0, again.stdout[-3000:]
    assert active_health(lab["paper"])["release"] == "t2"


def _deploy_until_the_new_slot_starts(lab: dict[str, Any]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["ansible-playbook", "playbooks/deploy-production.yml", "-e", "quantshift_release=p2", *BOOTSTRAP],
        cwd=ROOT,
        env=lab["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(
        "the new release's slot to start",
        lambda: attach(lab, 100, "systemctl", "is-active", "quantshift-equity@b.service").stdout.strip() == "active",
        timeout=300,
    )
    return proc


@pytest.mark.lxc
def test_container_stopped_in_the_middle_of_deploy_production(lab: dict[str, Any]) -> None:
    env = lab["env"]
    assert playbook(env, "deploy-production.yml", "-e", "quantshift_release=p1", *BOOTSTRAP).returncode == 0
    proc = _deploy_until_the_new_slot_starts(lab)
    node = labkit.client(lab["lab"]).nodes(lab["lab"]["node"])
    labkit.wait(node, node.lxc(100).status.stop.post())
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode != 0 and "UNREACHABLE" in out  # what the operator sees
    lock = subprocess.run(
        [sys.executable, "-m", "quantshift", "deploy", "lock", "show", "--environment", "production"],
        env=env,
        capture_output=True,
        text=True,
    )
    # A host that vanished mid-play: its block's `always` may still give the lock back (Ansible runs it on the
    # controller); when it could not, the lock names the dead run and a human releases it (--force, audited).
    assert lock.stdout.strip() == "null" or "production-p2-" in lock.stdout
    (lab["tmp"] / "stopped.log").write_text(out)

    labkit.wait(node, node.lxc(100).status.start.post())
    labkit.wait_ssh(lab["lab"], lab["primary"])
    # At boot only the enabled slot starts: the previous release, which trades again.
    # (If the stop killed the bots, their leases expire within the TTL first: standby, then ready.)
    wait_for("p1 trading after the restart", lambda: health_or_none(lab["primary"]).get("status") == "ready", timeout=120)
    assert health_or_none(lab["primary"])["release"] == "p1"
    assert attach(lab, 100, "systemctl", "is-active", "quantshift-equity@b.service").stdout.strip() != "active"
    assert_books_agree(env, "lab-live-equity", "live", journal(lab, 100))

    subprocess.run(
        [sys.executable, "-m", "quantshift", "deploy", "lock", "release", "--environment", "production", "--force"], env=env, check=False
    )
    again = playbook(env, "deploy-production.yml", "-e", "quantshift_release=p2", *BOOTSTRAP)
    assert again.returncode == 0, again.stdout[-3000:]
    assert active_health(lab["primary"])["release"] == "p2"


@pytest.mark.lxc
def test_ssh_lost_in_the_middle_of_a_play_leaves_one_release_trading(lab: dict[str, Any]) -> None:
    env = lab["env"]
    assert playbook(env, "deploy-production.yml", "-e", "quantshift_release=p1", *BOOTSTRAP).returncode == 0
    proc = _deploy_until_the_new_slot_starts(lab)
    attach(lab, 100, "sh", "-c", "systemctl stop ssh.socket ssh.service; pkill -KILL -x sshd; true")
    try:
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode != 0 and "UNREACHABLE" in out
        time.sleep(2)
        slots = [health_or_none(f"{lab['primary']}:{port}", raw=True) for port in (9108, 9208)]
        trading = [h for h in slots if h.get("status") == "ready"]
        assert len(trading) == 1, slots  # never two releases trading the account, and never none
        assert all(held for held in trading[0]["lease"].values())
        assert_books_agree(env, "lab-live-equity", "live", journal(lab, 100))
    finally:
        attach(lab, 100, "systemctl", "start", "ssh.service")
    subprocess.run(
        [sys.executable, "-m", "quantshift", "deploy", "lock", "release", "--environment", "production", "--force"],
        env=env,
        capture_output=True,
    )
    again = playbook(env, "deploy-production.yml", "-e", "quantshift_release=p2", *BOOTSTRAP)  # the re-run finishes the job
    assert again.returncode == 0, again.stdout[-3000:]
    assert active_health(lab["primary"])["release"] == "p2"
