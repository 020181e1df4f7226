"""Shared bench plumbing: a private lab per bench, the machine's description, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def below(figure: dict[str, Any]) -> dict[str, Any]:
    """For a figure whose target reads "< LIMIT": say by how much a miss missed (value - LIMIT, in its unit)."""
    target = str(figure.get("target", ""))
    if figure.get("met") is False and "miss" not in figure and re.fullmatch(r"< [0-9.]+", target):
        figure["miss"] = f"+{figure['value'] - float(target[2:]):.3g} {figure['unit']} over"
    return figure


def record(name: str, figures: list[dict[str, Any]], backend: str | None = None) -> Path:
    """Write one bench's figures (each with name, value, unit, and target/baseline where known)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    desc = machine() | ({"backend": backend} if backend else {})
    doc = {"bench": name, "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": desc, "figures": figures}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_markdown() -> Path:
    """Collect every results/*.json into bench/RESULTS.md, one table."""
    rows = ["| bench | figure | value | unit | baseline | target | met | machine | when |", "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        m = doc["machine"]
        desc = f"{m['cores']} cores, {m['memory_gib']} GiB" + (f", {m['backend']}" if m.get("backend") else "")
        for f in doc["figures"]:
            target = f.get("target", "")
            met = "" if "met" not in f else ("yes" if f["met"] else f"no ({f.get('miss', '')})")
            rows.append(
                f"| {doc['bench']} | {f['name']} | {f['value']} | {f['unit']} | {f.get('baseline', '')} | {target} | {met} | {desc} | {doc['when'][:10]} |"
            )
    out = RESULTS.parent / "RESULTS.md"
    out.write_text(
        "# Recorded benchmark results\n\nWritten by `make bench` (`python -m bench.run`); each row comes from bench/results/*.json.\n\n"
        + "\n".join(rows)
        + "\n"
    )
    return out
