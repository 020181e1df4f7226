"""The lab's Proxmox API: creates/s through proxmoxer (memory), and 3 containers to SSH (lxc)."""

from __future__ import annotations

import concurrent.futures
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import below, record
from tests import labkit

MEMORY_CREATES = 1000


def memory_creates(n: int = MEMORY_CREATES) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = labkit.lab_settings(Path(tmp), "10.231.20.0/24", "qsbrb0")
        with labkit.running_lab(lab, "memory") as facts:
            node = labkit.client(facts).nodes(facts["node"])
            t0 = time.perf_counter()
            upids = [node.lxc.post(vmid=1000 + i, ostemplate=facts["template"], hostname=f"bench-{i}", memory=256) for i in range(n)]
            posted = time.perf_counter() - t0
            for upid in upids:
                labkit.wait(node, upid)
            done = time.perf_counter() - t0
            assert len(node.lxc.get()) == n
    return [
        {
            "name": f"{n} creates through proxmoxer (POST, one client)",
            "value": round(n / posted, 1),
            "unit": "creates/s",
            "target": ">= 100",
        }
        | {"met": n / posted >= 100},
        {"name": f"{n} creates, every task waited on", "value": round(n / done, 1), "unit": "creates/s"},
    ]


def lxc_three_to_ssh() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = labkit.lab_settings(Path(tmp), "10.231.21.0/24", "qsbrb1")
        with labkit.running_lab(lab, "lxc") as facts:
            node = labkit.client(facts).nodes(facts["node"])
            prefix = facts["subnet"].rsplit(".", 1)[0]

            def one(i: int) -> None:
                net = f"name=eth0,bridge={facts['bridge']},ip={prefix}.{10 + i}/24,gw={facts['gateway']}"
                upid = node.lxc.post(
                    vmid=100 + i,
                    ostemplate=facts["template"],
                    hostname=f"bench-{i}",
                    net0=net,
                    start=1,
                    **{"ssh-public-keys": facts["ssh_public_key"]},
                )
                assert labkit.wait(node, upid)["exitstatus"] == "OK"
                labkit.wait_ssh(facts, f"{prefix}.{10 + i}")

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                list(pool.map(one, range(3)))
            elapsed = time.perf_counter() - t0
    return [
        {
            "name": "create + start 3 containers until SSH answers (lxc)",
            "value": round(elapsed, 2),
            "unit": "s",
            "target": "< 60",
            "met": elapsed < 60,
        }
    ]


def main() -> None:
    figures = memory_creates()
    if os.geteuid() == 0:
        figures += lxc_three_to_ssh()
    print(record("lab_api", [below(f) for f in figures], backend="memory and lxc"))


if __name__ == "__main__":
    main()
