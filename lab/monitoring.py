"""The lab's Prometheus and Alertmanager (Debian's packages), bound to loopback only: Prometheus scrapes
the lab's bots at their stable scrape addresses (file-based service discovery, written from the inventory
by `quantshift monitor targets`), evaluates monitoring/rules, and Alertmanager sends what fires and what
resolves to the lab's webhook receiver (`quantshift lab webhooks` shows it).

Started by `quantshift lab up` when both binaries are installed; a lab without them runs without.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from lab import settings

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "monitoring" / "rules" / "quantshift.rules.yml"
JOBS = ("quantshift", "quantshift_guard")  # one file of targets per job (written by quantshift.monitoring)


def available() -> bool:
    return shutil.which("prometheus") is not None and shutil.which("prometheus-alertmanager") is not None


def directory(lab: settings.LabSettings) -> Path:
    return lab.state_dir / "monitoring"


def targets_dir(lab: settings.LabSettings) -> Path:
    return directory(lab) / "targets"


def prometheus_config(lab: settings.LabSettings) -> dict[str, Any]:
    """Scrapes and evaluates every second: the lab's releases live seconds, not days."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s", "external_labels": {"env": "lab"}},
        "rule_files": [str(directory(lab) / "quantshift.rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{lab.alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": job, "file_sd_configs": [{"files": [str(targets_dir(lab) / f"{job}.json")], "refresh_interval": "1s"}]}
            for job in JOBS
        ],
    }


def alertmanager_config(lab: settings.LabSettings) -> dict[str, Any]:
    """Every alert, firing and resolved, to the lab's receiver at once (no waiting to group)."""
    return {
        "route": {
            "receiver": "lab",
            "group_by": ["alertname", "bot", "host"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "lab",
                "webhook_configs": [{"url": f"http://127.0.0.1:{lab.webhook_port}/alertmanager/lab", "send_resolved": True}],
            }
        ],
    }


def argv(lab: settings.LabSettings) -> dict[str, list[str]]:
    """The two daemons' command lines, each listening on loopback only (Alertmanager's cluster port off)."""
    d = directory(lab)
    return {
        "prometheus": [
            "prometheus",
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'prometheus-data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{lab.prometheus_port}",
            "--web.enable-lifecycle",
        ],
        "alertmanager": [
            "prometheus-alertmanager",
            f"--config.file={d / 'alertmanager.yml'}",
            f"--storage.path={d / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{lab.alertmanager_port}",
            "--cluster.listen-address=",
        ],
    }


def prepare(lab: settings.LabSettings) -> None:
    """Configuration files, and empty target lists until `quantshift monitor targets` fills them."""
    d = directory(lab)
    targets_dir(lab).mkdir(parents=True, exist_ok=True)
    (d / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(lab), sort_keys=False))
    (d / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(lab), sort_keys=False))
    # The project's rules as they are, evaluated every second (a group's own interval is for production).
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (d / "quantshift.rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    for job in JOBS:
        path = targets_dir(lab) / f"{job}.json"
        if not path.exists():
            path.write_text("[]\n")


def check(lab: settings.LabSettings) -> str | None:
    """promtool's verdict on the configuration and rules; None when fine."""
    done = subprocess.run(
        ["promtool", "check", "config", str(directory(lab) / "prometheus.yml")], capture_output=True, text=True, check=False, timeout=60
    )
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip().splitlines()[-1]


def alerts(lab: settings.LabSettings) -> list[dict[str, Any]]:
    """The alerts Prometheus holds now (pending and firing)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{lab.prometheus_port}/api/v1/alerts", timeout=5) as resp:
        return list(json.load(resp)["data"]["alerts"])
