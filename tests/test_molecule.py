"""Molecule's default scenario (podman, systemd as PID 1): converge, idempotence, verify, destroy.

The secrets are generated here and passed in, so this test can prove none of them reached the output.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT


def molecule_env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"} | extra


@pytest.mark.molecule
def test_default_scenario_converges_verifies_and_hides_secrets() -> None:
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("needs root and podman (make setup)")
    subprocess.run([str(ROOT / "scripts" / "build-image.sh")], check=True, cwd=ROOT, env=molecule_env(), capture_output=True, timeout=900)
    redis_password, broker_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    env = molecule_env(QS_MOLECULE_REDIS_PASSWORD=redis_password, QS_MOLECULE_BROKER_SECRET=broker_secret)
    proc = subprocess.run(
        ["molecule", "test", "-s", "default"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert re.search(r"idempotence:?\s+Executed: Successful", re.sub(r"\x1b\[[0-9;]*m", "", output)), output[-3000:]
    assert redis_password not in output and broker_secret not in output
