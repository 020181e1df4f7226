"""The container spec: YAML in, checked dataclasses out, with every problem reported at its line."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quantshift_bot.errors import UserError

MANAGED_TAG = "managed-by-quantshift"
ROLES = ("primary", "standby", "paper")
MIN_VMID, MAX_VMID = 100, 999_999_999
_DNS = re.compile(r"^(?=.{1,63}$)[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$")
_TAG = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$")
_VOLID = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_.]*:vztmpl/\S+$")
_ROOTFS = re.compile(r"^(?P<storage>[a-zA-Z][a-zA-Z0-9\-_.]*):(?P<size>\d+)$")
FEATURES = ("nesting", "keyctl", "fuse", "mknod", "force_rw_sys")


class SpecError(UserError, ValueError):
    """The spec has problems; the message lists every one with its place in the file."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s) in the container spec:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    node: str
    ca_cert: Path
    credentials_file: Path | None
    timeout: int
    task_timeout: int

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/api2/json"


@dataclass(frozen=True)
class ContainerSpec:
    vmid: int
    hostname: str
    role: str
    template: str
    ip: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address | None
    bridge: str
    cores: int
    memory: int
    swap: int
    rootfs_storage: str
    rootfs_gib: int
    unprivileged: bool
    features: tuple[tuple[str, int], ...]
    onboot: bool
    start: bool
    ssh_public_keys: tuple[str, ...]
    tags: tuple[str, ...]
    description: str

    @property
    def all_tags(self) -> list[str]:
        """The tags Proxmox will hold: ours (ownership, role) and the spec's, sorted and unique."""
        return sorted({MANAGED_TAG, f"qs-role-{self.role}", *self.tags})

    @property
    def net0(self) -> str:
        gw = f",gw={self.gateway}" if self.gateway else ""
        return f"name=eth0,bridge={self.bridge},ip={self.ip}{gw}"


@dataclass(frozen=True)
class Spec:
    path: Path
    endpoint: Endpoint
    containers: tuple[ContainerSpec, ...]

    def by_vmid(self) -> dict[int, ContainerSpec]:
        return {c.vmid: c for c in self.containers}


# --- YAML with line numbers ------------------------------------------------------------------------
Where = dict[tuple[Any, ...], tuple[int, int]]


