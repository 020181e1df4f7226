"""`quantshift bot run|health` (and `python -m bot run`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from bot.runner import run

    return run(args.env_file)


def _health(args: argparse.Namespace) -> int:
    from bot import monitor

    report = monitor.check(args.url, monitor.Thresholds(args.min_win_rate, args.max_drawdown, args.max_error_rate, args.min_trades))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(monitor.render(report))
    return 0 if report["ok"] else 1


def register(sub: Any) -> None:
    bot = sub.add_parser(
        "bot",
        help="run the trading bot, or check a running bot's health",
        description="The trading bot: paper, shadow, canary or live on the same strategy code.",
    )
    _actions(bot)


def _actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bot_command", metavar="ACTION", required=True)
    p = actions.add_parser("run", help="trade until SIGTERM (settings from QS_* variables; exit 2 on a bad setting)")
    p.add_argument("--env-file", type=Path, help="read settings from this file too (KEY=VALUE, as systemd's EnvironmentFile)")
    p.set_defaults(func=_run)
    p = actions.add_parser("health", help="evaluate a bot's /healthz and /metrics against alert thresholds (exit 1 on alerts)")
    p.add_argument("--url", required=True, help="the bot's health base URL, e.g. http://127.0.0.1:9108")
    p.add_argument("--min-win-rate", type=float, default=0.5, help="alert below this win rate (default %(default)s)")
    p.add_argument("--max-drawdown", type=float, default=0.2, help="alert above this drawdown (default %(default)s)")
    p.add_argument("--max-error-rate", type=float, default=0.05, help="alert above this broker error rate (default %(default)s)")
    p.add_argument("--min-trades", type=int, default=10, help="judge win rate only after this many trades (default %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=_health)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The QuantShift trading bot.")
    _actions(parser)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    return int(args.func(args))
