"""`quantshift status` (every bot on every host, at a glance) and `quantshift monitor targets` (Prometheus
file-based service discovery from the inventory). Both read the fleet from an Ansible inventory."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from quantshift_bot.errors import EXIT_ERROR, EXIT_OK, float_in, redis_url, text

_positive = float_in(above=0)


def _status(args: argparse.Namespace) -> int:
    from quantshift import audit, fleet

    hosts = fleet.hosts(args.inventory)
    url = args.redis_url or audit.redis_url()
    while True:
        doc = fleet.status(hosts, url, timeout=args.timeout)
        answered = all(h.get("ok") for h in doc["hosts"].values())
        if args.json:
            print(json.dumps(doc, default=str))
        else:
            if args.watch and sys.stdout.isatty():
                print("\033[H\033[2J", end="")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc["at"]))
            print(f"{stamp}  {len(hosts)} host(s), inventory {args.inventory or fleet.DEFAULT_INVENTORY}")
            print(fleet.render(doc, hosts))
        sys.stdout.flush()
        if not args.watch:
            return EXIT_OK if answered else EXIT_ERROR  # a host that did not answer: its state is unknown
        time.sleep(args.interval)


def _targets(args: argparse.Namespace) -> int:
    from quantshift import fleet

    hosts = fleet.hosts(args.inventory)
    for path in fleet.write_targets(hosts, Path(args.out)):
        print(path)
    print(f"{sum(len(h.bots) for h in hosts)} bot(s) on {len(hosts)} host(s)", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="every bot on every host: slot, release, mode, status, leases, guard, soak")
    p.add_argument("-i", "--inventory", type=text, help="an Ansible inventory (default: the lab's, inventory/lab/hosts.py)")
    p.add_argument("--redis-url", type=redis_url, help="the bots' Redis, for the lease holders (default: QUANTSHIFT_AUDIT_REDIS_URL)")
    p.add_argument("--json", action="store_true", help="one JSON document (per refresh with --watch)")
    p.add_argument("--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=_positive, default=2.0, help="seconds between refreshes with --watch (default %(default)s)")
    p.add_argument("--timeout", type=_positive, default=3.0, help="how long a host may take to answer (default %(default)s)")
    p.set_defaults(func=_status)

    monitor = sub.add_parser("monitor", help="Prometheus: scrape targets from the inventory")
    actions = monitor.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    t = actions.add_parser("targets", help="write file-based service discovery (quantshift.json, quantshift_guard.json)")
    t.add_argument("-i", "--inventory", type=text, help="an Ansible inventory (default: the lab's)")
    t.add_argument("--out", type=text, required=True, help="the directory Prometheus' file_sd_configs read")
    t.set_defaults(func=_targets)
