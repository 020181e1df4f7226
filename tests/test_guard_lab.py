"""Bad releases caught on a private LXC lab, by the play or by the release guard after the play: a strategy
that hangs on the canary, a canary whose orders fail after its gate, decisions far slower than the tick, orders failing after the gate (with the guard
killed during the bake), and money lost after the gate (with the container restarted during the bake).
(The pipeline test covers a crash and a hang in production, and the two-controller lock is in
test_window_soak_audit.py.)

After each: exactly one release trades (one slot ready, holding every lease of its host), the exchange
never saw a client order id twice, and Redis and the exchange agree on positions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests import labkit
from tests.pipekit import (
    alpaca,
    assert_books_agree,
    attach,
    build_bad_release,
    destroy_all,
    flat,
    health_or_none,
    journal,
    lab_env,
    playbook,
    wait_for,
)

AT = ("-e", "quantshift_deploy_at=2026-11-28T15:00:00+00:00")
SOAKED = ("-e", "quantshift_soak_override_reason=guard test: a bad release on purpose")
GUARD = "/usr/local/lib/quantshift/quantshift-guard.py"


@pytest.fixture(scope="module")
def lab(lxc_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The lab provisioned once for this module, production running the good release g1."""
    tmp = tmp_path_factory.mktemp("guardlab")
    env = lab_env(lxc_lab, tmp)
    done = playbook(env, "provision.yml")
    assert done.returncode == 0, done.stdout[-3000:]
    net = lxc_lab["subnet"].rsplit(".", 1)[0]
    facts = {"env": env, "lab": lxc_lab, "tmp": tmp, "primary": f"{net}.10", "standby": f"{net}.11"}
    try:
        good = playbook(env, "deploy-production.yml", "-e", "quantshift_release=g1", *AT, *SOAKED, "-e", "quantshift_end_canary=false")
        assert good.returncode == 0, good.stdout[-3000:]
        yield facts
    finally:
        destroy_all(env)


def deploy_bad(lab: dict[str, Any], playbook_name: str, release: str, defect: str) -> Any:
    wheelhouse = build_bad_release(lab["tmp"] / defect, defect)
    extra = ("-e", f"quantshift_release={release}", "-e", f"quantshift_wheelhouse={wheelhouse}", *AT, *SOAKED)
    return playbook(lab["env"], playbook_name, *extra, "-e", "quantshift_end_canary=false")


def trading(ip: str) -> list[dict[str, Any]]:
    """The slots of a host that trade: ready, holding leases."""
    slots = [health_or_none(f"{ip}:{port}", raw=True) for port in (9108, 9208)]
    return [h for h in slots if h.get("status") == "ready" and h.get("lease") and all(h["lease"].values())]


def assert_one_release_trades(lab: dict[str, Any], release: str) -> None:
    wait_for(f"{release} alone trading on the primary", lambda: [h["release"] for h in trading(lab["primary"])] == [release], timeout=30)
    assert_books_agree(lab["env"], "lab-live-equity", "live", journal(lab, 100))


def guard_status(lab: dict[str, Any], host: str = "primary") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(labkit.ssh(lab["lab"], lab[host], f"python3 {GUARD} status --json").stdout)
    return doc


def rolled_back_by_guard(lab: dict[str, Any], release: str, timeout: float) -> dict[str, Any]:
    wait_for(f"the guard to roll {release} back", lambda: guard_status(lab).get("outcome") == "rolled_back", timeout=timeout)
    status = guard_status(lab)
    assert status["previous"] == "g1"
    return status


@pytest.mark.lxc
def test_a_strategy_that_hangs_on_the_canary_gives_its_slice_back(lab: dict[str, Any]) -> None:
    out = deploy_bad(lab, "deploy-canary.yml", "c-hang", "hang")
    assert out.returncode != 0 and "stalled" in flat(out.stdout), out.stdout[-3000:]
    # The canary is stopped, production trades every symbol again (trading() counts a slot holding all its
    # leases), and nothing trades on the standby.
    assert_one_release_trades(lab, "g1")
    assert trading(lab["standby"]) == []


