"""The `quantshift` command. Subcommands import their packages lazily so `--help` stays instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lab.errors import LabError
from quantshift_bot.errors import EXIT_INTERRUPTED, Parser, UserError, exit_code


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def version() -> str:
    """The installed distribution's version; the package's own when it runs from a source tree."""
    from importlib import metadata

    try:
        return metadata.version("quantshift")
    except metadata.PackageNotFoundError:
        from quantshift import __version__

        return __version__


class _Version(argparse.Action):
    """--version: `quantshift X.Y.Z` on stdout, exit 0 (looked up only when asked, so startup stays fast)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None
    ) -> None:
        print(f"quantshift {version()}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="quantshift",
        formatter_class=_Formatter,
        description="Ship improvements to live trading bots: provision Proxmox LXC containers, run the\n"
        "lab that stands in for Proxmox and the exchanges, and move releases through\n"
        "paper -> shadow -> canary -> production with gates and instant rollback.",
        epilog="Run `quantshift COMMAND --help` for the options of each command.\n"
        "Exit codes (every command): 0 ok or yes; 1 could not be done; 2 invalid option, argument or input;\n"
        "3 the check said no; 4 the check cannot tell yet.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Command groups that live with their packages (each adds its own subparser)."""
    from importlib import import_module

    out: list[Callable[[Any], None]] = []
    for module in (
        "lab.cli",
        "proxmox.cli",
        "quantshift_bot.cli",
        "quantshift.deploy_cli",
        "quantshift.guard_cli",
        "quantshift.status_cli",
        "quantshift.strategy_cli",
    ):
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
        return EXIT_INTERRUPTED
    except (UserError, LabError) as err:  # the operator can act on it: one clear line, no traceback
        print(f"quantshift: {err}", file=sys.stderr)
        return exit_code(err)
