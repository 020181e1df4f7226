"""Deployment window over many dates, soak rules by risk class, the audit log and the deploy lock."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantshift import audit, soak, window

NY = window.NEW_YORK


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY)


@pytest.mark.parametrize(
    ("when", "market", "allowed", "why"),
    [
        (ny(2026, 11, 24, 17), "equity", True, "Tuesday after the close"),
        (ny(2026, 11, 24, 15, 59), "equity", False, "market open"),
        (ny(2026, 11, 24, 16, 5), "equity", False, "just closed: settle first"),
        (ny(2026, 11, 25, 8, 45), "equity", False, "45 min before the open"),
        (ny(2026, 11, 25, 8, 15), "equity", True, "75 min before the open"),
        (ny(2026, 11, 26, 12), "equity", True, "Thanksgiving: a holiday, market closed"),
        (ny(2026, 11, 27, 14), "equity", False, "the early-close Friday after Thanksgiving: Friday"),
        (ny(2026, 12, 24, 14), "equity", True, "Christmas Eve closes at 13:00: after the early close"),
        (ny(2026, 12, 24, 12, 30), "equity", False, "Christmas Eve before its early close"),
        (ny(2026, 11, 28, 11), "equity", True, "Saturday"),
        (ny(2026, 11, 30, 8, 40), "equity", False, "Monday morning, near the open"),
        (ny(2026, 3, 9, 8, 45), "equity", False, "the Monday after the DST change: 45 min before 09:30 New York"),
        (ny(2026, 3, 9, 8, 15), "equity", True, "the Monday after the DST change, 75 min before the open"),
        (ny(2026, 3, 8, 2, 30) + dt.timedelta(hours=1), "equity", True, "the DST Sunday itself"),
        (ny(2026, 11, 2, 16, 30), "equity", True, "after the close the day after DST ends"),
        (ny(2026, 11, 28, 11), "crypto", True, "crypto on a Saturday"),
        (ny(2026, 11, 24, 22), "crypto", False, "crypto on a Tuesday"),
        (ny(2026, 11, 27, 22), "crypto", False, "crypto on a Friday evening"),
    ],
)
def test_window_over_many_dates(when: dt.datetime, market: str, allowed: bool, why: str) -> None:
    decision = window.check(when, market)
    assert decision.allowed is allowed, f"{why}: {decision.reason}"


def test_window_rules_are_configurable_and_need_a_timezone() -> None:
    assert window.check(ny(2026, 11, 24, 22), "crypto", window.WindowRules(crypto_weekends_only=False)).allowed
    assert not window.check(ny(2026, 11, 25, 7), "equity", window.WindowRules(before_open_minutes=180)).allowed
    with pytest.raises(ValueError, match="timezone"):
        window.check(dt.datetime(2026, 11, 24, 22), "equity")


DAY = soak.DAY
T0 = 1_790_000_000.0


def rec(kind: str, release: str, stage: str, outcome: str, when: float) -> audit.Record:
    return audit.Record(kind, release, stage, outcome, when=when, who="test")


def test_soak_rules_by_risk_class() -> None:
    log = [rec("deploy", "r1", "paper", "ok", T0), rec("deploy", "r1", "shadow", "ok", T0 + 3 * DAY)]
    assert soak.check(log, "r1", "low", "production", T0 + 1.5 * DAY).allowed
    assert not soak.check(log, "r1", "low", "production", T0 + 0.5 * DAY).allowed
    medium = soak.check(log, "r1", "medium", "production", T0 + 8 * DAY)
    assert not medium.allowed and "shadow: soaked 5.0 d of 7.0 d" in medium.reason
    assert soak.check(log, "r1", "medium", "production", T0 + 10.5 * DAY).allowed
    high = soak.check(log, "r1", "high", "production", T0 + 30 * DAY)
    assert not high.allowed and "canary: never passed" in high.reason
    assert soak.check(log, "r1", "high", "shadow", T0 + 7.5 * DAY).allowed  # shadow needs only paper 7 d
    assert soak.check(log, "r1", "high", "paper", T0).allowed  # the first stage needs nothing


def test_a_failure_restarts_the_soak() -> None:
    log = [
        rec("deploy", "r1", "paper", "ok", T0),
        rec("gate", "r1", "paper", "failed", T0 + 2 * DAY),
        rec("deploy", "r1", "paper", "ok", T0 + 3 * DAY),
    ]
    assert not soak.check(log, "r1", "medium", "shadow", T0 + 4 * DAY).allowed  # 1 d since the clean redeploy, 3 d needed
    assert soak.check(log, "r1", "medium", "shadow", T0 + 6.5 * DAY).allowed
    assert soak.check(log, "r1", "low", "production", T0 + 6.5 * DAY, durations={"low.paper": 10 * DAY}).allowed is False


def test_audit_log_roundtrip_and_bad_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit.append(audit.Record("deploy", "r1", "paper", "ok", host="quantshift-paper"), path)
    audit.append(audit.Record("override", "r1", "production", "ok", reason="hotfix for a broken stop loss"), path)
    with pytest.raises(audit.AuditError, match="needs a reason"):
        audit.append(audit.Record("override", "r1", "production", "ok"), path)
    with pytest.raises(audit.AuditError, match="kind"):
        audit.append(audit.Record("party", "r1", "paper", "ok"), path)
    records = audit.read(path)
    assert [(r.kind, r.release, r.stage) for r in records] == [("deploy", "r1", "paper"), ("override", "r1", "production")]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_deploy_lock_refuses_a_second_deploy(tmp_path: Path) -> None:
    first = audit.DeployLock("production", tmp_path)
    first.acquire("run-1")
    with pytest.raises(audit.AuditError, match="another deployment to production is running"):
        audit.DeployLock("production", tmp_path).acquire("run-2")
    audit.DeployLock("paper", tmp_path).acquire("run-3")  # other environments are independent
    assert not first.release("run-2") and first.release("run-1")
    audit.DeployLock("production", tmp_path).acquire("run-2")
    stale = audit.DeployLock("shadow", tmp_path, ttl=0)
    stale.acquire("dead")
    audit.DeployLock("shadow", tmp_path, ttl=0).acquire("next")  # a lock past its ttl is taken over


def test_deploy_cli_window_soak_override_history(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "quantshift", "deploy", *args, "--audit-log", str(log)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert cli("window", "--at", "2026-11-24T22:00:00+00:00").returncode == 0
    friday = cli("window", "--at", "2026-11-27T22:00:00+00:00", "--json")
    assert friday.returncode == 3 and json.loads(friday.stdout)["allowed"] is False
    assert cli("window", "--at", "2026-11-27T22:00:00+00:00", "--override-reason", "broken stop loss", "--release", "r9").returncode == 0
    assert cli("record", "--kind", "deploy", "--release", "r9", "--stage", "paper", "--outcome", "ok").returncode == 0
    assert cli("soak", "--release", "r9", "--risk", "low", "--stage", "production").returncode == 3
    history = json.loads(cli("history", "--json").stdout)
    assert [h["kind"] for h in history] == ["override", "deploy"] and "broken stop loss" in history[0]["reason"]
    assert cli("lock", "acquire", "--environment", "production", "--owner", "a").returncode == 0
    second = cli("lock", "acquire", "--environment", "production", "--owner", "b")
    assert second.returncode == 1 and "another deployment" in second.stderr
    assert cli("lock", "release", "--environment", "production", "--owner", "b").returncode == 1  # not b's
    assert cli("lock", "release", "--environment", "production", "--owner", "b", "--force").returncode == 0
    assert cli("lock", "acquire", "--environment", "production", "--owner", "b").returncode == 0
    assert "released by force" in json.loads(cli("history", "--json").stdout)[-2]["reason"]


def test_two_controllers_share_one_history_one_lock_and_the_soak_clocks(tmp_path: Path, redis_url: str) -> None:
    """Two controllers (their own files, one environment's Redis): the second deploy is refused by the
    shared lock, both see the same history, and the soak clock started by one holds for the other."""

    def cli(controller: str, *args: str, url: str = redis_url) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"QUANTSHIFT_AUDIT_REDIS_URL": url, "QUANTSHIFT_ACTOR": controller}
        log = tmp_path / f"{controller}.jsonl"
        return subprocess.run(
            [sys.executable, "-m", "quantshift", "deploy", *args, "--audit-log", str(log)],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )  # fmt: skip

    assert cli("alice", "lock", "acquire", "--environment", "paper", "--owner", "alice-run").returncode == 0
    refused = cli("bob", "lock", "acquire", "--environment", "paper", "--owner", "bob-run")
    assert refused.returncode == 1 and "another deployment to paper is running (alice-run" in refused.stderr
    assert json.loads(cli("bob", "lock", "show", "--environment", "paper").stdout)["owner"] == "alice-run"
    assert cli("alice", "record", "--kind", "deploy", "--release", "r7", "--stage", "paper", "--outcome", "ok").returncode == 0
    assert cli("alice", "lock", "release", "--environment", "paper", "--owner", "alice-run").returncode == 0
    assert cli("bob", "lock", "acquire", "--environment", "paper", "--owner", "bob-run").returncode == 0
    seen = {c: [(h["who"], h["kind"], h["reason"]) for h in json.loads(cli(c, "history", "--json").stdout)] for c in ("alice", "bob")}
    assert seen["alice"] == seen["bob"] and [k for _, k, _ in seen["bob"]] == ["lock", "deploy", "lock"]
    assert [w for w, _, _ in seen["bob"]] == ["alice", "alice", "bob"]
    # Each controller's file is its export of what it did; the whole history can be exported.
    assert len((tmp_path / "alice.jsonl").read_text().splitlines()) == 2
    assert cli("bob", "history", "--export", str(tmp_path / "all.jsonl")).returncode == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 3 and (tmp_path / "all.jsonl").stat().st_mode & 0o777 == 0o600
    # Bob's soak check counts Alice's paper deploy (one shared clock): a day later low risk may go on.
    later = "2027-12-01T22:00:00+00:00"
    assert cli("bob", "soak", "--release", "r7", "--risk", "low", "--stage", "production", "--at", later).returncode == 0
    # The shared store down: one clear line, nothing written anywhere.
    before = (tmp_path / "bob.jsonl").read_text()
    down = cli("bob", "record", "--kind", "deploy", "--release", "r8", "--stage", "paper", "--outcome", "ok", url="redis://127.0.0.1:1/0")
    assert down.returncode != 0 and "cannot be reached" in down.stderr and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1 and (tmp_path / "bob.jsonl").read_text() == before


def test_the_window_reads_the_calendar_once_then_its_cache(tmp_path: Path) -> None:
    """A production deploy's window check: the first asks exchange_calendars (pandas, about a second) and
    keeps the sessions; the next reads them without importing pandas, to the same decision."""
    import os

    code = (
        "import datetime as dt, sys\n"
        "from quantshift import window\n"
        "d = window.check(dt.datetime(2026, 12, 24, 18, 5, tzinfo=dt.UTC), 'equity')\n"  # Christmas Eve: an early close
        "print(d.allowed, d.reason, 'pandas' in sys.modules)\n"
    )
    env = os.environ | {"XDG_CACHE_HOME": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    assert first.endswith("True\n") and second.endswith("False\n")
    assert first.rsplit(" ", 1)[0] == second.rsplit(" ", 1)[0] and first.startswith("False ") and "13:00 New York (early close)" in first
    assert list((tmp_path / "quantshift").glob("xnys-*.json"))
