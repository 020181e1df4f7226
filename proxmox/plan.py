"""What `apply` would change: the spec against what the node holds, readable like a terraform plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxmoxer.core import ResourceException

from proxmox.client import call
from proxmox.spec import MANAGED_TAG, ContainerSpec, Spec

MARKER = "managed-by: quantshift"
# Keys Proxmox changes in place (PUT /config); anything else differing needs a new container.
IN_PLACE = ("hostname", "cores", "memory", "swap", "net0", "onboot", "features", "tags", "description")


def description(ct: ContainerSpec) -> str:
    """The description we set: the spec's text, then our marker and the template the rootfs came from."""
    head = f"{ct.description}\n\n" if ct.description else ""
    return f"{head}{MARKER}\ntemplate: {ct.template}\nrole: {ct.role}\n"


def template_of(desc: str) -> str | None:
    for line in desc.splitlines():
        if line.startswith("template: "):
            return line.split(": ", 1)[1].strip()
    return None


def desired(ct: ContainerSpec) -> dict[str, Any]:
    return {
        "hostname": ct.hostname,
        "cores": ct.cores,
        "memory": ct.memory,
        "swap": ct.swap,
        "net0": ct.net0,
        "onboot": int(ct.onboot),
        "features": ",".join(f"{k}={v}" for k, v in ct.features),
        "tags": ";".join(ct.all_tags),
        "description": description(ct),
    }


def create_params(ct: ContainerSpec) -> dict[str, Any]:
    params = desired(ct) | {
        "vmid": ct.vmid,
        "ostemplate": ct.template,
        "rootfs": f"{ct.rootfs_storage}:{ct.rootfs_gib}",
        "unprivileged": int(ct.unprivileged),
    }
    if not params["features"]:
        del params["features"]
    if ct.ssh_public_keys:
        params["ssh-public-keys"] = "\n".join(ct.ssh_public_keys) + "\n"
    return params


def _props(value: str) -> dict[str, str]:
    out = {}
    for part in filter(None, value.split(",")):
        k, _, v = part.partition("=")
        out[k] = v
    return out


def _same(key: str, want: Any, have: Any) -> bool:
    if have is None:
        return want in ("", None)
    if key == "tags":
        return set(str(want).split(";")) == set(str(have).replace(",", ";").split(";"))
    if key in ("net0", "features"):
        mine = _props(str(want))
        # Proxmox adds keys of its own (hwaddr, type, firewall): compare only what we set.
        return all(_props(str(have)).get(k) == v for k, v in mine.items()) and (key == "net0" or set(_props(str(have))) <= set(mine))
    if key == "description":
        return str(want).strip() == str(have).strip()
    return str(want) == str(have)


def _size_gib(rootfs: str) -> float:
    size = _props(rootfs.split(",", 1)[1] if "," in rootfs else "").get("size", "0")
    unit = size[-1:].upper()
    factor = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
    return float(size[:-1]) * factor[unit] if unit in factor else float(size or 0) / 1024**3


@dataclass
class Change:
    key: str
    old: Any
    new: Any


@dataclass
class ContainerPlan:
    spec: ContainerSpec
    action: str  # create | update | recreate | start | noop | refuse
    changes: list[Change] = field(default_factory=list)
    resize_to: int | None = None
    start: bool = False
    reasons: list[str] = field(default_factory=list)
    digest: str | None = None
    running: bool = False

    @property
    def pending(self) -> bool:
        return self.action != "noop"


@dataclass
class Plan:
    spec: Spec
    items: list[ContainerPlan]
    problems: list[str]

    def count(self, action: str) -> int:
        return sum(1 for i in self.items if i.action == action or (action == "start" and i.start and i.action != "create"))

    @property
    def pending(self) -> bool:
        return any(i.pending for i in self.items)


