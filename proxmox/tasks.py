"""Waiting on Proxmox UPID tasks: polled with backoff, bounded by a timeout, failures carry the task log."""

from __future__ import annotations

import time
from typing import Any

from proxmox.client import ProvisionError

LOG_TAIL = 20


class TaskFailed(ProvisionError):
    def __init__(self, what: str, upid: str, exitstatus: str, log: list[str]) -> None:
        self.upid, self.exitstatus, self.log = upid, exitstatus, log
        tail = "\n".join(f"    | {line}" for line in log[-LOG_TAIL:])
        super().__init__(f"{what} failed: {exitstatus}\n  task {upid}, its log:\n{tail}")


def wait(node: Any, upid: str, what: str, timeout: float) -> float:
    """Block until the task stops; return its duration in seconds or raise TaskFailed / ProvisionError."""
    start = time.monotonic()
    delay = 0.05
    while True:
        status = node.tasks(upid).status.get()
        if status["status"] == "stopped":
            break
        if time.monotonic() - start > timeout:
            raise ProvisionError(
                f"{what}: task {upid} still running after {timeout:.0f}s (endpoint.task_timeout); it may still finish on the node"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    if status.get("exitstatus") != "OK":
        log = [entry["t"] for entry in node.tasks(upid).log.get(start=0, limit=500)]
        raise TaskFailed(what, upid, str(status.get("exitstatus")), log)
    return time.monotonic() - start
