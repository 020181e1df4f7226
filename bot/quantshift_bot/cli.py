"""`quantshift bot run|health` (and `python -m quantshift_bot run`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from quantshift_bot.compare import Settings
from quantshift_bot.errors import (
    EXIT_INCONCLUSIVE,
    EXIT_NO,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    Parser,
    UserError,
    epoch_or_time,
    existing_file,
    exit_code,
    float_in,
    http_url,
    int_from,
    output_file,
    redis_url,
    text,
)
from quantshift_bot.metrics import PERIODS
from quantshift_bot.models import OrderStatus
from quantshift_bot.monitor import AlertThresholds


def _run(args: argparse.Namespace) -> int:
    from quantshift_bot.runner import run

    return run(args.env_file)


def _replay(args: argparse.Namespace) -> int:
    from quantshift_bot.replay import command

    return command(args)


def _strategy(args: argparse.Namespace) -> int:
    """The strategy this release runs (its wheelhouse's strategy.json, else ma_cross), loaded and checked
    against the contract; exit 2 with one line when it cannot be."""
    from quantshift_bot import strategy as contract
    from quantshift_bot.config import _release_strategy, _release_strategy_doc

    name, params = _release_strategy()
    found = contract.check(contract.load(name, params), name, args.lookback)
    meta = _release_strategy_doc()
    doc: dict[str, Any] = {"name": name, "params": params, "warmup": found.warmup}
    doc |= {k: meta[k] for k in ("distribution", "version") if k in meta}
    print(json.dumps(doc) if args.json else f"strategy {name} {json.dumps(params)}: the contract holds (warmup {found.warmup} bars)")
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    from quantshift_bot import monitor

    report = monitor.check(args.url, monitor.AlertThresholds(args.min_win_rate, args.max_drawdown, args.max_error_rate, args.min_trades))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(monitor.render(report))
    return EXIT_OK if report["ok"] else EXIT_NO


# A verdict's exit code: "no" for fail and marginal (0 with --allow-marginal), "cannot tell yet" for too little data.
EXIT = {"pass": EXIT_OK, "fail": EXIT_NO, "marginal": EXIT_NO, "inconclusive": EXIT_INCONCLUSIVE}
TRADE = {"closed_at": True, "pnl": True, "ret": True, "opened_at": False}  # field: required (else optional, may be null)
ORDER = {"symbol": True, "side": True, "time": True}
NUMERIC = {"closed_at", "pnl", "ret", "opened_at", "time"}


def _checked(docs: list[Any], where: list[str], fields: dict[str, bool], what: str) -> list[dict[str, Any]]:
    """Each doc is an object with the required `fields`, numbers where numbers belong; else one InputError
    naming the first bad record (`where`: its place, e.g. FILE:LINE)."""
    for doc, place in zip(docs, where, strict=True):
        if not isinstance(doc, dict):
            raise InputError(f"{place}: {what} must be a JSON object, got {json.dumps(doc)[:60]}")
        missing = [k for k, required in fields.items() if required and doc.get(k) is None]
        if missing:
            needs = ", ".join(k for k, required in fields.items() if required)
            raise InputError(f"{place}: {what} needs {needs}; missing {', '.join(missing)}")
        for key in NUMERIC & doc.keys() & fields.keys():
            value = doc[key]
            if value is None and not fields[key]:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, bool) or not math.isfinite(number):
                raise InputError(f"{place}: {what}'s {key} must be a number, got {json.dumps(value)[:40]}")
    return docs


def _load_docs(path: Path, fields: dict[str, bool], what: str) -> list[dict[str, Any]]:
    """A JSON list or JSON lines of `what` records, checked (see _checked)."""
    try:
        content = path.read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (give a JSON list, or one JSON object a line)") from None
    if not content.strip():
        return []
    if content.lstrip().startswith("["):
        try:
            docs = json.loads(content)
        except ValueError as err:
            raise InputError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(docs, list):  # e.g. "[1] 2"
            raise InputError(f"{path}: not a JSON list")
        return _checked(docs, [f"{path}: record {n}" for n in range(1, len(docs) + 1)], fields, what)
    docs, where = [], []
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except ValueError as err:
            raise InputError(f"{path}:{n}: not valid JSON ({err}); give a JSON list or one JSON object a line") from None
        where.append(f"{path}:{n}")
    return _checked(docs, where, fields, what)


def _from_redis(url: str, account: str) -> tuple[list[dict[str, Any]], ...]:
    """Both journals and order books from the bots' Redis: shadow trades, production trades, shadow
    would-be orders, production orders."""
    import redis

    from quantshift_bot.state import State

    where = url.split("@")[-1]  # never the password
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        shadow_state, prod_state = State(client, f"{account}:shadow"), State(client, account)
        shadow_trades, prod_trades = shadow_state.trades(), prod_state.trades()
        would_be, orders = shadow_state.would_be_orders(), list(prod_state.orders().values())
    except ValueError as err:  # from_url, or a journal entry that is not JSON
        raise InputError(f"the bots' Redis at {where}: {err}") from None
    except redis.RedisError as err:
        raise UserError(f"the bots' Redis at {where} cannot be read ({err.__class__.__name__}: {err})") from None
    source = f"Redis {where}, account {account}"
    _checked(shadow_trades, [f"{source}:shadow trade {n}" for n in range(1, len(shadow_trades) + 1)], TRADE, "a trade")
    _checked(prod_trades, [f"{source} trade {n}" for n in range(1, len(prod_trades) + 1)], TRADE, "a trade")
    _checked(would_be, [f"{source}:shadow would-be order {n}" for n in range(1, len(would_be) + 1)], ORDER, "an order")
    shadow_orders = [{"symbol": o["symbol"], "side": o["side"], "time": o["time"]} for o in would_be]
    prod_orders = [
        {"symbol": o["symbol"], "side": o.get("side"), "time": o.get("created", 0)}
        for o in orders
        if isinstance(o, dict) and o.get("status") in (OrderStatus.FILLED, OrderStatus.NEW) and "symbol" in o
    ]
    _checked(prod_orders, [f"{source} order {n}" for n in range(1, len(prod_orders) + 1)], ORDER, "an order")
    return shadow_trades, prod_trades, shadow_orders, prod_orders


def _compare(args: argparse.Namespace) -> int:
    from quantshift_bot import compare, report

    if args.since is not None and args.until is not None and args.since >= args.until:
        raise InputError(f"--since ({args.since:.0f}) must be before --until ({args.until:.0f})")
    if args.redis_url:
        if not args.account:
            print("quantshift compare: --redis-url needs --account (the account id both bots trade)", file=sys.stderr)
            return EXIT_USAGE
        shadow_trades, prod_trades, shadow_orders, prod_orders = _from_redis(args.redis_url, args.account)
    else:
        if args.production_trades is None:
            print("quantshift compare: --shadow-trades needs --production-trades", file=sys.stderr)
            return EXIT_USAGE
        shadow_trades = _load_docs(args.shadow_trades, TRADE, "a trade")
        prod_trades = _load_docs(args.production_trades, TRADE, "a trade")
        shadow_orders = _load_docs(args.shadow_orders, ORDER, "an order") if args.shadow_orders else []
        prod_orders = _load_docs(args.production_orders, ORDER, "an order") if args.production_orders else []
    since, until = args.since, args.until

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
        try:
            args.html.write_text(report.render(result))
        except OSError as err:
            raise UserError(f"cannot write the report {args.html} ({err.strerror})") from None
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(compare.render_table(result))
        if args.html:
            print(f"\nreport: {args.html}")
    if result.verdict.result == "marginal" and args.allow_marginal:
        return EXIT_OK
    return EXIT[result.verdict.result]


def _register_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="does the shadow perform at least as well as production? (metrics, verdict, HTML report)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare the shadow's would-be trades with production's real trades over the same period.\n"
        "Exit 0 pass, 3 fail or marginal (0 with --allow-marginal), 4 inconclusive. Conventions: bot/quantshift_bot/compare.py.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--redis-url", type=redis_url, help="read both journals from the bots' Redis (with --account)")
    src.add_argument("--shadow-trades", type=existing_file, help="shadow trades, JSON list or JSON lines (with --production-trades)")
    p.add_argument("--production-trades", type=existing_file, help="production trades, JSON list or JSON lines")
    p.add_argument("--shadow-orders", type=existing_file, help="shadow would-be orders (symbol, side, time) for signal agreement")
    p.add_argument("--production-orders", type=existing_file, help="production orders (symbol, side, time)")
    p.add_argument("--account", type=text, help="the account id both bots trade (with --redis-url)")
    p.add_argument("--since", type=epoch_or_time, help="from this time (unix seconds, or ISO 8601 with zone)")
    p.add_argument("--until", type=epoch_or_time, help="until this time (exclusive)")
    c = Settings()
    p.add_argument("--market", choices=tuple(PERIODS), default=c.market, help="Sharpe annualisation: 252 or 365 days")
    p.add_argument(
        "--confidence",
        type=float_in(above=0.0, below=1.0),
        default=c.confidence,
        help="confidence of the one-sided test, between 0 and 1 (default %(default)s)",
    )
    p.add_argument(
        "--tolerance", type=float_in(0.0), default=c.tolerance, help="allowed shortfall of mean interval return (default %(default)s)"
    )
    p.add_argument("--interval", type=int_from(1), default=c.interval_seconds, help="seconds per return interval (default %(default)s)")
    p.add_argument("--min-trades", type=int_from(1), default=c.min_trades, help="per side, else inconclusive (default %(default)s)")
    p.add_argument("--min-intervals", type=int_from(1), default=c.min_intervals, help="else inconclusive (default %(default)s)")
    p.add_argument(
        "--agreement-seconds",
        type=float_in(0.0),
        default=c.agreement_seconds,
        help="time tolerance for signal agreement (default %(default)s)",
    )
    p.add_argument(
        "--start-equity", type=float_in(above=0.0), default=c.start_equity, help="for equity curves and drawdown (default %(default)s)"
    )
    p.add_argument("--html", type=output_file, help="write a self-contained HTML report here")
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

    from quantshift_bot.config import ConfigError, read_env_file
    from quantshift_bot.lease import SEPARATOR, holder_of, leases_of, yield_key

    try:
        env = read_env_file(args.env_file) if args.env_file else {}
    except ConfigError as err:
        raise InputError(str(err)) from None
    except OSError as err:
        raise InputError(f"{args.env_file}: cannot read ({err.strerror})") from None
    url, account = args.redis_url or env.get("QS_REDIS_URL"), args.account or env.get("QS_ACCOUNT_ID")
    if not url or not account:
        print("quantshift bot lease: give --redis-url and --account, or --env-file of a bot that has both", file=sys.stderr)
        return EXIT_USAGE
    if not args.redis_url:  # from the file: the same check as the option's
        try:
            redis_url(url)
        except argparse.ArgumentTypeError as err:
            raise InputError(f"{args.env_file}: QS_REDIS_URL: {err}") from None
    args.account = account
    symbols = [s.strip().upper() for s in (args.symbols or "").split(",") if s.strip()]
    if args.lease_action in ("yield", "reclaim") and not symbols:
        print("quantshift bot lease: --symbols is required", file=sys.stderr)
        return EXIT_USAGE
    key = yield_key(args.account)
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        changed = 0
        if args.lease_action == "yield":
            changed = int(client.sadd(key, *symbols))
        elif args.lease_action == "reclaim":
            changed = int(client.srem(key, *symbols))
        yielded = sorted(client.smembers(key))
        leases = leases_of(client, args.account)
    except ValueError as err:
        raise InputError(f"not a Redis URL ({err})") from None
    except redis.RedisError as err:
        where = url.split("@")[-1]  # never the password
        raise UserError(f"the bots' Redis at {where} cannot be reached ({err.__class__.__name__}: {err}): nothing was changed") from None
    holders, tokens = {}, {}
    for symbol, value in leases.items():
        holders[symbol] = holder_of(value) or ""
        tokens[symbol] = int(value.rsplit(SEPARATOR, 1)[1]) if SEPARATOR in value else 0
    doc = {"account": args.account, "changed": changed > 0, "yielded": yielded, "holders": dict(sorted(holders.items()))}
    print(json.dumps(doc | {"fencing_tokens": dict(sorted(tokens.items()))}, indent=2))
    return EXIT_OK


def _actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bot_command", metavar="ACTION", required=True)
    p = actions.add_parser("lease", help="show who holds each symbol's lease; yield a slice to a canary or reclaim it")
    p.add_argument(
        "lease_action", choices=("show", "yield", "reclaim"), help="yield: the primary lets go of --symbols; reclaim: takes them back"
    )
    p.add_argument("--redis-url", type=redis_url, help="the bots' Redis")
    p.add_argument("--account", type=text, help="account id")
    p.add_argument("--env-file", type=existing_file, help="take QS_REDIS_URL and QS_ACCOUNT_ID from this bot's .env (on its host)")
    p.add_argument("--symbols", help="comma-separated symbols (yield, reclaim)")
    p.set_defaults(func=_lease)
    p = actions.add_parser("run", help="trade until SIGTERM (settings from QS_* variables; exit 2 on a bad setting)")
    p.add_argument("--env-file", type=existing_file, help="read settings from this file too (KEY=VALUE, as systemd's EnvironmentFile)")
    p.set_defaults(func=_run)
    p = actions.add_parser("health", help="evaluate a bot's /healthz and /metrics against alert thresholds (exit 3 on alerts)")
    p.add_argument("--url", type=http_url, required=True, help="the bot's health base URL, e.g. http://127.0.0.1:9108")
    a = AlertThresholds()
    # Finite numbers, not ranges: a probe may ask for an alert on anything (--max-drawdown -1), unlike a gate.
    p.add_argument("--min-win-rate", type=float_in(), default=a.min_win_rate, help="alert below this win rate (default %(default)s)")
    p.add_argument("--max-drawdown", type=float_in(), default=a.max_drawdown, help="alert above this drawdown (default %(default)s)")
    p.add_argument(
        "--max-error-rate", type=float_in(), default=a.max_error_rate, help="alert above this broker error rate (default %(default)s)"
    )
    p.add_argument(
        "--min-trades", type=int_from(0), default=a.min_trades, help="judge win rate only after this many trades (default %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=_health)
    p = actions.add_parser("strategy", help="load the release's strategy and check it against the contract (exit 2 when it breaks)")
    p.add_argument("--lookback", type=int_from(5), default=60, help="bars the strategy sees, as QS_BARS_LOOKBACK (default %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_strategy)
    p = actions.add_parser("replay", help="replay recorded 1-minute bars through the release's strategy, simulated broker (JSON out)")
    p.add_argument("--bars", type=existing_file, required=True, help="bar CSV with header t,symbol,o,h,l,c,v (t in unix seconds)")
    p.add_argument("--strategy", type=text, help="strategy entry point name (default: the installed release's, else ma_cross)")
    p.add_argument("--params", help="strategy parameters as a JSON object of numbers, over the release's own")
    p.add_argument("--market", choices=("equity", "crypto"), default="equity", help="crypto trades fractions (default %(default)s)")
    p.add_argument("--lookback", type=int_from(5), default=60, help="bars the strategy sees, as QS_BARS_LOOKBACK (default %(default)s)")
    p.add_argument("--out", type=output_file, help="write the JSON document here instead of stdout")
    p.set_defaults(func=_replay)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m quantshift_bot", description="The QuantShift trading bot.")
    _actions(parser)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    try:
        return int(args.func(args))
    except UserError as err:  # the operator can act on it: one clear line, no traceback
        print(f"quantshift bot: {err}", file=sys.stderr)
        return exit_code(err)