@pytest.mark.lxc
def test_a_canary_whose_orders_fail_after_its_gate_is_ended_by_the_guard_on_the_standby(lab: dict[str, Any]) -> None:
    out = deploy_bad(lab, "deploy-canary.yml", "c-errors", "errors")
    assert out.returncode == 0, out.stdout[-3000:]  # it passed the canary's gate
    watched = guard_status(lab, "standby")
    assert (watched["watching"], watched["mode"], watched["bake_left_s"]) == ("c-errors", "canary", None)  # for the whole stage
    wait_for("the standby's guard to end the canary", lambda: guard_status(lab, "standby").get("outcome") == "rolled_back", timeout=120)
    assert "error rate" in guard_status(lab, "standby")["reason"]
    assert trading(lab["standby"]) == []
    assert_one_release_trades(lab, "g1")  # production took NVDA back without any controller


@pytest.mark.lxc
def test_decisions_far_slower_than_the_tick_are_rolled_back_by_the_play(lab: dict[str, Any]) -> None:
    out = deploy_bad(lab, "deploy-production.yml", "p-slow", "slow")
    assert out.returncode != 0 and "stalled" in flat(out.stdout) and "it runs g1 again" in flat(out.stdout), out.stdout[-3000:]
    assert_one_release_trades(lab, "g1")


@pytest.mark.lxc
def test_orders_failing_after_the_gate_are_rolled_back_by_the_guard_even_when_it_was_killed(lab: dict[str, Any]) -> None:
    out = deploy_bad(lab, "deploy-production.yml", "p-errors", "errors")
    assert out.returncode == 0, out.stdout[-3000:]  # it passed the gate: only the guard can catch it now
    bake = guard_status(lab)
    assert bake["watching"] == "p-errors"
    # Killed during the bake: trading does not notice, systemd brings the guard back, and it resumes the
    # same bake (same release, the clock still running) rather than starting a new one.
    killed = attach(lab, 100, "systemctl", "kill", "--signal=KILL", "quantshift-guard.service")
    assert killed.returncode == 0, killed.stderr
    assert [h["release"] for h in trading(lab["primary"])] == ["p-errors"]
    wait_for(
        "the guard to run again", lambda: attach(lab, 100, "systemctl", "is-active", "quantshift-guard.service").stdout.strip() == "active"
    )
    resumed = guard_status(lab)
    assert resumed["watching"] == "p-errors" and resumed["bake_left_s"] < bake["bake_left_s"]
    status = rolled_back_by_guard(lab, "p-errors", timeout=120)
    assert "error rate" in status["reason"]
    assert_one_release_trades(lab, "g1")


@pytest.mark.lxc
def test_money_lost_after_the_gate_is_rolled_back_by_the_guard_across_a_container_restart(lab: dict[str, Any]) -> None:
    out = deploy_bad(lab, "deploy-production.yml", "p-losses", "losses")
    assert out.returncode == 0, out.stdout[-3000:]
    switched_at = json.loads(labkit.ssh(lab["lab"], lab["primary"], "cat /opt/quantshift/guard/bake.json").stdout)["switched_at"]
    # The container restarts during the bake: the new release comes back (its slot is the enabled one),
    # and the guard resumes the same bake.
    node = labkit.client(lab["lab"]).nodes(lab["lab"]["node"])
    labkit.wait(node, node.lxc(100).status.reboot.post())
    labkit.wait_ssh(lab["lab"], lab["primary"])
    wait_for("p-losses trading after the restart", lambda: [h["release"] for h in trading(lab["primary"])] == ["p-losses"], timeout=120)
    after = json.loads(labkit.ssh(lab["lab"], lab["primary"], "cat /opt/quantshift/guard/bake.json").stdout)
    assert (after["release"], after["switched_at"], after.get("outcome")) == ("p-losses", switched_at, None)
    # Its sizing bug shows once it holds an oversized position and the market gaps down.
    wait_for(
        "an oversized position",
        lambda: any(float(p["market_value"]) > 20_000 for p in alpaca(lab["env"], "/v2/positions")),
        timeout=240,
    )
    alpaca(lab["env"], "/lab/market", {"shock": -0.8})
    try:
        status = rolled_back_by_guard(lab, "p-losses", timeout=120)
        assert "drawdown" in status["reason"]
        assert_one_release_trades(lab, "g1")
    finally:
        alpaca(lab["env"], "/lab/market", {"shock": 4.0})  # the lab's prices back where they were for the next tests
