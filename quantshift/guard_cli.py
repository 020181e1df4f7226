"""`quantshift guard status`: what the release guard of each bot host watches, the bake left, and its
figures against their thresholds. On the host it reads the guard directly; from the controller it asks
over SSH (`--ssh 'ssh root@HOST'`). The guard itself is roles/quantshift_bot/files/quantshift-guard.py."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from quantshift_bot.errors import EXIT_ERROR, EXIT_OK, command_line, text

GUARD = "/usr/local/lib/quantshift/quantshift-guard.py"


def _status(args: argparse.Namespace) -> int:
    command = ["/usr/bin/python3", GUARD, "status", "--config", args.config] + (["--json"] if args.json else [])
    if args.ssh:
        command = [*args.ssh, shlex.join(command)]
    elif not Path(GUARD).exists():
        print(f"quantshift guard: no guard on this host ({GUARD}); from the controller give --ssh 'ssh root@HOST'", file=sys.stderr)
        return EXIT_ERROR
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except OSError as err:
        print(f"quantshift guard: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
        return EXIT_ERROR
    except subprocess.TimeoutExpired:
        print("quantshift guard: no answer within 60 s: is the host reachable?", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()
        print(f"quantshift guard: {why[-1] if why else f'exit {done.returncode}'}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def register(sub: Any) -> None:
    guard = sub.add_parser("guard", help="the release guard of a bot host: what it watches and its figures")
    actions = guard.add_subparsers(dest="guard_command", metavar="ACTION", required=True)
    p = actions.add_parser("status", help="what the guard watches, bake time left, figures against thresholds")
    p.add_argument("--ssh", type=command_line, help="run it on a bot host from the controller, e.g. 'ssh -i KEY root@10.231.7.10'")
    p.add_argument("--config", type=text, default="/etc/quantshift/guard.json", help="the guard's configuration on the host")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)
