"""The bot role: converge on a fresh container (s) and the idempotent re-run (s), with Molecule + podman."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import below, record
from tests import ROOT


def _molecule(action: str, env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    proc = subprocess.run(
        ["molecule", action, "-s", "default"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"molecule {action} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return time.perf_counter() - began, proc.stdout + proc.stderr


def main() -> None:
    env = os.environ | {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PY_COLORS": "0",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    subprocess.run([str(ROOT / "scripts" / "build-image.sh")], check=True, cwd=ROOT, env=env, capture_output=True)
    subprocess.run([str(ROOT / "scripts" / "build-wheelhouse.sh")], check=True, cwd=ROOT, env=env, capture_output=True)
    figures: list[dict[str, Any]] = []
    try:
        _molecule("destroy", env)
        _molecule("create", env)
        first, _ = _molecule("converge", env)
        again, out = _molecule("converge", env)
        score = subprocess.run(
            ["podman", "exec", "quantshift-molecule-bot", "systemd-analyze", "security", "--no-pager", "quantshift-equity@a.service"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        exposure = re.search(r"exposure level for \S+: ([0-9.]+)", score)
        changed = [int(n) for n in re.findall(r"quantshift-molecule-bot\s*:.*?changed=(\d+)", out)]
        figures = [
            {
                "name": "converge redis + quantshift_bot (2 bots) on a fresh container (wheelhouse venv, health wait)",
                "value": round(first, 1),
                "unit": "s",
            },
            {
                "name": f"idempotent re-run of the same converge (changed={changed[-1] if changed else '?'})",
                "value": round(again, 1),
                "unit": "s",
            },
            {
                "name": "systemd-analyze security exposure of quantshift-equity@a.service",
                "value": float(exposure.group(1)) if exposure else -1.0,
                "unit": "score (0 best, 10 worst)",
                "target": "<= 2.0",
                "met": bool(exposure and float(exposure.group(1)) <= 2.0),
            },
        ]
    finally:
        _molecule("destroy", env)
    print(record("roles", [below(f) for f in figures], backend="podman (Molecule)"))


if __name__ == "__main__":
    main()
