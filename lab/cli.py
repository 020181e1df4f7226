"""`quantshift lab up|down|status|env|webhooks|scan-secrets`: the lab's command group (mounted by the
quantshift command; the lab itself imports nothing of the rest: this group takes only the command's exit
codes and error marks from quantshift_bot.errors, as every group does)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from lab.errors import LabError
from quantshift_bot.errors import EXIT_NO, EXIT_OK, InputError


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _lab_settings() -> Any:
    from lab import settings

    try:
        return settings.from_env()
    except ValueError as err:
        raise InputError(f"the lab's settings (QUANTSHIFT_LAB_* variables): {err}") from None


def _lab_up(args: argparse.Namespace) -> int:
    from lab import services

    lab = _lab_settings()
    if args.prices is not None:  # the exchange servers read it (lab/exchanges/server.py)
        os.environ["QUANTSHIFT_LAB_PRICES_CSV"] = str(args.prices.resolve())
    services.up(lab, args.backend)
    return EXIT_OK


def _lab_down(args: argparse.Namespace) -> int:
    from lab import services

    services.down(_lab_settings(), purge=args.purge)
    return EXIT_OK


def _lab_status(args: argparse.Namespace) -> int:
    from lab import services

    st = services.status(_lab_settings())
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        width = max(len(k) for k in st)
        for key, value in st.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK if st["up"] else EXIT_NO


def _lab_scan(args: argparse.Namespace) -> int:
    from lab import secretscan, services

    secrets = secretscan.secrets_of(services.env(_lab_settings()))
    try:
        count, size, found = secretscan.scan(args.paths, secrets)
    except OSError as err:  # a file it cannot read is not a clean file
        raise LabError(f"secret scan: cannot read {err.filename} ({err.strerror}): nothing was judged") from None
    for path, name in found:
        print(f"LEAK: {name} in {path}")
    print(f"secret scan: {len(secrets)} secrets, {count} files, {size / 1e6:.1f} MB: {len(found)} finding(s)")
    return EXIT_NO if found else EXIT_OK


def _lab_env(args: argparse.Namespace) -> int:
    from lab import services

    facts = services.env(_lab_settings())
    if args.json:
        print(json.dumps(facts, indent=2))
        return EXIT_OK
    hidden = {
        "token_secret",
        "readonly_token_secret",
        "password",
        "exchange_admin_token",
        "alpaca",
        "coinbase",
        "redis_url",
        "redis_url_from_containers",
    }
    for key, value in facts.items():
        print(f"{key:<22} {'(hidden: use --json)' if key in hidden else value}")
    return EXIT_OK


def _lab_webhooks(args: argparse.Namespace) -> int:
    from lab import services, webhook_receiver

    got = services.webhooks(_lab_settings(), clear=args.clear)
    if args.json:
        print(json.dumps(got, indent=2))
    else:
        for entry in got:
            when = time.strftime("%H:%M:%S", time.gmtime(entry["at"]))
            print(f"{when} {entry['channel']:<9} {webhook_receiver.describe(entry)}")
    return EXIT_OK


def _existing_path(raw: str) -> Path:
    """argparse type: a file or directory that exists."""
    if not raw.strip() or not Path(raw).exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {raw!r}")
    return Path(raw)


def register(sub: Any) -> None:
    """`quantshift lab ...`: the command group the quantshift command mounts."""
    lab = sub.add_parser(
        "lab",
        help="run the lab: a Proxmox-compatible API (and exchanges) on this machine",
        description="The lab stands in for the outside world on one machine: a Proxmox VE API on\n"
        "https://127.0.0.1:8006 with a lab CA, backed by memory or by real LXC containers\n"
        "on the lab's own bridge. State lives in QUANTSHIFT_LAB_DIR (/var/lib/quantshift-lab).",
        formatter_class=_Formatter,
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    p = lab_sub.add_parser(
        "up",
        help="start the lab in the background (idempotent)",
        description="Start the lab's services in the background. `--backend lxc` needs root and\n"
        "builds the container template once with debootstrap (about a minute).",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--backend",
        choices=("memory", "lxc"),
        default="memory",
        help="memory: fast records for tests and scale; lxc: real containers (default: %(default)s)",
    )
    p.add_argument(
        "--prices",
        type=_existing_path,
        metavar="CSV",
        help="serve this 1-minute history (t,symbol,o,h,l,c,v; e.g. recorded bars or python -m lab.history) instead of the seeded walk",
    )
    p.set_defaults(func=_lab_up)
    p = lab_sub.add_parser("down", help="stop the lab and remove everything it created")
    p.add_argument("--purge", action="store_true", help="also remove the cached container template")
    p.set_defaults(func=_lab_down)
    p = lab_sub.add_parser("status", help="is the lab up, with which backend, how many containers (exit 3 when down)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_lab_status)
    p = lab_sub.add_parser("env", help="print the connection facts a client needs (URL, token, CA, node, template)")
    p.add_argument("--json", action="store_true", help="machine-readable output, including the token secret")
    p.set_defaults(func=_lab_env)

    p = lab_sub.add_parser("webhooks", help="what the lab's webhook receiver got (the notifications), oldest first")
    p.add_argument("--json", action="store_true", help="the whole messages as JSON")
    p.add_argument("--clear", action="store_true", help="then forget them")
    p.set_defaults(func=_lab_webhooks)

    p = lab_sub.add_parser(
        "scan-secrets", help="scan files and directories for any of the lab's secrets (exit 3 naming file and secret, never the value)"
    )
    p.add_argument("paths", nargs="+", type=_existing_path, metavar="PATH")
    p.set_defaults(func=_lab_scan)
