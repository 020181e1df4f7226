"""The pipeline on a private LXC lab: provision.yml from nothing, deploy-paper.yml fresh and idempotent."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import record
from tests import labkit
from tests.test_pipeline import lab_env, playbook


def _timed(env: dict[str, str], name: str, *extra: str) -> tuple[float, str]:
    began = time.perf_counter()
    proc = playbook(env, name, *extra)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-4000:]}")
    return time.perf_counter() - began, proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lab = labkit.lab_settings(tmp, "10.231.24.0/24", "qsbrb5")
        with labkit.running_lab(lab, "lxc") as facts:
            facts["settings"] = lab
            env = lab_env(facts, tmp)
            provision, _ = _timed(env, "provision.yml")
            fresh, _ = _timed(env, "deploy-paper.yml", "-e", "quantshift_release=b1")
            again, out = _timed(env, "deploy-paper.yml", "-e", "quantshift_release=b1")
    changed = re.findall(r"quantshift-paper\s*:.*?changed=(\d+)", out)
    figures: list[dict[str, Any]] = [
        {
            "name": "provision.yml: 3 containers from nothing until systemd runs in each (lxc)",
            "value": round(provision, 1),
            "unit": "s",
            "target": "< 60",
            "met": provision < 60,
        },
        {
            "name": "deploy-paper.yml on a fresh container (wheelhouse venv, units, health, gate, audit)",
            "value": round(fresh, 1),
            "unit": "s",
            "target": "< 30",
            "met": fresh < 30,
        },
        {
            "name": f"deploy-paper.yml again, same release (changed={changed[-1] if changed else '?'}: the audit record)",
            "value": round(again, 1),
            "unit": "s",
            "target": "< 8",
            "met": again < 8,
        },
    ]
    print(record("pipeline", figures))


if __name__ == "__main__":
    main()
