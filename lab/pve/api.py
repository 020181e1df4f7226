"""The Proxmox-VE-compatible API: routes, checks and UPID tasks over a backend."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab import settings
from lab.backends.base import Backend, BackendError
from lab.httpd import ApiError, Request, Router, public
from lab.pve.auth import Auth
from lab.pve.schema import (
    CONTAINER_PARAMS,
    MAX_VMID,
    NET,
    ROOTFS,
    Value,
    _int,
    check,
    format_size,
    parse_bool,
    parse_size,
)
from lab.pve.store import Container, Snapshot, Store, Task

log = logging.getLogger("lab.pve")
VERSION = {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325", "console": "lab"}
_SNAPNAME = r"^[a-zA-Z][a-zA-Z0-9_\-]{1,39}$"


class PveApi:
    def __init__(self, store: Store, auth: Auth, backend: Backend, lab: settings.LabSettings, workers: int = 16) -> None:
        self.store, self.auth, self.backend, self.lab = store, auth, backend, lab
        self.node = settings.NODE_NAME
        self.router = Router("/api2/json")
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._pid = itertools.count(os.getpid() * 1000)
        self._pstart = int(time.monotonic() * 100)
        self._vm_locks: dict[int, threading.Lock] = {}
        self._register()

    # --- helpers --------------------------------------------------------------------------------
    def _node(self, req: Request) -> str:
        node = req.vars["node"]
        if node != self.node:
            raise ApiError(595, f"no such node '{node}'" if node else "hostname lookup failed")
        return node

    def _vmid(self, req: Request) -> int:
        raw = req.vars["vmid"]
        result = check({"vmid": raw}, {"vmid": _int(100, MAX_VMID)})
        result.raise_if_errors()
        return int(raw)

    def _ct(self, req: Request) -> Container:
        self._node(req)
        vmid = self._vmid(req)
        ct = self.store.containers.get(vmid)
        if ct is None:
            raise ApiError(500, f"Configuration file 'nodes/{self.node}/lxc/{vmid}.conf' does not exist")
        return ct

    def _vm_lock(self, vmid: int) -> threading.Lock:
        with self.store.lock:
            return self._vm_locks.setdefault(vmid, threading.Lock())

    def _not_locked(self, ct: Container) -> None:
        if ct.lock:
            raise ApiError(500, f"CT is locked ({ct.lock})")

    def task(self, kind: str, ident: str, user: str, work: Callable[[Callable[[str], None]], None], vmid: int | None = None) -> str:
        """Start `work` as a Proxmox task and answer its UPID at once."""
        start = int(time.time())
        pid = next(self._pid) & 0xFFFFFFFF
        upid = f"UPID:{self.node}:{pid:08X}:{self._pstart:08X}:{start:08X}:{kind}:{ident}:{user}:"
        task = Task(upid=upid, node=self.node, type=kind, id=ident, user=user, pid=pid, pstart=self._pstart, starttime=start)
        self.store.save_task(task)

        def run() -> None:
            lock = self._vm_lock(vmid) if vmid is not None else threading.Lock()
            with lock:
                try:
                    work(task.lines.append)
                    task.exitstatus = "OK"
                    task.lines.append("TASK OK")
                except (ApiError, BackendError) as err:
                    task.exitstatus = str(err).strip()
                    task.lines.append(f"TASK ERROR: {task.exitstatus}")
                except Exception as err:  # a lab bug still ends the task, with its reason
                    log.exception("task %s crashed", upid)
                    task.exitstatus = f"internal error: {err}"
                    task.lines.append(f"TASK ERROR: {task.exitstatus}")
            task.status, task.endtime = "stopped", int(time.time())
            self.store.save_task(task)

        self.pool.submit(run)
        return upid

    def _running(self, ct: Container) -> bool:
        return self.backend.is_running(ct)

    def _check_net(self, values: dict[str, Value], errors: dict[str, str]) -> None:
        """The lab's network policy: its own bridge only, and addresses inside its own subnet."""
        for key, raw in values.items():
            if not key.startswith("net"):
                continue
            net = NET.parse(str(raw))
            bridge = net.get("bridge")
            if bridge is not None and bridge != self.lab.bridge:
                errors[key] = f"bridge '{bridge}' does not exist on node {self.node} (the lab bridge is '{self.lab.bridge}')"
                continue
            ip = str(net.get("ip", ""))
            if ip in ("", "dhcp", "manual"):
                if ip == "dhcp":
                    errors[key] = "ip=dhcp is not served on the lab bridge: give a static address in " + str(self.lab.subnet)
                continue
            iface = ipaddress.IPv4Interface(ip)
            if iface.ip not in self.lab.subnet or iface.network.prefixlen < self.lab.subnet.prefixlen:
                errors[key] = f"ip {ip} is outside the lab subnet {self.lab.subnet}: the lab never routes to a real network"
            elif iface.ip == self.lab.gateway:
                errors[key] = f"ip {iface.ip} is the lab bridge's own address"
            elif "gw" in net and ipaddress.IPv4Address(str(net["gw"])) not in self.lab.subnet:
                errors[key] = f"gw {net['gw']} is outside the lab subnet {self.lab.subnet}"

    def _check_rootfs(self, raw: str, vmid: int, create: bool) -> str:
        parts = ROOTFS.parse(raw)
        storage, _, volume = str(parts["volume"]).partition(":")
        if storage != settings.STORAGE:
            raise ApiError(400, "Parameter verification failed.", {"rootfs": f"storage '{storage}' does not exist"})
        if create:
            try:
                size = parse_size(volume)
            except ValueError:
                raise ApiError(
                    400,
                    "Parameter verification failed.",
                    {"rootfs": f"cannot use existing volume '{parts['volume']}' on create: give storage:size_in_GiB"},
                ) from None
            if size <= 0:
                raise ApiError(400, "Parameter verification failed.", {"rootfs": "disk size must be positive"})
            parts["volume"] = f"{storage}:{vmid}/vm-{vmid}-disk-0.raw"
            parts["size"] = format_size(size)
        return ROOTFS.format(parts, first="volume")

    # --- routes ---------------------------------------------------------------------------------
    def _register(self) -> None:
        r = self.router

        @r.route("GET", "/version")
        def version(req: Request) -> Any:
            return VERSION

        @r.route("POST", "/access/ticket")
        @public
        def ticket(req: Request) -> Any:
            missing = {k: "property is missing and it is not optional" for k in ("username", "password") if k not in req.params}
            if missing:
                raise ApiError(400, "Parameter verification failed.", missing)
            return self.auth.login(req.params["username"], req.params["password"])

        @r.route("GET", "/access/users/{user}/token")
        def tokens(req: Request) -> Any:
            return self.auth.list_tokens(req.vars["user"])

        @r.route("POST", "/access/users/{user}/token/{name}")
        def add_token(req: Request) -> Any:
            checked = check(req.params, {"expire": _int(0), "privsep": parse_bool, "comment": lambda s: s})
            checked.raise_if_errors()
            v = checked.values
            return self.auth.add_token(
                req.vars["user"], req.vars["name"], int(v.get("expire", 0)), int(v.get("privsep", 1)), str(v.get("comment", ""))
            )

        @r.route("DELETE", "/access/users/{user}/token/{name}")
        def del_token(req: Request) -> Any:
            self.auth.remove_token(req.vars["user"], req.vars["name"])

        @r.route("GET", "/nodes")
        def nodes(req: Request) -> Any:
            return [
                {
                    "node": self.node,
                    "status": "online",
                    "type": "node",
                    "id": f"node/{self.node}",
                    "maxcpu": os.cpu_count(),
                    "level": "",
                    "uptime": int(time.monotonic()),
                }
            ]

        @r.route("GET", "/nodes/{node}/network")
        def network(req: Request) -> Any:
            self._node(req)
            return [
                {
                    "iface": self.lab.bridge,
                    "type": "bridge",
                    "active": 1,
                    "cidr": f"{self.lab.gateway}/{self.lab.subnet.prefixlen}",
                    "address": str(self.lab.gateway),
                    "netmask": str(self.lab.subnet.netmask),
                }
            ]

        @r.route("GET", "/cluster/resources")
        def resources(req: Request) -> Any:
            kind = req.params.get("type")
            out: list[dict[str, Any]] = []
            if kind in (None, "vm"):
                out += [self._resource(ct) for ct in self._sorted()]
            if kind in (None, "node"):
                out.append({"id": f"node/{self.node}", "type": "node", "node": self.node, "status": "online"})
            if kind in (None, "storage"):
                out.append(
                    {
                        "id": f"storage/{self.node}/{settings.STORAGE}",
                        "type": "storage",
                        "node": self.node,
                        "storage": settings.STORAGE,
                        "status": "available",
                    }
                )
            return out

        @r.route("GET", "/cluster/nextid")
        def nextid(req: Request) -> Any:
            if "vmid" in req.params:
                check({"vmid": req.params["vmid"]}, {"vmid": _int(100, MAX_VMID)}).raise_if_errors()
                vmid = int(req.params["vmid"])
                if vmid in self.store.containers:
                    raise ApiError(400, "Parameter verification failed.", {"vmid": f"VM {vmid} already exists"})
                return str(vmid)
            vmid = 100
            while vmid in self.store.containers:
                vmid += 1
            return str(vmid)

        @r.route("GET", "/nodes/{node}/storage")
        def storage(req: Request) -> Any:
            self._node(req)
            return [
                {
                    "storage": settings.STORAGE,
                    "type": "dir",
                    "content": "vztmpl,rootdir,backup",
                    "active": 1,
                    "enabled": 1,
                    "shared": 0,
                    "total": 100 * 1024**3,
                    "used": 10 * 1024**3,
                    "avail": 90 * 1024**3,
                }
            ]

        @r.route("GET", "/nodes/{node}/storage/{storage}/content")
        def content(req: Request) -> Any:
            self._node(req)
            if req.vars["storage"] != settings.STORAGE:
                raise ApiError(500, f"storage '{req.vars['storage']}' does not exist")
            items = self.backend.templates()
            wanted = req.params.get("content")
            return [i for i in items if wanted in (None, i["content"])]

        @r.route("GET", "/nodes/{node}/tasks")
        def task_list(req: Request) -> Any:
            self._node(req)
            limit = int(req.params.get("limit", "50"))
            tasks = sorted(self.store.tasks.values(), key=lambda t: (t.starttime, t.pid), reverse=True)[:limit]
            return [t.status_view() | ({"endtime": t.endtime} if t.endtime else {}) for t in tasks]

        @r.route("GET", "/nodes/{node}/tasks/{upid}/status")
        def task_status(req: Request) -> Any:
            return self._task(req).status_view()

        @r.route("GET", "/nodes/{node}/tasks/{upid}/log")
        def task_log(req: Request) -> Any:
            task = self._task(req)
            start, limit = int(req.params.get("start", "0")), int(req.params.get("limit", "50"))
            lines = list(task.lines)
            return [{"n": n + 1, "t": t} for n, t in enumerate(lines)][start : start + limit]

        @r.route("GET", "/nodes/{node}/lxc")
        def lxc_list(req: Request) -> Any:
            self._node(req)
            return [self._summary(ct) for ct in self._sorted()]

        @r.route("POST", "/nodes/{node}/lxc")
        def lxc_create(req: Request) -> Any:
            return self._create(req)

        @r.route("GET", "/nodes/{node}/lxc/{vmid}")
        def lxc_index(req: Request) -> Any:
            self._ct(req)
            return [{"subdir": s} for s in ("config", "status", "snapshot", "interfaces", "resize")]

        @r.route("DELETE", "/nodes/{node}/lxc/{vmid}")
        def lxc_delete(req: Request) -> Any:
            return self._destroy(req)

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/config")
        def config_get(req: Request) -> Any:
            ct = self._ct(req)
            out: dict[str, Any] = dict(ct.config)
            if ct.lock:
                out["lock"] = ct.lock
            if ct.parent:
                out["parent"] = ct.parent
            out["digest"] = ct.digest()
            return out

        @r.route("PUT", "/nodes/{node}/lxc/{vmid}/config")
        def config_put(req: Request) -> Any:
            return self._update_config(req)

        @r.route("PUT", "/nodes/{node}/lxc/{vmid}/resize")
        def resize(req: Request) -> Any:
            return self._resize(req)

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/status")
        def status_index(req: Request) -> Any:
            self._ct(req)
            return [{"subdir": s} for s in ("current", "start", "stop", "shutdown", "reboot")]

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/status/current")
        def status_current(req: Request) -> Any:
            ct = self._ct(req)
            return self._summary(ct) | {"ha": {"managed": 0}}

        for action in ("start", "stop", "shutdown", "reboot"):
            r.route("POST", "/nodes/{node}/lxc/{vmid}/status/" + action)(self._power(action))

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/interfaces")
        def interfaces(req: Request) -> Any:
            ct = self._ct(req)
            if not self._running(ct):
                raise ApiError(500, f"CT {ct.vmid} not running")
            return self.backend.interfaces(ct)

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/snapshot")
        def snap_list(req: Request) -> Any:
            ct = self._ct(req)
            out: list[dict[str, Any]] = [
                {"name": s.name, "description": s.description, "snaptime": s.snaptime} | ({"parent": s.parent} if s.parent else {})
                for s in ct.snapshots.values()
            ]
            here: dict[str, Any] = {"name": "current", "description": "You are here!", "running": int(self._running(ct))}
            if ct.parent:
                here["parent"] = ct.parent
            return [*out, here]

        @r.route("POST", "/nodes/{node}/lxc/{vmid}/snapshot")
        def snap_create(req: Request) -> Any:
            return self._snapshot(req)

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}")
        def snap_index(req: Request) -> Any:
            self._snap(req)
            return [{"subdir": "rollback"}, {"subdir": "config"}]

        @r.route("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config")
        def snap_config(req: Request) -> Any:
            _ct, snap = self._snap(req)
            return dict(snap.config)

        @r.route("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback")
        def snap_rollback(req: Request) -> Any:
            return self._rollback(req)

        @r.route("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}")
        def snap_delete(req: Request) -> Any:
            return self._delete_snapshot(req)

    def _task(self, req: Request) -> Task:
        self._node(req)
        task = self.store.tasks.get(req.vars["upid"])
        if task is None:
            raise ApiError(500, f"no such task '{req.vars['upid']}'")
        return task

    def _sorted(self) -> list[Container]:
        with self.store.lock:
            return [self.store.containers[k] for k in sorted(self.store.containers)]

    def _summary(self, ct: Container) -> dict[str, Any]:
        running = self._running(ct)
        usage = self.backend.usage(ct) if running else {}
        rootfs = ROOTFS.parse(str(ct.config.get("rootfs", "local:0")))
        out: dict[str, Any] = {
            "vmid": ct.vmid,
            "name": ct.config.get("hostname", f"CT{ct.vmid}"),
            "status": "running" if running else "stopped",
            "type": "lxc",
            "cpus": ct.config.get("cores", os.cpu_count()),
            "maxmem": int(ct.config.get("memory", 512)) * 1024 * 1024,
            "maxswap": int(ct.config.get("swap", 512)) * 1024 * 1024,
            "maxdisk": int(parse_size(str(rootfs.get("size", "0")), "B") * 1024**3),
            "mem": usage.get("mem", 0),
            "cpu": usage.get("cpu", 0),
            "uptime": int(time.time() - ct.started_at) if running and ct.started_at else 0,
        }
        if usage.get("pid"):
            out["pid"] = usage["pid"]
        if "tags" in ct.config:
            out["tags"] = ct.config["tags"]
        if ct.lock:
            out["lock"] = ct.lock
        if ct.config.get("template"):
            out["template"] = 1
        return out

    def _resource(self, ct: Container) -> dict[str, Any]:
        s = self._summary(ct)
        return s | {"id": f"lxc/{ct.vmid}", "node": self.node, "template": int(ct.config.get("template", 0)), "maxcpu": s["cpus"]}

    # --- container lifecycle --------------------------------------------------------------------
    def _create(self, req: Request) -> str:
        self._node(req)
        checked = check(req.params, CONTAINER_PARAMS, required=("vmid", "ostemplate"))
        self._check_net(checked.values, checked.errors)
        checked.raise_if_errors()
        v = checked.values
        vmid = int(v["vmid"])
        if str(v["ostemplate"]) not in {t["volid"] for t in self.backend.templates()}:
            raise ApiError(500, f"volume '{v['ostemplate']}' does not exist")
        rootfs = self._check_rootfs(str(v.get("rootfs", f"{v.get('storage', settings.STORAGE)}:4")), vmid, create=True)
        config: dict[str, Value] = {"arch": "amd64", "ostype": "debian", "hostname": f"CT{vmid}", "memory": 512, "swap": 512}
        config |= {k: val for k, val in v.items() if CONTAINER_PARAMS[k].stored}
        config["rootfs"] = rootfs
        with self.store.lock:
            if vmid in self.store.containers:
                raise ApiError(500, f"CT {vmid} already exists on node '{self.node}'")
            ct = Container(vmid=vmid, config=config, lock="create")
            self.store.save(ct)
        start = bool(v.get("start"))
        ssh_keys = str(v.get("ssh-public-keys", ""))

        def work(log: Callable[[str], None]) -> None:
            try:
                self.backend.create(ct, str(v["ostemplate"]), ssh_keys, log)
            except BaseException:
                self.store.forget(vmid)
                raise
            ct.lock = None
            self.store.save(ct)
            if start:
                self._do_start(ct, log)

        return self.task("vzcreate", str(vmid), req.user, work, vmid)

    def _do_start(self, ct: Container, log: Callable[[str], None]) -> None:
        if self._running(ct):
            raise BackendError(f"CT {ct.vmid} already running")
        self.backend.start(ct, log)
        ct.status, ct.started_at = "running", time.time()
        self.store.save(ct)

    def _power(self, action: str) -> Callable[[Request], Any]:
        def handler(req: Request) -> Any:
            ct = self._ct(req)
            self._not_locked(ct)
            running = self._running(ct)
            if action == "start":
                if running:
                    raise ApiError(500, f"CT {ct.vmid} already running")
            elif not running:
                raise ApiError(500, f"CT {ct.vmid} not running")
            timeout = int(req.params.get("timeout", "60"))
            force_stop = parse_bool(req.params.get("forceStop", "0"))

            def work(log: Callable[[str], None]) -> None:
                if action == "start":
                    self._do_start(ct, log)
                    return
                if action == "stop":
                    self.backend.stop(ct, log)
                else:
                    try:
                        self.backend.shutdown(ct, timeout, log)
                    except BackendError:
                        if not force_stop:
                            raise
                        log("shutdown timed out: stopping (forceStop)")
                        self.backend.stop(ct, log)
                ct.status, ct.started_at = "stopped", None
                self.store.save(ct)
                if action == "reboot":
                    self._do_start(ct, log)

            kind = {"start": "vzstart", "stop": "vzstop", "shutdown": "vzshutdown", "reboot": "vzreboot"}[action]
            return self.task(kind, str(ct.vmid), req.user, work, ct.vmid)

        return handler

    def _destroy(self, req: Request) -> str:
        ct = self._ct(req)
        checked = check(req.params, {"purge": parse_bool, "force": parse_bool, "destroy-unreferenced-disks": parse_bool})
        checked.raise_if_errors()
        force = bool(checked.values.get("force"))
        self._not_locked(ct)
        if ct.config.get("protection"):
            raise ApiError(500, f"can't remove CT {ct.vmid} - protection mode enabled")
        if self._running(ct) and not force:
            raise ApiError(500, f"CT {ct.vmid} is running - destroy failed")

        def work(log: Callable[[str], None]) -> None:
            ct.lock = "destroyed"
            self.store.save(ct)
            if self._running(ct):
                log(f"stopping CT {ct.vmid} (force)")
                self.backend.stop(ct, log)
            self.backend.destroy(ct, log)
            self.store.forget(ct.vmid)
            log(f"purging CT {ct.vmid} from related configurations..")

        return self.task("vzdestroy", str(ct.vmid), req.user, work, ct.vmid)

    def _update_config(self, req: Request) -> None:
        ct = self._ct(req)
        params = dict(req.params)
        digest = params.pop("digest", None)
        deletes = [d for d in (x.strip() for x in params.pop("delete", "").replace(";", ",").split(",")) if d]
        params.pop("revert", None)
        schema = {k: p for k, p in CONTAINER_PARAMS.items() if p.stored}
        checked = check(params, schema)
        for key, param in CONTAINER_PARAMS.items():
            if key in params and (param.create_only or not param.stored):
                checked.errors[key] = (
                    f"unable to modify read-only option: '{key}'"
                    if param.stored
                    else "property is not defined in schema and the schema does not allow additional properties"
                )
        for key in deletes:
            if key not in schema or CONTAINER_PARAMS[key].create_only or key == "rootfs":
                checked.errors["delete"] = (
                    f"unable to delete read-only option: '{key}'" if key in schema else f"invalid configuration key '{key}'"
                )
            if key in params:
                checked.errors[key] = "conflicts with delete"
        self._check_net(checked.values, checked.errors)
        checked.raise_if_errors()
        if "rootfs" in checked.values:
            old = ROOTFS.parse(str(ct.config["rootfs"]))
            new = ROOTFS.parse(str(checked.values["rootfs"]))
            if new["volume"] != old["volume"] or new.get("size", old.get("size")) != old.get("size"):
                raise ApiError(
                    400,
                    "Parameter verification failed.",
                    {"rootfs": "changing the root volume or its size needs the resize API (PUT .../resize)"},
                )
            checked.values["rootfs"] = ROOTFS.format(old | new, first="volume")
        with self.store.lock:
            self._not_locked(ct)
            if digest is not None and digest != ct.digest():
                raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
            for key in deletes:
                ct.config.pop(key, None)
            ct.config.update(checked.values)
            self.store.save(ct)
        if self._running(ct):
            self.backend.reconfigure(ct)

    def _resize(self, req: Request) -> str:
        ct = self._ct(req)
        checked = check(req.params, {"disk": lambda s: s, "size": lambda s: s, "digest": lambda s: s}, required=("disk", "size"))
        checked.raise_if_errors()
        disk, size = str(checked.values["disk"]), str(checked.values["size"])
        if disk != "rootfs":
            raise ApiError(400, "Parameter verification failed.", {"disk": f"no such disk '{disk}'"})
        old_parts = ROOTFS.parse(str(ct.config["rootfs"]))
        old = parse_size(str(old_parts.get("size", "0")), "B")
        try:
            new = old + parse_size(size[1:]) if size.startswith("+") else parse_size(size)
        except ValueError:
            raise ApiError(400, "Parameter verification failed.", {"size": f"invalid size '{size}'"}) from None
        if new < old:
            raise ApiError(500, f"unable to shrink disk size (from {format_size(old)} to {format_size(new)})")
        self._not_locked(ct)

        def work(log: Callable[[str], None]) -> None:
            log(f"resizing rootfs of CT {ct.vmid} to {format_size(new)}")
            old_parts["size"] = format_size(new)
            ct.config["rootfs"] = ROOTFS.format(old_parts, first="volume")
            self.store.save(ct)

        return self.task("resize", str(ct.vmid), req.user, work, ct.vmid)

    # --- snapshots --------------------------------------------------------------------------------
    def _snap(self, req: Request) -> tuple[Container, Snapshot]:
        ct = self._ct(req)
        snap = ct.snapshots.get(req.vars["snapname"])
        if snap is None:
            raise ApiError(500, f"snapshot '{req.vars['snapname']}' does not exist")
        return ct, snap

    def _snapshot(self, req: Request) -> str:
        ct = self._ct(req)
        checked = check(req.params, {"snapname": lambda s: s, "description": lambda s: s}, required=("snapname",))
        name = req.params.get("snapname", "")
        if name and (not re.match(_SNAPNAME, name) or name == "current"):
            checked.errors["snapname"] = (
                "invalid format - snapshot names start with a letter, then letters, digits, _ or - (2-40 characters)"
            )
        checked.raise_if_errors()
        with self.store.lock:
            self._not_locked(ct)
            if name in ct.snapshots:
                raise ApiError(500, f"snapshot name '{name}' already used")
            ct.lock = "snapshot"
            self.store.save(ct)
        snap = Snapshot(
            name=name,
            description=req.params.get("description", ""),
            snaptime=int(time.time()),
            parent=ct.parent,
            config=dict(ct.config),
            running=int(self._running(ct)),
        )

        def work(log: Callable[[str], None]) -> None:
            try:
                self.backend.snapshot(ct, name, log)
                ct.snapshots[name] = snap
                ct.parent = name
            finally:
                ct.lock = None
                self.store.save(ct)

        return self.task("vzsnapshot", str(ct.vmid), req.user, work, ct.vmid)

    def _rollback(self, req: Request) -> str:
        ct, snap = self._snap(req)
        start = parse_bool(req.params.get("start", "0"))
        self._not_locked(ct)

        def work(log: Callable[[str], None]) -> None:
            ct.lock = "rollback"
            self.store.save(ct)
            try:
                if self._running(ct):
                    log(f"stopping CT {ct.vmid} for the rollback")
                    self.backend.stop(ct, log)
                    ct.status, ct.started_at = "stopped", None
                self.backend.rollback(ct, snap.name, log)
                ct.config = dict(snap.config)
                ct.parent = snap.name
            finally:
                ct.lock = None
                self.store.save(ct)
            if start:
                self._do_start(ct, log)

        return self.task("vzrollback", str(ct.vmid), req.user, work, ct.vmid)

    def _delete_snapshot(self, req: Request) -> str:
        ct, snap = self._snap(req)
        self._not_locked(ct)

        def work(log: Callable[[str], None]) -> None:
            self.backend.delete_snapshot(ct, snap.name, log)
            with self.store.lock:
                for other in ct.snapshots.values():
                    if other.parent == snap.name:
                        other.parent = snap.parent
                if ct.parent == snap.name:
                    ct.parent = snap.parent
                del ct.snapshots[snap.name]
                self.store.save(ct)

        return self.task("vzdelsnapshot", str(ct.vmid), req.user, work, ct.vmid)