def make(api: Any, spec: Spec) -> Plan:
    """Read the node once and compare it with the spec. Never changes anything."""
    ep = spec.endpoint
    node = api.nodes(ep.node)
    existing = {int(c["vmid"]): c for c in call(lambda: node.lxc.get(), ep, "listing containers")}
    problems: list[str] = []
    templates = _templates(api, spec)
    bridges = {
        n["iface"] for n in call(lambda: node.network.get(), ep, "listing the node's network") if n.get("type") in ("bridge", "OVSBridge")
    }
    items: list[ContainerPlan] = []
    for ct in spec.containers:
        if ct.bridge not in bridges:
            problems.append(
                f"{ct.vmid} {ct.hostname}: bridge '{ct.bridge}' does not exist on node {ep.node} (it has: {', '.join(sorted(bridges)) or 'none'})"
            )
        have = existing.get(ct.vmid)
        if have is None:
            if ct.template not in templates:
                problems.append(
                    f"{ct.vmid} {ct.hostname}: template {ct.template} is not on storage {ct.template.split(':')[0]} of node {ep.node}"
                )
            items.append(ContainerPlan(ct, "create", start=ct.start))
            continue
        config = call(lambda v=ct.vmid: node.lxc(v).config.get(), ep, f"reading CT {ct.vmid}")
        running = have.get("status") == "running"
        tags = set(str(config.get("tags", "")).replace(",", ";").split(";"))
        if MANAGED_TAG not in tags:
            items.append(
                ContainerPlan(
                    ct, "refuse", reasons=[f"vmid {ct.vmid} exists and is not managed by QuantShift: refusing to touch it"], running=running
                )
            )
            continue
        plan = ContainerPlan(ct, "noop", digest=config.get("digest"), running=running)
        for key, want in desired(ct).items():
            if not _same(key, want, config.get(key)):
                plan.changes.append(Change(key, config.get(key), want))
        if bool(config.get("unprivileged", 0)) != ct.unprivileged:
            plan.reasons.append(f"unprivileged {int(bool(config.get('unprivileged', 0)))} -> {int(ct.unprivileged)}")
        was = template_of(str(config.get("description", "")))
        if was is not None and was != ct.template:
            plan.reasons.append(f"template {was} -> {ct.template}")
        rootfs = str(config.get("rootfs", ""))
        storage = rootfs.split(":", 1)[0]
        if storage != ct.rootfs_storage:
            plan.reasons.append(f"rootfs storage {storage} -> {ct.rootfs_storage}")
        size = _size_gib(rootfs)
        if ct.rootfs_gib < size:
            plan.reasons.append(f"rootfs shrink {size:g}G -> {ct.rootfs_gib}G (Proxmox cannot shrink a disk)")
        elif ct.rootfs_gib > size:
            plan.resize_to = ct.rootfs_gib
        if plan.reasons:
            if ct.template not in templates:
                problems.append(
                    f"{ct.vmid} {ct.hostname}: template {ct.template} is not on storage {ct.template.split(':')[0]} of node {ep.node}"
                )
            plan.action = "recreate"
        elif plan.changes or plan.resize_to:
            plan.action = "update"
        plan.start = ct.start and not running and plan.action != "recreate"
        if plan.action == "noop" and plan.start:
            plan.action = "start"
        items.append(plan)
    return Plan(spec, items, problems)


def _templates(api: Any, spec: Spec) -> set[str]:
    ep = spec.endpoint
    storages = {ct.template.split(":", 1)[0] for ct in spec.containers}
    found: set[str] = set()
    for storage in sorted(storages):
        try:
            found |= {
                c["volid"]
                for c in call(
                    lambda s=storage: api.nodes(ep.node).storage(s).content.get(content="vztmpl"), ep, f"listing templates on {storage}"
                )
            }
        except ResourceException:  # an unknown storage shows up as a missing template, not a crash
            continue
    return found


SYMBOL = {"create": "+", "update": "~", "recreate": "-/+", "start": ">", "noop": "=", "refuse": "!"}


def render(plan: Plan, recreate: bool = False) -> str:
    ep = plan.spec.endpoint
    lines = [f"Plan for {plan.spec.path} on {ep.url} (node {ep.node}):", ""]
    for item in plan.items:
        ct = item.spec
        head = f"  {SYMBOL[item.action]:>3} {ct.vmid} {ct.hostname:<22}"
        if item.action == "create":
            lines.append(
                f"{head} create ({ct.cores} cores, {ct.memory} MiB, {ct.rootfs_storage}:{ct.rootfs_gib}G, {ct.ip}, {ct.role})"
                + (" and start" if item.start else "")
            )
        elif item.action == "refuse":
            lines.append(f"{head} REFUSED: {item.reasons[0]}")
        elif item.action == "recreate":
            verdict = "will be destroyed and created again (snapshot first)" if recreate else "needs recreation: refused without --recreate"
            lines.append(f"{head} {verdict}")
            lines += [f"          {r}" for r in item.reasons]
        elif item.action == "noop":
            lines.append(f"{head} up to date")
        else:
            lines.append(f"{head} " + ("update in place" if item.action == "update" else "start"))
        for change in item.changes if item.action != "create" else []:
            old, new = _short(change.old), _short(change.new)
            lines.append(f"          {change.key}: {old} -> {new}")
        if item.resize_to:
            lines.append(f"          rootfs: grow to {item.resize_to}G")
        if item.start and item.action == "update":
            lines.append("          then start")
    for problem in plan.problems:
        lines.append(f"  problem: {problem}")
    lines += [
        "",
        f"Plan: {plan.count('create')} to create, {plan.count('update')} to update in place, {plan.count('recreate')} to recreate, "
        f"{plan.count('start')} to start, {plan.count('noop')} unchanged, {plan.count('refuse')} refused.",
    ]
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    text = text.replace("\\n", "⏎")
    return text if len(text) <= 70 else text[:67] + "..."
