"""An Ansible inventory from the cluster: the spec's managed containers, grouped by role, with ansible_host."""

from __future__ import annotations

from typing import Any

from proxmox.client import call
from proxmox.spec import MANAGED_TAG, ROLES, Spec


def build(api: Any, spec: Spec) -> dict[str, Any]:
    """Ansible's script-inventory shape: groups with hosts and children, plus _meta.hostvars."""
    ep = spec.endpoint
    node = api.nodes(ep.node)
    existing = {int(c["vmid"]): c for c in call(lambda: node.lxc.get(), ep, "listing containers")}
    groups: dict[str, dict[str, Any]] = {role: {"hosts": []} for role in ROLES}
    hostvars: dict[str, dict[str, Any]] = {}
    for ct in spec.containers:
        summary = existing.get(ct.vmid)
        if summary is None:
            continue
        tags = set(str(summary.get("tags", "")).replace(",", ";").split(";"))
        if MANAGED_TAG not in tags:
            continue
        config = call(lambda v=ct.vmid: node.lxc(v).config.get(), ep, f"reading CT {ct.vmid}")
        net0 = dict(p.split("=", 1) for p in str(config.get("net0", "")).split(",") if "=" in p)
        ip = net0.get("ip", "").split("/")[0]
        role = next((t.removeprefix("qs-role-") for t in tags if t.startswith("qs-role-")), ct.role)
        name = str(config.get("hostname", ct.hostname))
        groups.setdefault(role, {"hosts": []})["hosts"].append(name)
        hostvars[name] = {
            "ansible_host": ip,
            "quantshift_vmid": ct.vmid,
            "quantshift_role": role,
            "quantshift_status": summary.get("status"),
        }
    return {
        "all": {"children": ["bots", "ungrouped"]},
        "bots": {"children": list(groups)},
        **groups,
        "_meta": {"hostvars": hostvars},
    }


def as_yaml_inventory(script: dict[str, Any]) -> dict[str, Any]:
    """The same inventory in Ansible's YAML inventory format."""
    hostvars = script["_meta"]["hostvars"]
    children = {group: {"hosts": {h: hostvars[h] for h in script[group]["hosts"]}} for group in script["bots"]["children"]}
    return {"all": {"children": {"bots": {"children": children}}}}
