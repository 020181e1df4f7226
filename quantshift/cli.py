"""The `quantshift` command. Subcommands import their packages lazily so `--help` stays instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot.errors import UserError
from lab.errors import LabError

EXIT_USAGE = 2


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantshift",
        formatter_class=_Formatter,
        description="Ship improvements to live trading bots: provision Proxmox LXC containers, run the\n"
        "lab that stands in for Proxmox and the exchanges, and move releases through\n"
        "paper -> shadow -> canary -> production with gates and instant rollback.",
        epilog="Run `quantshift COMMAND --help` for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Command groups that live with their packages (each adds its own subparser)."""
    from importlib import import_module

    out: list[Callable[[Any], None]] = []
    for module in ("lab.cli", "proxmox.cli", "bot.cli", "quantshift.deploy_cli", "quantshift.guard_cli"):
        try:
            out.append(import_module(module).register)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (UserError, LabError) as err:  # the operator can act on it: one clear line, no traceback
        print(f"quantshift: {err}", file=sys.stderr)
        return 1
