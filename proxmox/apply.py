"""Making the node match the spec: containers in parallel, each one's steps in order, every task waited on."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from proxmox import tasks
from proxmox.client import ProvisionError, call
from proxmox.plan import ContainerPlan, Plan, create_params, make
from proxmox.spec import MANAGED_TAG, ContainerSpec, Spec

MAX_PARALLEL = 8
T = TypeVar("T")


class Reporter:
    """Progress lines with elapsed time, safe to call from worker threads."""

    def __init__(self, stream: TextIO | None = sys.stderr) -> None:
        self.stream = stream
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, ct: ContainerSpec, message: str) -> None:
        if self.stream is None:
            return
        with self._lock:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {ct.vmid} {ct.hostname}: {message}", file=self.stream, flush=True)


@dataclass
class Outcome:
    changed: bool
    actions: dict[int, str]
    seconds: float
    errors: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "actions": {str(k): v for k, v in self.actions.items()},
            "seconds": round(self.seconds, 2),
            "errors": {str(k): v for k, v in self.errors.items()},
        }


def blockers(plan: Plan, recreate: bool) -> list[str]:
    out = list(plan.problems)
    out += [item.reasons[0] for item in plan.items if item.action == "refuse"]
    out += [
        f"{i.spec.vmid} {i.spec.hostname} needs recreation ({'; '.join(i.reasons)}): run again with --recreate (it snapshots first)"
        for i in plan.items
        if i.action == "recreate" and not recreate
    ]
    return out


def apply(api: Any, spec: Spec, recreate: bool = False, report: Reporter | None = None) -> Outcome:
    """Apply the spec idempotently; refuse (changing nothing) when any container is blocked."""
    report = report or Reporter()
    t0 = time.monotonic()
    plan = make(api, spec)
    blocked = blockers(plan, recreate)
    if blocked:
        raise ProvisionError("nothing was changed:\n" + "\n".join(f"  - {b}" for b in blocked))
    work = [item for item in plan.items if item.pending]
    errors = _in_parallel([(i.spec, i) for i in work], lambda item: _converge(api, spec, item, report), report)
    return Outcome(bool(work), {i.spec.vmid: i.action for i in plan.items}, time.monotonic() - t0, errors)


def _in_parallel(pairs: list[tuple[ContainerSpec, T]], fn: Callable[[T], None], report: Reporter) -> dict[int, str]:
    """Run `fn` on every payload at once (bounded); collect each container's failure instead of stopping."""
    errors: dict[int, str] = {}
    if not pairs:
        return errors
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pairs))) as pool:
        futures = [(pool.submit(fn, payload), ct) for ct, payload in pairs]
        for future, ct in futures:
            try:
                future.result()
            except ProvisionError as err:
                errors[ct.vmid] = str(err)
                report(ct, f"FAILED: {str(err).splitlines()[0]}")
    return errors


def _converge(api: Any, spec: Spec, item: ContainerPlan, report: Reporter) -> None:
    ep, ct = spec.endpoint, item.spec
    node = api.nodes(ep.node)

    def run(what: str, start: Callable[[], str]) -> None:
        upid = call(start, ep, f"{what} CT {ct.vmid}")
        secs = tasks.wait(node, upid, f"{what} CT {ct.vmid}", ep.task_timeout)
        report(ct, f"{what}: OK ({secs:.1f}s)")

    if item.action == "recreate":
        snap = f"qs-pre-recreate-{int(time.time())}"
        run(f"snapshot {snap}", lambda: node.lxc(ct.vmid).snapshot.post(snapname=snap, description="taken by quantshift before recreating"))
        if item.running:
            run("stop", lambda: node.lxc(ct.vmid).status.stop.post())
        run("destroy", lambda: node.lxc(ct.vmid).delete(purge=1))
    if item.action in ("create", "recreate"):
        run("create", lambda: node.lxc.post(**create_params(ct)))
        if ct.start:
            run("start", lambda: node.lxc(ct.vmid).status.start.post())
        return
    if item.changes:
        params = {c.key: c.new for c in item.changes if c.new not in ("", None)}
        deletes = [c.key for c in item.changes if c.new in ("", None)]
        if deletes:
            params["delete"] = ",".join(deletes)
        call(lambda: node.lxc(ct.vmid).config.put(digest=item.digest, **params), ep, f"updating CT {ct.vmid}")
        report(ct, "updated " + ", ".join(c.key for c in item.changes))
    if item.resize_to:
        run(f"resize rootfs to {item.resize_to}G", lambda: node.lxc(ct.vmid).resize.put(disk="rootfs", size=f"{item.resize_to}G"))
    if item.start:
        run("start", lambda: node.lxc(ct.vmid).status.start.post())


