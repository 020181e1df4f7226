"""`quantshift bot run|health` (and `python -m bot run`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.compare import Settings
from bot.metrics import PERIODS
from bot.models import OrderStatus
from bot.monitor import AlertThresholds


def _run(args: argparse.Namespace) -> int:
    from bot.runner import run

    return run(args.env_file)


def _health(args: argparse.Namespace) -> int:
    from bot import monitor

    report = monitor.check(args.url, monitor.AlertThresholds(args.min_win_rate, args.max_drawdown, args.max_error_rate, args.min_trades))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(monitor.render(report))
    return 0 if report["ok"] else 1


EXIT = {"pass": 0, "fail": 1, "marginal": 3, "inconclusive": 4}


def _load_docs(path: Path) -> list[dict[str, Any]]:
    text = path.read_text().strip()
    if not text:
        return []
    if text.startswith("["):
        docs: list[dict[str, Any]] = json.loads(text)
        return docs
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _when(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        import datetime as dt

        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def _compare(args: argparse.Namespace) -> int:
    from bot import compare, report

    if args.redis_url:
        import redis

        from bot.state import State

        client = redis.Redis.from_url(args.redis_url)
        shadow_state, prod_state = State(client, f"{args.account}:shadow"), State(client, args.account)
        shadow_trades, prod_trades = shadow_state.trades(), prod_state.trades()
        shadow_orders = [{"symbol": o["symbol"], "side": o["side"], "time": o["time"]} for o in shadow_state.would_be_orders()]
        prod_orders = [
            {"symbol": o["symbol"], "side": o["side"], "time": o.get("created", 0)}
            for o in prod_state.orders().values()
            if o.get("status") in (OrderStatus.FILLED, OrderStatus.NEW) and "symbol" in o
        ]
    else:
        if args.production_trades is None:
            print("quantshift compare: --shadow-trades needs --production-trades", file=sys.stderr)
            return 2
        shadow_trades, prod_trades = _load_docs(args.shadow_trades), _load_docs(args.production_trades)
        shadow_orders = _load_docs(args.shadow_orders) if args.shadow_orders else []
        prod_orders = _load_docs(args.production_orders) if args.production_orders else []
    since, until = _when(args.since), _when(args.until)

    def window(docs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        return [d for d in docs if (since is None or float(d[key]) >= since) and (until is None or float(d[key]) < until)]

    settings = compare.Settings(
        confidence=args.confidence,
        tolerance=args.tolerance,
        interval_seconds=args.interval,
        min_trades=args.min_trades,
        min_intervals=args.min_intervals,
        agreement_seconds=args.agreement_seconds,
        start_equity=args.start_equity,
        market=args.market,
    )
    result = compare.compare(
        window(shadow_trades, "closed_at"),
        window(prod_trades, "closed_at"),
        settings,
        window(shadow_orders, "time"),
        window(prod_orders, "time"),
    )
    if args.html:
        args.html.write_text(report.render(result))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(compare.render_table(result))
        if args.html:
            print(f"\nreport: {args.html}")
    code = EXIT[result.verdict.result]
    return 0 if code == 3 and args.allow_marginal else code


def _register_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="does the shadow perform at least as well as production? (metrics, verdict, HTML report)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare the shadow's would-be trades with production's real trades over the same period.\n"
        "Exit 0 pass, 1 fail, 3 marginal (0 with --allow-marginal), 4 inconclusive. Conventions: bot/compare.py.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--redis-url", help="read both journals from the bots' Redis")
    src.add_argument("--shadow-trades", type=Path, help="shadow trades, JSON list or JSON lines (with --production-trades)")
    p.add_argument("--production-trades", type=Path, help="production trades, JSON list or JSON lines")
    p.add_argument("--shadow-orders", type=Path, help="shadow would-be orders (symbol, side, time) for signal agreement")
    p.add_argument("--production-orders", type=Path, help="production orders (symbol, side, time)")
    p.add_argument("--account", default="", help="the account id both bots trade (with --redis-url)")
    p.add_argument("--since", help="from this time (ISO 8601 or unix seconds)")
    p.add_argument("--until", help="until this time (exclusive)")
    c = Settings()
    p.add_argument("--market", choices=tuple(PERIODS), default=c.market, help="Sharpe annualisation: 252 or 365 days")
    p.add_argument("--confidence", type=float, default=c.confidence, help="confidence of the one-sided test (default %(default)s)")
    p.add_argument("--tolerance", type=float, default=c.tolerance, help="allowed shortfall of mean interval return (default %(default)s)")
    p.add_argument("--interval", type=int, default=c.interval_seconds, help="seconds per return interval (default %(default)s)")
    p.add_argument("--min-trades", type=int, default=c.min_trades, help="per side, else inconclusive (default %(default)s)")
    p.add_argument("--min-intervals", type=int, default=c.min_intervals, help="else inconclusive (default %(default)s)")
    p.add_argument(
        "--agreement-seconds", type=float, default=c.agreement_seconds, help="time tolerance for signal agreement (default %(default)s)"
    )
    p.add_argument("--start-equity", type=float, default=c.start_equity, help="for equity curves and drawdown (default %(default)s)")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    p.add_argument("--allow-marginal", action="store_true", help="exit 0 on a marginal verdict (for a lenient gate)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_compare)


def register(sub: Any) -> None:
    bot = sub.add_parser(
        "bot",
        help="run the trading bot, or check a running bot's health",
        description="The trading bot: paper, shadow, canary or live on the same strategy code.",
    )
    _actions(bot)
    _register_compare(sub)


def _lease(args: argparse.Namespace) -> int:
    import redis

    from bot.config import read_env_file
    from bot.lease import SEPARATOR, holder_of, leases_of, yield_key

    env = read_env_file(args.env_file) if args.env_file else {}
    redis_url, account = args.redis_url or env.get("QS_REDIS_URL"), args.account or env.get("QS_ACCOUNT_ID")
    if not redis_url or not account:
        print("quantshift bot lease: give --redis-url and --account, or --env-file of a bot that has both", file=sys.stderr)
        return 2
    args.account = account
    client = redis.Redis.from_url(redis_url, socket_timeout=5, decode_responses=True)
    key = yield_key(args.account)
    symbols = [s.strip().upper() for s in (args.symbols or "").split(",") if s.strip()]
    if args.lease_action in ("yield", "reclaim") and not symbols:
        print("quantshift bot lease: --symbols is required", file=sys.stderr)
        return 2
    changed = 0
    if args.lease_action == "yield":
        changed = int(client.sadd(key, *symbols))
    elif args.lease_action == "reclaim":
        changed = int(client.srem(key, *symbols))
    yielded = sorted(client.smembers(key))
    holders, tokens = {}, {}
    for symbol, value in leases_of(client, args.account).items():
        holders[symbol] = holder_of(value) or ""
        tokens[symbol] = int(value.rsplit(SEPARATOR, 1)[1]) if SEPARATOR in value else 0
    doc = {"account": args.account, "changed": changed > 0, "yielded": yielded, "holders": dict(sorted(holders.items()))}
    print(json.dumps(doc | {"fencing_tokens": dict(sorted(tokens.items()))}, indent=2))
    return 0


def _actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bot_command", metavar="ACTION", required=True)
    p = actions.add_parser("lease", help="show who holds each symbol's lease; yield a slice to a canary or reclaim it")
    p.add_argument(
        "lease_action", choices=("show", "yield", "reclaim"), help="yield: the primary lets go of --symbols; reclaim: takes them back"
    )
    p.add_argument("--redis-url", help="the bots' Redis")
    p.add_argument("--account", help="account id")
    p.add_argument("--env-file", type=Path, help="take QS_REDIS_URL and QS_ACCOUNT_ID from this bot's .env (on its host)")
    p.add_argument("--symbols", help="comma-separated symbols (yield, reclaim)")
    p.set_defaults(func=_lease)
    p = actions.add_parser("run", help="trade until SIGTERM (settings from QS_* variables; exit 2 on a bad setting)")
    p.add_argument("--env-file", type=Path, help="read settings from this file too (KEY=VALUE, as systemd's EnvironmentFile)")
    p.set_defaults(func=_run)
    p = actions.add_parser("health", help="evaluate a bot's /healthz and /metrics against alert thresholds (exit 1 on alerts)")
    p.add_argument("--url", required=True, help="the bot's health base URL, e.g. http://127.0.0.1:9108")
    a = AlertThresholds()
    p.add_argument("--min-win-rate", type=float, default=a.min_win_rate, help="alert below this win rate (default %(default)s)")
    p.add_argument("--max-drawdown", type=float, default=a.max_drawdown, help="alert above this drawdown (default %(default)s)")
    p.add_argument(
        "--max-error-rate", type=float, default=a.max_error_rate, help="alert above this broker error rate (default %(default)s)"
    )
    p.add_argument("--min-trades", type=int, default=a.min_trades, help="judge win rate only after this many trades (default %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=_health)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The QuantShift trading bot.")
    _actions(parser)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    return int(args.func(args))
