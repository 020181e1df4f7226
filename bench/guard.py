"""Bad releases on a private LXC lab, per fault class: from the fault to the previous release deciding again.

Classes and where each time starts:
- crash, hang, slow: caught by the play's handover check. A crash starts at the bad release's `crashed`
  line; a hang or a slow decision starts when production made its last decision before handing over
  (from then on nothing decides), so the figure is the whole time without decisions.
- error rate, drawdown: caught by the release guard on the host after the play has passed the release.
  The time starts when the figure crosses its threshold on the bad release's /healthz (polled every
  50 ms from here); "acted" is the guard's `trigger` line; "deciding again" is the previous release's
  first decision. The switchover gap is the bad release's last decision to that first decision (for the
  error-rate release that includes the time its failing data calls already kept it from deciding).
Baseline in the same run: rollback.yml by hand, the controller's way back (Ansible over SSH).
Every time comes from the bots' and the guard's own journal lines; the containers share this clock.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import below, record
from quantshift import switchover
from tests import labkit
from tests.pipekit import alpaca, build_bad_release, healthz, journal_events, lab_env, playbook

AT = ("-e", "quantshift_deploy_at=2026-11-28T15:00:00+00:00")
SOAKED = ("-e", "quantshift_soak_override_reason=bench: a bad release on purpose", "-e", "quantshift_end_canary=false")
PRIMARY = "10.231.25.10"


def _deploy(env: dict[str, str], release: str, wheelhouse: str | None, ok: bool) -> float:
    extra = ("-e", f"quantshift_wheelhouse={wheelhouse}") if wheelhouse else ()
    began = time.perf_counter()
    done = playbook(env, "deploy-production.yml", "-e", f"quantshift_release={release}", *extra, *AT, *SOAKED)
    if (done.returncode == 0) != ok:
        raise RuntimeError(f"deploy {release}: rc {done.returncode}\n{done.stdout[-3000:]}")
    return time.perf_counter() - began


def _journal(facts: dict[str, Any], unit: str, since: float) -> list[dict[str, object]]:
    return journal_events(facts, PRIMARY, unit, since)


def _t(doc: dict[str, object], key: str = "t") -> float:
    return float(str(doc[key]))


def _first_decision(docs: list[dict[str, object]], release: str, after: float) -> float:
    return min(_t(d) for d in docs if d["event"] == "first_decision" and d.get("release") == release and _t(d) > after)


def _caught_by_the_play(facts: dict[str, Any], env: dict[str, str], tmp: Path, defect: str) -> float:
    wheelhouse = build_bad_release(tmp / defect, defect)
    since = time.time()
    _deploy(env, f"b-{defect}", wheelhouse, ok=False)
    time.sleep(1)
    docs = _journal(facts, "quantshift-equity@*", since)
    if defect == "crash":
        fault = min(_t(d) for d in docs if d["event"] == "crashed" and d.get("release") == f"b-{defect}")
    else:
        fault = max(_t(d, "at") for d in docs if d["event"] == "last_decision" and d.get("release") == "g1" and _t(d) >= since)
    return _first_decision(docs, "g1", fault) - fault


def _crossed(port: int, figure: str, limit: float, timeout: float) -> float:
    """When the bad release's /healthz first shows `figure` above `limit` (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = healthz(PRIMARY, port)
        value = float(doc.get(figure) if figure == "error_rate" else (doc.get("session") or {}).get(figure) or 0.0)
        if value > limit:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"{figure} never crossed {limit}")


def _caught_by_the_guard(facts: dict[str, Any], env: dict[str, str], tmp: Path, defect: str) -> dict[str, float]:
    wheelhouse = build_bad_release(tmp / defect, defect)
    since = time.time()
    _deploy(env, f"b-{defect}", wheelhouse, ok=True)
    slot = labkit.ssh(facts, PRIMARY, "readlink /opt/quantshift/slots/active").stdout.strip()
    port = 9108 + (100 if slot == "b" else 0)
    if defect == "errors":
        crossed = _crossed(port, "error_rate", 0.05, timeout=120)
    else:
        deadline = time.monotonic() + 300
        while not any(float(p["market_value"]) > 20_000 for p in alpaca(env, "/v2/positions")):
            if time.monotonic() > deadline:
                raise RuntimeError("the losing release never held an oversized position")
            time.sleep(0.5)
        alpaca(env, "/lab/market", {"shock": -0.8})
        crossed = _crossed(port, "drawdown", 0.15, timeout=120)
    deadline = time.monotonic() + 60
    while not any(d["event"] == "rolled_back" for d in _journal(facts, "quantshift-guard.service", since)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the guard did not roll b-{defect} back")
        time.sleep(0.5)
    if defect == "losses":
        alpaca(env, "/lab/market", {"shock": 4.0})
    guard = _journal(facts, "quantshift-guard.service", since)
    acted = min(_t(d) for d in guard if d["event"] == "trigger" and _t(d) >= since)
    docs = _journal(facts, "quantshift-equity@*", since)
    back = _first_decision(docs, "g1", acted)
    found = switchover.find(docs, "g1", acted)
    return {"acted": acted - crossed, "back": back - crossed, "gap": found.gap_s if found else float("nan")}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lab = labkit.lab_settings(tmp, "10.231.25.0/24", "qsbrb6")
        with labkit.running_lab(lab, "lxc") as facts:
            facts["settings"] = lab
            env = lab_env(facts, tmp)
            if playbook(env, "provision.yml").returncode != 0:
                raise RuntimeError("provision.yml failed")
            _deploy(env, "g1", None, ok=True)
            play = {defect: _caught_by_the_play(facts, env, tmp, defect) for defect in ("crash", "hang", "slow")}
            guard = {defect: _caught_by_the_guard(facts, env, tmp, defect) for defect in ("errors", "losses")}
            _deploy(env, "g2", None, ok=True)
            began = time.perf_counter()
            if playbook(env, "rollback.yml", "-e", "quantshift_bot_rollback_to=g1").returncode != 0:
                raise RuntimeError("rollback.yml failed")
            by_hand = time.perf_counter() - began
    figures: list[dict[str, Any]] = [
        {"name": f"{defect} on its first decision, caught by the play: fault -> previous release deciding again", "value": round(s, 2),
         "unit": "s", "baseline": round(by_hand, 1), "baseline_name": "rollback.yml by hand (Ansible), same run", "target": "< 3",
         "met": s < 3}
        for defect, s in play.items()
    ]  # fmt: skip
    labels = {"errors": "error rate > 5 % after the gate", "losses": "drawdown > 15 % after the gate (a sizing bug, a market gap)"}
    for defect, f in guard.items():
        figures += [
            {"name": f"{labels[defect]}: threshold crossed -> the guard acts", "value": round(f["acted"], 2), "unit": "s", "target": "< 2",
             "met": f["acted"] < 2},
            {"name": f"{labels[defect]}: threshold crossed -> previous release deciding again", "value": round(f["back"], 2), "unit": "s",
             "baseline": round(by_hand, 1), "baseline_name": "rollback.yml by hand (Ansible), same run"},
            {"name": f"{labels[defect]}: switchover trading gap of the guard's hand-back", "value": round(f["gap"], 3), "unit": "s",
             "target": "< 0.1", "met": f["gap"] < 0.1}
            if defect == "losses"
            else {"name": f"{labels[defect]}: the bad release's last decision (its data calls fail too) -> previous release's first",
                  "value": round(f["gap"], 3), "unit": "s"},
        ]  # fmt: skip
    print(record("guard", [below(f) for f in figures], backend="lxc"))


if __name__ == "__main__":
    main()
