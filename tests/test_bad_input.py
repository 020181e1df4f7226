"""The bad-input corpus (tests/corpus/): broken specs, bot settings, release manifests, host
variables and command lines. Each gives a clear error and changes nothing: the lab's containers,
Redis, the audit log and this machine's /opt stay as they were. Also: one exit-code table for every
command (bot/quantshift_bot/errors.py), `quantshift --version`, and the progress lines of the long waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from quantshift import gate, shadow
from quantshift_bot.errors import EXIT_ERROR, EXIT_INCONCLUSIVE, EXIT_NO, EXIT_OK, EXIT_USAGE
from tests import ROOT, labkit

CORPUS = Path(__file__).resolve().parent / "corpus"
QUANTSHIFT = Path(sys.executable).parent / "quantshift"  # the installed command, as operators and playbooks run it


def cases(name: str) -> list[Any]:
    loaded: list[Any] = yaml.safe_load((CORPUS / name).read_text())
    return loaded


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env)


def containers(facts: dict[str, Any]) -> list[tuple[int, str]]:
    node = labkit.client(facts).nodes(facts["node"])
    return sorted((int(c["vmid"]), str(c["status"])) for c in node.lxc.get())


@pytest.mark.parametrize("case", cases("specs.yml"), ids=lambda c: c["name"])
def test_broken_spec_is_refused_and_the_lab_untouched(memory_lab: dict[str, Any], tmp_path: Path, case: dict[str, Any]) -> None:
    good = labkit.lab_spec_for(memory_lab["settings"], tmp_path / "good.yml").read_text()
    old, new = case["replace"]
    net = memory_lab["subnet"].rsplit(".", 1)[0]
    old = old.replace("PORT", str(memory_lab["port"])).replace("NET", net)
    new = new.replace("NET", net)
    assert old in good, f"the corpus edit no longer applies: {old!r}"
    bad = tmp_path / "bad.yml"
    bad.write_text(good.replace(old, new, 1))
    before = containers(memory_lab)
    for action in (["plan"], ["apply"]):
        out = run("quantshift", "provision", *action, "--spec", str(bad))
        assert out.returncode == EXIT_USAGE, f"{case['name']}: rc {out.returncode}\n{out.stdout}{out.stderr}"
        assert case["expect"] in out.stderr + out.stdout
        assert "Traceback" not in out.stderr
    assert containers(memory_lab) == before


@pytest.mark.parametrize("case", cases("bot-env.yml"), ids=lambda c: next(iter(c["env"])))
def test_broken_bot_setting_exits_2_before_connecting(redis_url: str, case: dict[str, Any]) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "QS_MODE": "live",
        "QS_BROKER": "sim",
        "QS_SYMBOLS": "AAA,BBB",
        "QS_ACCOUNT_ID": "corpus",
        "QS_REDIS_URL": redis_url,
    }
    for key, value in case["env"].items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    client = redis.Redis.from_url(redis_url)
    keys_before = sorted(client.keys("*"))
    out = run("quantshift_bot", "run", env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert case["expect"] in out.stderr and "Traceback" not in out.stderr
    assert sorted(client.keys("*")) == keys_before  # never connected, nothing written


@pytest.mark.parametrize("case", cases("manifests.yml"), ids=lambda c: c["expect"])
def test_broken_manifest_is_refused(tmp_path: Path, case: dict[str, Any]) -> None:
    path = tmp_path / "release.yml"
    path.write_text(case["text"])
    out = run("quantshift", "deploy", "manifest", str(path))
    assert out.returncode == 2 and case["expect"] in out.stderr and not out.stdout, out.stderr


@pytest.mark.parametrize("case", cases("inventories.yml"), ids=lambda c: c["name"])
def test_broken_host_variables_stop_the_role_before_any_change(tmp_path: Path, case: dict[str, Any]) -> None:
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Run the bot role's checks against this machine in check mode",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [{"name": "The role", "ansible.builtin.include_role": {"name": "quantshift_bot"}}],
                }
            ]
        )
    )
    extra = {"quantshift_bot_release": "r1", "quantshift_bot_wheelhouse_archive": str(tmp_path / "none.tar")} | case["vars"]
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = os.environ | {"ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_STRATEGY": "linear"}
    existed = Path("/opt/quantshift").exists()
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "--check",
            str(play),
            "-e",
            f"@{tmp_path / 'vars.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert out.returncode != 0, out.stdout[-3000:]
    assert case["expect"] in out.stdout, out.stdout[-3000:]
    assert case.get("never_shown", "\0") not in out.stdout + out.stderr  # a secret in the setting stays out of the output
    assert "changed=0" in out.stdout
    assert Path("/opt/quantshift").exists() == existed


def quantshift(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(QUANTSHIFT), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize("case", cases("cli.yml"), ids=lambda c: " ".join(c["args"][:4]) or "(none)")
def test_bad_command_line_is_one_line_and_writes_nothing(tmp_path: Path, case: dict[str, Any]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, content in (case.get("files") or {}).items():
        if name.endswith("/"):
            (work / name).mkdir()
        else:
            (work / name).write_bytes(content.encode("latin-1"))
    before = sorted(work.rglob("*"))

    def fill(text: str) -> str:
        return text.replace("{tmp}", str(work))

    log = tmp_path / "audit.jsonl"
    env = os.environ | {"QUANTSHIFT_AUDIT_LOG": str(log), "QUANTSHIFT_LAB_DIR": str(tmp_path / "no-lab")}
    for key in ("QUANTSHIFT_AUDIT_REDIS_URL", "QUANTSHIFT_WEBHOOK_URL"):
        env.pop(key, None)
    env |= {key: fill(value) for key, value in (case.get("env") or {}).items()}
    out = quantshift(*map(fill, case["args"]), env=env, cwd=work)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == case.get("rc", EXIT_USAGE), f"rc {out.returncode}: {out.stdout}{out.stderr}"
    assert len(lines) == 1 and fill(case["expect"]) in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert case.get("never_shown", "\0") not in out.stdout + out.stderr
    assert not log.exists() and not (tmp_path / "no-lab").exists()
    assert sorted(work.rglob("*")) == before  # nothing written next to the inputs either


def test_version() -> None:
    out = quantshift("--version")
    assert out.returncode == EXIT_OK and out.stdout == f"quantshift {metadata.version('quantshift')}\n" and not out.stderr


def test_one_exit_code_table_for_every_command(tmp_path: Path) -> None:
    """0 yes, 1 could not be done, 2 invalid input, 3 the check said no, 4 cannot tell yet: the same in
    every command (bot/quantshift_bot/errors.py)."""
    env = os.environ | {"QUANTSHIFT_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "QUANTSHIFT_LAB_DIR": str(tmp_path / "no-lab")}
    env.pop("QUANTSHIFT_AUDIT_REDIS_URL", None)
    env.pop("QUANTSHIFT_WEBHOOK_URL", None)

    def rc(*args: str, extra: dict[str, str] | None = None) -> int:
        return quantshift(*args, env=env | (extra or {})).returncode

    assert (EXIT_OK, EXIT_NO, EXIT_USAGE) == (EXIT_OK, 3, 2)  # playbooks/provision.yml: plan's 3 is "changes pending"
    assert rc("deploy", "window", "--at", "2026-11-24T22:00:00+00:00") == EXIT_OK
    assert rc("deploy", "window", "--at", "2026-11-27T22:00:00+00:00") == EXIT_NO  # a Friday
    assert rc("deploy", "soak", "--release", "r1", "--risk", "low", "--stage", "production") == EXIT_NO  # never in paper
    assert rc("deploy", "gate", "--url", "http://127.0.0.1:1") == EXIT_NO  # unreachable: the gate says no
    assert rc("bot", "health", "--url", "http://127.0.0.1:1") == EXIT_NO
    assert rc("lab", "status") == EXIT_NO  # the lab is down
    trades = tmp_path / "trades.jsonl"
    trades.write_text(json.dumps({"closed_at": 1, "pnl": 1.0, "ret": 0.01}) + "\n")
    assert rc("compare", "--shadow-trades", str(trades), "--production-trades", str(trades)) == EXIT_INCONCLUSIVE
    assert rc("deploy", "lock", "acquire", "--environment", "paper", "--owner", "a") == EXIT_OK
    assert rc("deploy", "lock", "acquire", "--environment", "paper", "--owner", "b") == EXIT_ERROR  # held
    assert rc("deploy", "history", extra={"QUANTSHIFT_AUDIT_REDIS_URL": "redis://127.0.0.1:1/0"}) == EXIT_ERROR
    assert rc("deploy", "window", "--at", "soon") == EXIT_USAGE


def test_the_gates_watch_says_how_it_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line at the start (what, the bound), then at most one every 5 s with the time left and the
    latest look; plain lines (Ansible captures them); stdout stays the table callers read."""
    monkeypatch.setattr(gate.monitor, "check", lambda url, t: {"health": {"status": "ready"}, "metrics": {}})
    now, lines = [0.0], []
    result = gate.run(
        "http://bot:9108",
        None,
        gate.GateThresholds(),
        0,
        observe_s=30,
        poll_s=0.5,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        write=lines.append,
    )
    assert result.passed
    assert "http://bot:9108" in lines[0] and "up to 30 s" in lines[0]
    assert len(lines) - 1 == 5  # at 5, 10, 15, 20 and 25 s of a 30 s watch: never more often
    assert "5 s of 30 s, 25 s left" in lines[1] and "service healthy ready" in lines[1]
    assert all("\r" not in line for line in lines)

    quiet: list[str] = []
    gate.run("http://bot:9108", None, gate.GateThresholds(), 0, clock=lambda: 0.0, sleep=lambda s: None, write=quiet.append)
    assert quiet == []  # one look, no wait: nothing to report


