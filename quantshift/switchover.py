"""The trading gap of a switchover, from the bots' own logs: the old release's last decision to the
new release's first decision (both are JSON event lines the engine writes to the journal)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Switchover:
    old_release: str
    new_release: str
    last_decision: float
    first_decision: float

    @property
    def gap_s(self) -> float:
        return self.first_decision - self.last_decision


def events(lines: Iterable[str]) -> list[dict[str, object]]:
    out = []
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            doc = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(doc, dict) and "event" in doc:
            out.append(doc)
    return out


def find(docs: list[dict[str, object]], new_release: str, since: float = 0.0) -> Switchover | None:
    """The first decision of `new_release` after `since`, and the last decision of the process that
    stopped before it (another process: the same release for a plain restart, another for a deploy)."""
    first = next(
        (d for d in docs if d["event"] == "first_decision" and d.get("release") == new_release and float(str(d["t"])) >= since), None
    )
    if first is None:
        return None
    t_new = float(str(first["t"]))

    def other_process(d: dict[str, object]) -> bool:
        return d.get("pid") != first.get("pid") if "pid" in d and "pid" in first else d.get("release") != new_release

    lasts = [
        d
        for d in docs
        if d["event"] == "last_decision" and d.get("at") is not None and other_process(d) and since <= float(str(d["t"])) <= t_new + 5
    ]
    if not lasts:
        return None
    last = max(lasts, key=lambda d: float(str(d["t"])))
    return Switchover(str(last["release"]), new_release, float(str(last["at"])), t_new)


def journal(ssh: list[str], bot: str, since_epoch: float) -> list[str]:
    """The bot's journal lines (all slots) since a time, read over `ssh` (argv prefix)."""
    cmd = [*ssh, "journalctl", "--no-pager", "-o", "cat", "-u", f"quantshift-{bot}@*", "--since", f"@{int(since_epoch)}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