# --- destroy, snapshot, rollback over the managed containers of a spec --------------------------------
def managed_existing(api: Any, spec: Spec, vmids: set[int] | None = None) -> list[tuple[ContainerSpec, dict[str, Any]]]:
    """Containers of the spec that exist; raises before any change if one of them is not ours."""
    ep = spec.endpoint
    node = api.nodes(ep.node)
    existing = {int(c["vmid"]): c for c in call(lambda: node.lxc.get(), ep, "listing containers")}
    out, refused = [], []
    for ct in spec.containers:
        if ct.vmid not in existing or (vmids and ct.vmid not in vmids):
            continue
        tags = set(str(existing[ct.vmid].get("tags", "")).replace(",", ";").split(";"))
        if MANAGED_TAG not in tags:
            refused.append(f"vmid {ct.vmid} exists and is not managed by QuantShift: refusing to touch it")
        out.append((ct, existing[ct.vmid]))
    if refused:
        raise ProvisionError("nothing was changed:\n" + "\n".join(f"  - {r}" for r in refused))
    return out


def destroy(api: Any, spec: Spec, targets: list[tuple[ContainerSpec, dict[str, Any]]], report: Reporter) -> dict[int, str]:
    ep = spec.endpoint
    node = api.nodes(ep.node)

    def one(pair: tuple[ContainerSpec, dict[str, Any]]) -> None:
        ct, summary = pair
        if summary.get("status") == "running":
            upid = call(lambda: node.lxc(ct.vmid).status.stop.post(), ep, f"stopping CT {ct.vmid}")
            tasks.wait(node, upid, f"stop CT {ct.vmid}", ep.task_timeout)
            report(ct, "stopped")
        upid = call(lambda: node.lxc(ct.vmid).delete(purge=1), ep, f"destroying CT {ct.vmid}")
        tasks.wait(node, upid, f"destroy CT {ct.vmid}", ep.task_timeout)
        report(ct, "destroyed")

    return _in_parallel([(pair[0], pair) for pair in targets], one, report)


def snapshot(api: Any, spec: Spec, targets: list[tuple[ContainerSpec, dict[str, Any]]], name: str, report: Reporter) -> dict[int, str]:
    ep = spec.endpoint
    node = api.nodes(ep.node)

    def one(pair: tuple[ContainerSpec, dict[str, Any]]) -> None:
        ct, _ = pair
        upid = call(
            lambda: node.lxc(ct.vmid).snapshot.post(snapname=name, description="taken by quantshift provision snapshot"),
            ep,
            f"snapshot of CT {ct.vmid}",
        )
        tasks.wait(node, upid, f"snapshot {name} of CT {ct.vmid}", ep.task_timeout)
        report(ct, f"snapshot {name} taken")

    return _in_parallel([(pair[0], pair) for pair in targets], one, report)


def rollback(api: Any, spec: Spec, targets: list[tuple[ContainerSpec, dict[str, Any]]], name: str, report: Reporter) -> dict[int, str]:
    ep = spec.endpoint
    node = api.nodes(ep.node)
    missing = []
    for ct, _ in targets:
        names = {s["name"] for s in call(lambda v=ct.vmid: node.lxc(v).snapshot.get(), ep, f"listing snapshots of CT {ct.vmid}")}
        if name not in names:
            missing.append(
                f"CT {ct.vmid} {ct.hostname} has no snapshot '{name}' (it has: {', '.join(sorted(names - {'current'})) or 'none'})"
            )
    if missing:
        raise ProvisionError("nothing was changed:\n" + "\n".join(f"  - {m}" for m in missing))

    def one(pair: tuple[ContainerSpec, dict[str, Any]]) -> None:
        ct, summary = pair
        start = int(summary.get("status") == "running")
        upid = call(lambda: node.lxc(ct.vmid).snapshot(name).rollback.post(start=start), ep, f"rollback of CT {ct.vmid}")
        tasks.wait(node, upid, f"rollback of CT {ct.vmid} to {name}", ep.task_timeout)
        report(ct, f"rolled back to {name}" + (" and started" if start else ""))

    return _in_parallel([(pair[0], pair) for pair in targets], one, report)
