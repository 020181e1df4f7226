#!/usr/bin/env python3
"""Ansible inventory script for the lab: containers.yml's containers as the lab's Proxmox API reports them.

Groups: primary, standby, paper (children of bots), each host with ansible_host. Runs under the
project's .venv so proxmoxer is importable whichever python Ansible starts it with.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
# The lab spec next to this script, unless QUANTSHIFT_LAB_SPEC names another (tests run private labs).
SPEC = Path(os.environ.get("QUANTSHIFT_LAB_SPEC") or Path(__file__).resolve().parent / "containers.yml")

if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
sys.path.insert(0, str(ROOT))

from proxmox import client, inventory, spec  # noqa: E402

if "--host" in sys.argv:
    print("{}")
    sys.exit(0)
try:
    loaded = spec.load(SPEC)
    api = client.connect(loaded.endpoint, client.credentials(loaded.endpoint))
    print(json.dumps(inventory.build(api, loaded)))
except (spec.SpecError, client.ProvisionError) as err:
    print(f"lab inventory: {err}", file=sys.stderr)
    sys.exit(1)