def test_the_shadow_check_says_what_it_waits_for() -> None:
    docs = {"s": {"mode": "shadow", "account": "a", "market": {}, "would_be_orders": 0, "orders_sent": 0}, "p": {"account": "a"}}
    now, lines = [0.0], []
    result = shadow.check(
        "s",
        "p",
        shadow.ShadowExpectations(1, 12, 1.0),
        docs.__getitem__,
        lambda: now[0],
        lambda s: now.__setitem__(0, now[0] + s),
        lines.append,
    )
    assert not result.passed
    assert "up to 12 s" in lines[0] and len(lines) == 3  # the start, then at 5 and 10 s
    assert "would-be orders recorded 0" in lines[1] and "s left" in lines[1]


def test_the_template_build_says_how_it_goes(tmp_path: Path) -> None:
    from lab import template

    lines: list[str] = []
    script = "echo 'I: Retrieving Release'; sleep 0.6; echo 'I: Unpacking systemd'; sleep 0.6"
    template.run_watched(["sh", "-c", script], "build", tmp_path / "build.log", timeout=30, write=lines.append, every=0.25)
    assert "up to 30 s" in lines[0] and any("I: Unpacking systemd" in line for line in lines[1:])
    with pytest.raises(template.TemplateError, match=r"did not finish within 0\.3 s"):
        template.run_watched(["sleep", "10"], "build", tmp_path / "stuck.log", timeout=0.3, write=lines.append, every=0.1)
