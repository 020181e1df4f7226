"""Provisioning: the lab spec from nothing on lxc (s); 200 containers on memory (containers/s); parallel vs one-at-a-time."""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import below, record
from proxmox import apply, client, spec
from tests import labkit

QUIET = apply.Reporter(None)


def _connect(path: Path) -> tuple[spec.Spec, Any]:
    loaded = spec.load(path)
    return loaded, client.connect(loaded.endpoint, client.credentials(loaded.endpoint))


def memory_many(n: int = 200) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = labkit.lab_settings(Path(tmp), "10.231.0.0/16", "qsbrb2")
        # A task takes 20 ms here, as a small real node's fastest tasks do; that is what parallelism hides.
        with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_TASK_DELAY": "0.02"}) as facts:
            os.environ[client.TOKEN_ID_ENV], os.environ[client.TOKEN_SECRET_ENV] = facts["token_id"], facts["token_secret"]
            doc = {
                "endpoint": {"host": facts["host"], "port": facts["port"], "node": facts["node"], "ca_cert": facts["ca_cert"]},
                "defaults": {"template": facts["template"], "bridge": facts["bridge"], "gateway": facts["gateway"], "start": False},
                "containers": [
                    {"vmid": 1000 + i, "hostname": f"bot-{i}", "role": "paper", "ip": f"10.231.{1 + i // 250}.{1 + i % 250}/16"}
                    for i in range(n)
                ],
            }
            path = Path(tmp) / "many.yml"
            path.write_text(yaml.safe_dump(doc))
            try:
                loaded, api = _connect(path)
            finally:  # the token stays in this client; later benches read their own lab's credentials file
                del os.environ[client.TOKEN_ID_ENV], os.environ[client.TOKEN_SECRET_ENV]
            t0 = time.perf_counter()
            outcome = apply.apply(api, loaded, report=QUIET)
            parallel = time.perf_counter() - t0
            assert not outcome.errors and len(api.nodes(facts["node"]).lxc.get()) == n
            t0 = time.perf_counter()
            assert not apply.apply(api, loaded, report=QUIET).changed
            noop = time.perf_counter() - t0
            apply.destroy(api, loaded, apply.managed_existing(api, loaded), QUIET)
            # Baseline: the same creates one at a time, each task waited on before the next.
            node = api.nodes(facts["node"])
            from proxmox import plan, tasks

            t0 = time.perf_counter()
            for ct in loaded.containers:
                tasks.wait(node, node.lxc.post(**plan.create_params(ct)), "create", 60)
            sequential = time.perf_counter() - t0
    return [
        {
            "name": f"apply {n} containers from nothing (memory, 20 ms tasks, parallel)",
            "value": round(n / parallel, 1),
            "unit": "containers/s",
            "baseline": f"{round(n / sequential, 1)} containers/s one at a time",
        },
        {"name": f"idempotent apply of {n} containers (nothing to do)", "value": round(noop, 2), "unit": "s"},
    ]


def lxc_lab_spec() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = labkit.lab_settings(Path(tmp), "10.231.22.0/24", "qsbrb3")
        with labkit.running_lab(lab, "lxc") as facts:
            path = labkit.lab_spec_for(lab, Path(tmp) / "containers.yml")
            loaded, api = _connect(path)
            t0 = time.perf_counter()
            outcome = apply.apply(api, loaded, report=apply.Reporter(io.StringIO()))
            applied = time.perf_counter() - t0
            for ct in loaded.containers:
                labkit.wait_ssh(facts, str(ct.ip.ip))
            to_ssh = time.perf_counter() - t0
            assert not outcome.errors
    return [
        {
            "name": "apply the lab spec (3 containers) from nothing (lxc)",
            "value": round(applied, 2),
            "unit": "s",
            "target": "< 60",
            "met": applied < 60,
        },
        {"name": "... until SSH answers on all three", "value": round(to_ssh, 2), "unit": "s", "target": "< 60", "met": to_ssh < 60},
    ]


def main() -> None:
    figures = memory_many()
    if os.geteuid() == 0:
        figures += lxc_lab_spec()
    print(record("provision", [below(f) for f in figures], backend="memory and lxc"))


if __name__ == "__main__":
    main()
