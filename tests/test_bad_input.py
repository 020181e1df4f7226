"""The bad-input corpus (tests/corpus/): broken specs, bot settings, release manifests, host
variables and command lines. Each gives a clear error and changes nothing: the lab's containers,
Redis, the audit log and this machine's /opt stay as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests import ROOT, labkit

CORPUS = Path(__file__).resolve().parent / "corpus"


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
        assert out.returncode in (1, 2), f"{case['name']}: rc {out.returncode}\n{out.stdout}{out.stderr}"
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
    out = run("bot", "run", env=env)
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


@pytest.mark.parametrize("case", cases("cli.yml"), ids=lambda c: " ".join(c["args"][:3]))
def test_bad_command_line_is_refused_and_writes_nothing(tmp_path: Path, case: dict[str, Any]) -> None:
    log = tmp_path / "audit.jsonl"
    env = os.environ | {"QUANTSHIFT_AUDIT_LOG": str(log), "QUANTSHIFT_LAB_DIR": str(tmp_path / "no-lab")}
    out = run("quantshift", *case["args"], env=env)
    assert out.returncode in (1, 2), f"rc {out.returncode}: {out.stdout}{out.stderr}"
    assert case["expect"] in out.stderr + out.stdout and "Traceback" not in out.stderr
    assert not log.exists() and not (tmp_path / "no-lab").exists()