def _to_python(node: yaml.Node, path: tuple[Any, ...], where: Where) -> Any:
    where[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if key in out:
                where[(*path, key, "#dup")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _to_python(value_node, (*path, key), where)
            # Point problems with a mapping entry at its key, where a reader looks first.
            where[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), where) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


@dataclass
class _Checker:
    path: Path
    where: Where
    problems: list[str] = field(default_factory=list)

    def add(self, at: tuple[Any, ...], message: str) -> None:
        probe = at
        while probe not in self.where and probe:
            probe = probe[:-1]
        line, col = self.where.get(probe, (1, 1))
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".") or "(top)"
        self.problems.append(f"{self.path}:{line}:{col}: {dotted}: {message}")

    def mapping(self, value: Any, at: tuple[Any, ...], allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.add(at, f"must be a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.add((*at, key), f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
        for *_prefix, key, marker in [k for k in self.where if k and k[-1] == "#dup" and tuple(k[:-2]) == at]:
            self.add((*at, key, marker), f"key '{key}' appears twice")
        return value


def _typed(chk: _Checker, value: Any, at: tuple[Any, ...], kind: type | tuple[type, ...], what: str) -> bool:
    # bool is an int in Python; a spec that says `cores: true` is wrong, not 1.
    if isinstance(value, bool) and kind is not bool:
        chk.add(at, f"must be {what}, got a boolean")
        return False
    if not isinstance(value, kind):
        chk.add(at, f"must be {what}, got {type(value).__name__} {value!r}")
        return False
    return True


CONTAINER_KEYS = {
    "vmid",
    "hostname",
    "role",
    "template",
    "ip",
    "gateway",
    "bridge",
    "cores",
    "memory",
    "swap",
    "rootfs",
    "unprivileged",
    "features",
    "onboot",
    "start",
    "ssh_public_keys",
    "ssh_public_key_files",
    "tags",
    "description",
}
PER_CONTAINER_ONLY = {"vmid", "hostname", "ip", "role"}
ENDPOINT_KEYS = {"host", "port", "node", "ca_cert", "credentials_file", "timeout", "task_timeout"}
DEFAULTS: dict[str, Any] = {
    "cores": 1,
    "memory": 512,
    "swap": 512,
    "rootfs": "local:8",
    "unprivileged": True,
    "features": {"nesting": 1},
    "onboot": True,
    "start": True,
    "ssh_public_keys": [],
    "ssh_public_key_files": [],
    "tags": [],
    "description": "",
    "gateway": None,
}


def load(path: Path, environ: dict[str, str] | None = None) -> Spec:
    """Read and check a spec file; raise SpecError listing every problem before anything is sent."""
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(path, [f"{path}: cannot read: {err.strerror}"]) from None
    where: Where = {}
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SpecError(path, [f"{loc}: not valid YAML: {getattr(err, 'problem', err)}"]) from None
    doc = _to_python(node, (), where) if node is not None else None
    chk = _Checker(path, where)
    top = chk.mapping(doc, (), {"endpoint", "defaults", "containers"})
    for key in ("endpoint", "containers"):
        if top and key not in top:
            chk.add((), f"'{key}' is required")
    endpoint = _endpoint(chk, top.get("endpoint", {}), path)
    defaults = chk.mapping(top.get("defaults", {}), ("defaults",), CONTAINER_KEYS - PER_CONTAINER_ONLY)
    raw_containers = top.get("containers", [])
    containers: list[tuple[int, ContainerSpec]] = []
    if not isinstance(raw_containers, list) or not raw_containers:
        chk.add(("containers",), "must be a non-empty list of containers")
        raw_containers = []
    for i, raw in enumerate(raw_containers):
        at = ("containers", i)
        item = chk.mapping(raw, at, CONTAINER_KEYS)
        if not item:
            continue
        merged = DEFAULTS | defaults | item
        origin = {k: (at if k in item else ("defaults",) if k in defaults else at) for k in merged}
        ct = _container(chk, merged, origin, path.parent)
        if ct is not None:
            containers.append((i, ct))
    _cross_checks(chk, containers)
    if chk.problems or endpoint is None:
        raise SpecError(path, chk.problems or ["endpoint is missing"])
    return Spec(path=path, endpoint=endpoint, containers=tuple(ct for _, ct in containers))


def _endpoint(chk: _Checker, raw: Any, spec_path: Path) -> Endpoint | None:
    at = ("endpoint",)
    ep = chk.mapping(raw, at, ENDPOINT_KEYS)
    ok = True
    for key in ("host", "node", "ca_cert"):
        if key not in ep:
            chk.add(
                at,
                f"'{key}' is required"
                + (" (TLS is always verified: give the CA that signed the API's certificate)" if key == "ca_cert" else ""),
            )
            ok = False
        elif not _typed(chk, ep[key], (*at, key), str, "a string"):
            ok = False
    for key, default in (("port", 8006), ("timeout", 30), ("task_timeout", 300)):
        value = ep.get(key, default)
        if not _typed(chk, value, (*at, key), int, "an integer") or not 0 < value < 65536:
            if isinstance(value, int) and not isinstance(value, bool):
                chk.add((*at, key), f"must be between 1 and 65535, got {value}")
            ok = False
    creds = ep.get("credentials_file")
    if creds is not None and not _typed(chk, creds, (*at, "credentials_file"), str, "a path"):
        ok = False
    if not ok:
        return None

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else spec_path.parent / q

    return Endpoint(
        host=ep["host"],
        port=ep.get("port", 8006),
        node=ep["node"],
        ca_cert=resolve(ep["ca_cert"]),
        credentials_file=resolve(creds) if creds else None,
        timeout=ep.get("timeout", 30),
        task_timeout=ep.get("task_timeout", 300),
    )


def _container(chk: _Checker, m: dict[str, Any], origin: dict[str, tuple[Any, ...]], base: Path) -> ContainerSpec | None:
    n_before = len(chk.problems)

    def g(key: str) -> Any:  # the merged values are untyped YAML until checked below
        return m.get(key)

    def at(key: str) -> tuple[Any, ...]:
        return (*origin.get(key, ()), key)

    for key in ("vmid", "hostname", "role", "ip", "template", "bridge"):
        if g(key) is None:
            chk.add(
                origin.get("vmid", ("containers",)),
                f"'{key}' is required (per container, or in defaults)" if key not in PER_CONTAINER_ONLY else f"'{key}' is required",
            )
    vmid = g("vmid")
    if vmid is not None and _typed(chk, vmid, at("vmid"), int, "an integer") and not MIN_VMID <= vmid <= MAX_VMID:
        chk.add(at("vmid"), f"vmid {vmid} is out of range ({MIN_VMID}..{MAX_VMID})")
    hostname = g("hostname")
    if hostname is not None and _typed(chk, hostname, at("hostname"), str, "a string") and not _DNS.match(hostname):
        chk.add(at("hostname"), f"'{hostname}' is not a valid host name (letters, digits, '-'; at most 63)")
    role = g("role")
    if role is not None and role not in ROLES:
        chk.add(at("role"), f"role must be one of {', '.join(ROLES)}, got {role!r}")
    template = g("template")
    if template is not None and _typed(chk, template, at("template"), str, "a string") and not _VOLID.match(template):
        chk.add(at("template"), f"'{template}' is not a template volume id (storage:vztmpl/NAME)")
    ip: ipaddress.IPv4Interface | None = None
    raw_ip = g("ip")
    if raw_ip is not None and _typed(chk, raw_ip, at("ip"), str, "an address with its prefix, e.g. 10.0.0.5/24"):
        try:
            if "/" not in raw_ip:
                raise ValueError("the prefix length is missing")
            ip = ipaddress.IPv4Interface(raw_ip)
            if ip.ip in (ip.network.network_address, ip.network.broadcast_address) and ip.network.prefixlen < 31:
                chk.add(at("ip"), f"{raw_ip} is the network or broadcast address of {ip.network}")
        except ValueError as err:
            chk.add(at("ip"), f"{raw_ip!r} is not an IPv4 address with prefix ({err})")
    gateway: ipaddress.IPv4Address | None = None
    raw_gw = g("gateway")
    if raw_gw is not None and _typed(chk, raw_gw, at("gateway"), str, "an IPv4 address"):
        try:
            gateway = ipaddress.IPv4Address(raw_gw)
        except ValueError:
            chk.add(at("gateway"), f"{raw_gw!r} is not an IPv4 address")
    if ip is not None and gateway is not None:
        if gateway not in ip.network:
            chk.add(at("gateway"), f"gateway {gateway} is outside {ip.ip}'s subnet {ip.network}")
        elif gateway == ip.ip:
            chk.add(at("ip"), f"{ip.ip} is the gateway's own address")
    bridge = g("bridge")
    if bridge is not None and _typed(chk, bridge, at("bridge"), str, "a string") and not re.match(r"^[a-zA-Z0-9_.-]{1,15}$", bridge):
        chk.add(at("bridge"), f"'{bridge}' is not a bridge name")
    for key, low, high in (("cores", 1, 512), ("memory", 16, 4_194_304), ("swap", 0, 4_194_304)):
        value = g(key)
        if _typed(chk, value, at(key), int, "an integer") and not low <= value <= high:
            chk.add(at(key), f"{key} must be between {low} and {high}, got {value}")
    rootfs = g("rootfs")
    match = _ROOTFS.match(rootfs) if isinstance(rootfs, str) else None
    if not match:
        chk.add(at("rootfs"), f"rootfs must be STORAGE:SIZE_IN_GIB (e.g. local:8), got {rootfs!r}")
    elif int(match["size"]) < 1:
        chk.add(at("rootfs"), "rootfs size must be at least 1 GiB")
    for key in ("unprivileged", "onboot", "start"):
        _typed(chk, g(key), at(key), bool, "true or false")
    features: list[tuple[str, int]] = []
    raw_features = g("features")
    if isinstance(raw_features, dict):
        for name, value in raw_features.items():
            if name not in FEATURES:
                chk.add((*at("features"), name), f"unknown feature '{name}' (known: {', '.join(FEATURES)})")
            elif value not in (0, 1, True, False):
                chk.add((*at("features"), name), f"must be 0/1 or true/false, got {value!r}")
            else:
                features.append((name, int(value)))
    else:
        chk.add(at("features"), "must be a mapping such as {nesting: 1}")
    keys = _ssh_keys(chk, m, at, base)
    tags = g("tags")
    if _typed(chk, tags, at("tags"), list, "a list of tags"):
        for j, tag in enumerate(tags):
            if not isinstance(tag, str) or not _TAG.match(tag):
                chk.add((*at("tags"), j), f"tag {tag!r} must match {_TAG.pattern}")
    description = g("description")
    _typed(chk, description, at("description"), str, "a string")
    if len(chk.problems) > n_before or ip is None or not match:
        return None
    return ContainerSpec(
        vmid=vmid,
        hostname=hostname,
        role=role,
        template=template,
        ip=ip,
        gateway=gateway,
        bridge=bridge,
        cores=m["cores"],
        memory=m["memory"],
        swap=m["swap"],
        rootfs_storage=match["storage"],
        rootfs_gib=int(match["size"]),
        unprivileged=m["unprivileged"],
        features=tuple(sorted(features)),
        onboot=m["onboot"],
        start=m["start"],
        ssh_public_keys=tuple(keys),
        tags=tuple(tags),
        description=description.strip(),
    )


def _ssh_keys(chk: _Checker, m: dict[str, Any], at: Any, base: Path) -> list[str]:
    keys: list[str] = []
    raw: Any = m.get("ssh_public_keys")
    if _typed(chk, raw, at("ssh_public_keys"), list, "a list of public keys"):
        for j, key in enumerate(raw):
            if not isinstance(key, str) or not re.match(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+", key):
                chk.add((*at("ssh_public_keys"), j), "not an SSH public key (ssh-ed25519 AAAA..., ssh-rsa AAAA...)")
            else:
                keys.append(key.strip())
    files: Any = m.get("ssh_public_key_files")
    if _typed(chk, files, at("ssh_public_key_files"), list, "a list of paths"):
        for j, name in enumerate(files):
            p = Path(str(name)).expanduser()
            p = p if p.is_absolute() else base / p
            try:
                keys += [line.strip() for line in p.read_text().splitlines() if line.strip()]
            except OSError as err:
                chk.add((*at("ssh_public_key_files"), j), f"cannot read {p}: {err.strerror}")
    return keys


def _cross_checks(chk: _Checker, containers: list[tuple[int, ContainerSpec]]) -> None:
    seen: dict[str, dict[Any, int]] = {"vmid": {}, "hostname": {}, "ip": {}}
    for i, ct in containers:
        for key, value in (("vmid", ct.vmid), ("hostname", ct.hostname.lower()), ("ip", ct.ip.ip)):
            first = seen[key].get(value)
            if first is None:
                seen[key][value] = i
                continue
            line = chk.where.get(("containers", first, key), (0, 0))[0]
            chk.add(("containers", i, key), f"duplicate {key} {value} (first used by containers[{first}] at line {line})")
