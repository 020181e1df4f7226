"""The playbooks against a private lab on real LXC containers: provision, then deploy to paper and gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import labkit

ROOT = Path(__file__).resolve().parent.parent


def lab_env(facts: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    lab = facts["settings"]
    spec = labkit.lab_spec_for(facts, lab, tmp_path / "containers.yml")
    return os.environ | {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "QUANTSHIFT_LAB_SPEC": str(spec),
        "QUANTSHIFT_LAB_DIR": str(lab.state_dir),
        "QUANTSHIFT_LAB_PORT": str(lab.port),
        "QUANTSHIFT_LAB_BRIDGE": lab.bridge,
        "QUANTSHIFT_LAB_SUBNET": str(lab.subnet),
        "QUANTSHIFT_LAB_ALPACA_PORT": str(lab.alpaca_port),
        "QUANTSHIFT_LAB_COINBASE_PORT": str(lab.coinbase_port),
        "QUANTSHIFT_LAB_REDIS_PORT": str(lab.redis_port),
        "QUANTSHIFT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "ANSIBLE_FORCE_COLOR": "0",
    }


def playbook(env: dict[str, str], name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", f"playbooks/{name}", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )


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
        secrets = json.loads(
            subprocess.run(
                [sys.executable, "-m", "quantshift", "lab", "env", "--json"], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for secret in (secrets["alpaca"]["paper"]["secret_key"], secrets["redis_url"].split("@")[0].rsplit(":", 1)[1]):
            assert secret not in deployed.stdout + deployed.stderr
        records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(r["kind"], r["outcome"]) for r in records if r["kind"] != "lock"] == [("gate", "ok"), ("deploy", "ok")]
        again = playbook(env, "deploy-paper.yml", "-e", "quantshift_release=t1")
        assert again.returncode == 0 and "changed=1 " in again.stdout  # only the audit record: nothing changed on the host
    finally:  # the lab is shared by the session's lxc tests: leave it empty
        subprocess.run(
            [sys.executable, "-m", "quantshift", "provision", "destroy", "--spec", env["QUANTSHIFT_LAB_SPEC"], "--yes"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
