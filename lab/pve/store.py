"""The lab API's durable state: containers, snapshots and tasks, kept in SQLite so a restart loses nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Value = int | float | str


@dataclass
class Snapshot:
    name: str
    description: str
    snaptime: int
    parent: str | None
    config: dict[str, Value]
    running: int = 0  # the container was running when the snapshot was taken


@dataclass
class Container:
    vmid: int
    config: dict[str, Value]
    status: str = "stopped"  # what the memory backend reports; the lxc backend asks LXC
    lock: str | None = None
    parent: str | None = None  # the snapshot the current state descends from
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    started_at: float | None = None

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(self.config, sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, raw: str) -> Container:
        data = json.loads(raw)
        data["snapshots"] = {k: Snapshot(**v) for k, v in data.get("snapshots", {}).items()}
        return cls(**data)


@dataclass
class Task:
    upid: str
    node: str
    type: str
    id: str
    user: str
    pid: int
    pstart: int
    starttime: int
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    lines: list[str] = field(default_factory=list)

    def status_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "status": self.status,
        }
        if self.status == "stopped":
            view["exitstatus"] = self.exitstatus
        return view


class Store:
    """In-memory maps written through to SQLite on every change (WAL, one row per object)."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS containers (vmid INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS tasks (upid TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        self.containers: dict[int, Container] = {
            vmid: Container.from_json(doc) for vmid, doc in self.db.execute("SELECT vmid, doc FROM containers")
        }
        self.tasks: dict[str, Task] = {}
        for (doc,) in self.db.execute("SELECT doc FROM tasks"):
            task = Task(**json.loads(doc))
            if task.status == "running":  # the API died under it: Proxmox reports the same
                task.status, task.exitstatus = "stopped", "unexpected status"
            self.tasks[task.upid] = task

    def save(self, ct: Container) -> None:
        with self.lock:
            self.containers[ct.vmid] = ct
            self.db.execute("INSERT OR REPLACE INTO containers VALUES (?, ?)", (ct.vmid, json.dumps(asdict(ct))))

    def forget(self, vmid: int) -> None:
        with self.lock:
            self.containers.pop(vmid, None)
            self.db.execute("DELETE FROM containers WHERE vmid = ?", (vmid,))

    def save_task(self, task: Task) -> None:
        with self.lock:
            self.tasks[task.upid] = task
            self.db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?)", (task.upid, json.dumps(asdict(task))))
