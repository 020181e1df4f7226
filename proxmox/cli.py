"""`quantshift provision ...`: plan, apply, destroy, snapshot, rollback and inventory for a container spec."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from quantshift_bot.errors import EXIT_ERROR, EXIT_NO, EXIT_OK, InputError, existing_file, int_from

EXIT_PENDING = EXIT_NO  # `plan`: is the node as the spec says? No: changes are pending (playbooks/provision.yml relies on 3)
SNAPSHOT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,39}$")  # as Proxmox VE checks it; "current" is taken


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from proxmox import client, spec

    try:
        loaded = spec.load(args.spec)
    except spec.SpecError as err:  # the spec is what the operator gave: a usage error, one line for one problem
        raise InputError(err.problems[0] if len(err.problems) == 1 else str(err)) from None
    unknown = sorted(set(getattr(args, "vmid", None) or ()) - {ct.vmid for ct in loaded.containers})
    if unknown:
        known = ", ".join(str(ct.vmid) for ct in loaded.containers)
        raise InputError(f"--vmid {', '.join(map(str, unknown))}: not in the spec {args.spec} (its containers: {known})")
    api = client.connect(loaded.endpoint, client.credentials(loaded.endpoint))
    return loaded, api


def _snapshot_name(raw: str) -> str:
    """argparse type: a snapshot name Proxmox VE accepts."""
    if not SNAPSHOT_NAME.match(raw) or raw == "current":
        raise argparse.ArgumentTypeError(
            f"{raw!r}: a snapshot name is a letter, then letters, digits, _ or - (2-40 characters), not 'current'"
        )
    return raw


def _plan(args: argparse.Namespace) -> int:
    from proxmox import apply, plan

    loaded, api = _load(args)
    result = plan.make(api, loaded)
    if args.json:
        print(
            json.dumps(
                {
                    "pending": result.pending,
                    "containers": [
                        {
                            "vmid": i.spec.vmid,
                            "hostname": i.spec.hostname,
                            "action": i.action,
                            "start": i.start,
                            "resize_to": i.resize_to,
                            "changes": [{"key": c.key, "old": c.old, "new": c.new} for c in i.changes],
                            "reasons": i.reasons,
                        }
                        for i in result.items
                    ],
                    "problems": apply.blockers(result, args.recreate),
                },
                indent=2,
            )
        )
    else:
        print(plan.render(result, recreate=args.recreate))
    if result.problems:
        return EXIT_ERROR
    return EXIT_PENDING if result.pending else EXIT_OK


def _apply(args: argparse.Namespace) -> int:
    from proxmox import apply, plan

    loaded, api = _load(args)
    if not args.json:
        print(plan.render(plan.make(api, loaded), recreate=args.recreate), flush=True)
        print()
    outcome = apply.apply(api, loaded, recreate=args.recreate, report=apply.Reporter(sys.stderr))
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2))
    elif outcome.errors:
        print(f"\nApply failed for {len(outcome.errors)} container(s):", file=sys.stderr)
        for vmid, err in outcome.errors.items():
            print(f"  {vmid}: {err}", file=sys.stderr)
    else:
        print(f"Apply complete in {outcome.seconds:.1f}s" + ("" if outcome.changed else ": nothing to change."))
    return EXIT_ERROR if outcome.errors else EXIT_OK


def _vmids(args: argparse.Namespace) -> set[int] | None:
    return set(args.vmid) if getattr(args, "vmid", None) else None


def _destroy(args: argparse.Namespace) -> int:
    from proxmox import apply

    loaded, api = _load(args)
    targets = apply.managed_existing(api, loaded, _vmids(args))
    if not targets:
        print("Nothing to destroy: none of the spec's containers exists.")
        return EXIT_OK
    names = ", ".join(f"{ct.vmid} {ct.hostname}" + (" (running)" if s.get("status") == "running" else "") for ct, s in targets)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"quantshift: refusing to destroy {names} without --yes (no terminal to ask on)", file=sys.stderr)
            return EXIT_ERROR
        answer = input(f"Destroy {names}? This deletes their disks and snapshots. Type 'yes' to go on: ")
        if answer.strip() != "yes":
            print("Nothing destroyed.")
            return EXIT_ERROR
    errors = apply.destroy(api, loaded, targets, apply.Reporter(sys.stderr))
    return EXIT_ERROR if errors else EXIT_OK


def _snapshot(args: argparse.Namespace) -> int:
    from proxmox import apply

    loaded, api = _load(args)
    targets = apply.managed_existing(api, loaded, _vmids(args))
    return EXIT_ERROR if apply.snapshot(api, loaded, targets, args.name, apply.Reporter(sys.stderr)) else EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    from proxmox import apply

    loaded, api = _load(args)
    targets = apply.managed_existing(api, loaded, _vmids(args))
    return EXIT_ERROR if apply.rollback(api, loaded, targets, args.name, apply.Reporter(sys.stderr)) else EXIT_OK


def _inventory(args: argparse.Namespace) -> int:
    import yaml

    from proxmox import inventory

    loaded, api = _load(args)
    script = inventory.build(api, loaded)
    if args.list or args.format == "json":
        print(json.dumps(script, indent=2))
    else:
        print(yaml.safe_dump(inventory.as_yaml_inventory(script), sort_keys=False), end="")
    return EXIT_OK


def register(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    prov = sub.add_parser(
        "provision",
        help="create and manage the Proxmox LXC containers from a spec (plan/apply/destroy...)",
        formatter_class=fmt,
        description="Provision the bot containers (100 primary, 101 standby, 102 paper) from a declarative YAML\n"
        "spec through the Proxmox VE API. The API token comes from QUANTSHIFT_PVE_TOKEN_ID and\n"
        "QUANTSHIFT_PVE_TOKEN_SECRET, or from the spec's endpoint.credentials_file (plain 0600 or\n"
        "Ansible Vault). TLS is always verified against endpoint.ca_cert.",
    )
    actions = prov.add_subparsers(dest="provision_command", metavar="ACTION", required=True)

    def spec_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--spec", type=existing_file, required=True, metavar="FILE", help="the container spec (e.g. inventory/lab/containers.yml)"
        )

    p = actions.add_parser("plan", help="show what apply would change (exit 0: nothing, 3: changes pending, 1: error)")
    spec_arg(p)
    p.add_argument("--recreate", action="store_true", help="plan recreation where in-place changes are not possible")
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    p.set_defaults(func=_plan)

    p = actions.add_parser("apply", help="make the node match the spec (idempotent; creates run in parallel)")
    spec_arg(p)
    p.add_argument(
        "--recreate",
        action="store_true",
        help="allow destroying and recreating containers whose template, "
        "unprivileged flag or disk shrink cannot change in place (a snapshot is taken first)",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON (progress still goes to stderr)")
    p.set_defaults(func=_apply)

    p = actions.add_parser("destroy", help="stop and delete the spec's containers (asks first unless --yes)")
    spec_arg(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--vmid", type=int_from(100), action="append", help="only this container of the spec (repeatable)")
    p.set_defaults(func=_destroy)

    for name, func, text in (
        ("snapshot", _snapshot, "take snapshot NAME of the spec's containers"),
        ("rollback", _rollback, "roll the spec's containers back to snapshot NAME"),
    ):
        p = actions.add_parser(name, help=text)
        spec_arg(p)
        p.add_argument("name", metavar="NAME", type=_snapshot_name, help="snapshot name (a letter, then letters, digits, _ or -)")
        p.add_argument("--vmid", type=int_from(100), action="append", help="only this container of the spec (repeatable)")
        p.set_defaults(func=func)

    p = actions.add_parser("inventory", help="the Ansible inventory (groups primary, standby, paper, bots) read from the cluster")
    spec_arg(p)
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="YAML inventory or script-inventory JSON")
    p.add_argument("--list", action="store_true", help="Ansible script-inventory mode (JSON)")
    p.set_defaults(func=_inventory)
