"""Replay: recorded 1-minute bars through a strategy with a simulated broker, as fast as it decides.

The simulation is the engine ticking once per bar in shadow mode: minute by minute, every symbol with a
bar at that minute first updates its last price, then each of them (in symbol order) is decided on its
latest `lookback` bars and the position held, from the positions as they stood when the minute began
(as the engine reads them once per tick). A buy is sized by quantshift_bot.engine.buy_quantity, the function
Engine.act sizes with, from the trades closed so far; a sell closes the whole position; a size of zero
is skipped. Orders fill at once at the signal's price and are booked as Engine._apply_fill books them.
No Redis, no broker, no clock: the same bars and strategy always give the same orders and trades.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from quantshift_bot.config import _installed_release, _release_strategy
from quantshift_bot.engine import SIZING_TRADES, buy_quantity
from quantshift_bot.errors import EXIT_OK, InputError, UserError
from quantshift_bot.models import Bar, Position, Trade
from quantshift_bot.strategy import Strategy, check, load

COLUMNS = ("t", "symbol", "o", "h", "l", "c", "v")  # the lab's bar CSV (lab/exchanges/market.py)
MARKETS = {"equity": False, "crypto": True}  # market -> trades fractions of a unit (the brokers' `fractional`)
LOOKBACK = 60  # QS_BARS_LOOKBACK's default
MIN_LOOKBACK, MAX_LOOKBACK = 5, 10_000  # QS_BARS_LOOKBACK's limits


@dataclass(frozen=True)
class Sizing:
    """The account and limits a replay sizes buys with; the defaults are the bot's (QS_MAX_POSITION,
    QS_MAX_EXPOSURE, QS_KELLY_FRACTION, a non-canary size factor)."""

    start_equity: float = 100_000.0
    kelly_fraction: float = 0.5
    max_position: float = 10_000.0
    max_exposure: float = 50_000.0
    size_factor: float = 1.0
    fractional: bool = False


@dataclass(frozen=True)
class Order:
    """A filled order: at bar `time`, at the signal's price."""

    time: int
    symbol: str
    side: str
    qty: float
    price: float
    reason: str


@dataclass
class Result:
    orders: list[Order] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    skipped: int = 0  # signals sized to zero (limits or Kelly), skipped as the engine skips them
    bars: int = 0
    seconds: float = 0.0  # wall time of the replay loop

    def order_docs(self) -> list[dict[str, Any]]:
        """The orders as quantshift_bot.compare reads orders (time, symbol, side), with qty, price and reason."""
        return [asdict(o) for o in self.orders]

    def trade_docs(self) -> list[dict[str, Any]]:
        """The closed trades as the journal holds them (quantshift_bot.compare reads opened_at, closed_at, pnl, ret)."""
        return [t.doc() for t in self.trades]


def replay(
    bars: Mapping[str, Sequence[Bar]],
    strategy: Strategy,
    *,
    lookback: int = LOOKBACK,
    sizing: Sizing = Sizing(),  # frozen: one shared default is safe
    since: int | None = None,
) -> Result:
    """Run `strategy` over each symbol's `bars` (in time order, one a minute) as the module docstring
    describes. `since`: decide on bars from this time on; earlier bars only fill the windows."""
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1 bar, got {lookback}")
    began = time.perf_counter()
    symbols = sorted(bars)
    series = [list(bars[s]) for s in symbols]  # lists: a window is then a slice, a list as the engine gives
    schedule: dict[int, list[int]] = defaultdict(list)  # minute -> indexes into symbols with a bar then
    for k, (symbol, rows) in enumerate(zip(symbols, series, strict=True)):
        for before, after in pairwise(rows):
            if not before.t < after.t:
                raise InputError(f"{symbol}: bars must be in time order, one a minute: {before.t} then {after.t}")
        for bar in rows:
            schedule[bar.t].append(k)
    cursor = [0] * len(symbols)  # the index of each symbol's next bar
    positions: dict[str, Position] = {}  # replaced, never changed in place: a minute's snapshot stays as it was
    prices: dict[str, float] = {}
    pnls: deque[float] = deque(maxlen=SIZING_TRADES)  # the journal's latest trades, oldest first
    result = Result(bars=sum(len(rows) for rows in series))
    orders, trades, decide = result.orders, result.trades, strategy.decide
    for minute in sorted(schedule):
        due = schedule[minute]
        for k in due:
            prices[symbols[k]] = series[k][cursor[k]].c
        held = positions  # the engine decides a whole tick on the positions it read when the tick began
        for k in due:
            i = cursor[k]
            cursor[k] = i + 1
            if since is not None and minute < since:
                continue
            symbol, rows = symbols[k], series[k]
            window = rows[max(0, i + 1 - lookback) : i + 1]
            position = held.get(symbol)
            signal = decide(symbol, window, position)
            if signal is None:
                continue
            if signal.side == "buy":
                qty = buy_quantity(
                    signal.price,
                    pnls,
                    held,
                    prices,
                    start_equity=sizing.start_equity,
                    kelly_fraction=sizing.kelly_fraction,
                    max_position=sizing.max_position,
                    max_exposure=sizing.max_exposure,
                    size_factor=sizing.size_factor,
                    fractional=sizing.fractional,
                )
            else:
                qty = position.qty if position else 0.0
            if qty <= 0:
                result.skipped += 1
                continue
            orders.append(Order(minute, symbol, signal.side, qty, signal.price, signal.reason))
            current = positions.get(symbol)
            if signal.side == "buy":
                total = (current.qty if current else 0.0) + qty
                entry = ((current.qty * current.entry_price if current else 0.0) + qty * signal.price) / total
                opened = Position(symbol, total, entry, signal.stop_loss, signal.take_profit, float(minute))
                positions = positions | {symbol: opened}
            elif current is not None:
                trade = Trade(symbol, current.qty, current.entry_price, signal.price, current.opened_at, float(minute), signal.reason)
                trades.append(trade)
                pnls.append(trade.pnl)
                positions = {s: p for s, p in positions.items() if s != symbol}
    result.seconds = time.perf_counter() - began
    return result


def read_bars(path: Path) -> dict[str, list[Bar]]:
    """The lab's bar CSV (header t,symbol,o,h,l,c,v; t in unix seconds, counted for the minute it falls in,
    as the lab serves it; rows in any order): each symbol's bars in time order. InputError names the
    file, the line and what is wrong."""
    found: dict[str, list[Bar]] = defaultdict(list)
    try:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = [name.strip() for name in next(reader, [])]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                has = ",".join(header) if header else "nothing (an empty file)"
                raise InputError(f"{path}: no column {', '.join(missing)}: a bar CSV's header is {','.join(COLUMNS)}; this one has {has}")
            symbol_at = header.index("symbol")
            numeric = [header.index(c) for c in COLUMNS if c != "symbol"]  # t, o, h, l, c, v
            width = max(symbol_at, *numeric) + 1
            it, io, ih, il, ic, iv = numeric
            for row in reader:
                if len(row) < width:
                    if not any(cell.strip() for cell in row):
                        continue  # a blank line
                    raise InputError(f"{path}:{reader.line_num}: {len(row)} field(s), the header names {len(header)}")
                symbol = row[symbol_at].strip()
                if not symbol:
                    raise InputError(f"{path}:{reader.line_num}: empty symbol")
                try:
                    when, o, h, low, c, v = float(row[it]), float(row[io]), float(row[ih]), float(row[il]), float(row[ic]), float(row[iv])
                except ValueError:
                    raise _not_a_number(path, reader.line_num, row, numeric) from None
                if not math.isfinite(when + o + h + low + c + v):  # any nan or inf makes the sum so
                    raise _not_a_number(path, reader.line_num, row, numeric)
                if when < 0 or v < 0 or min(o, h, low, c) <= 0:
                    raise InputError(f"{path}:{reader.line_num}: t and v must be >= 0 and o, h, l, c above 0, got {','.join(row)}")
                found[symbol].append(Bar(int(when) // 60 * 60, o, h, low, c, v))
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (a bar CSV: {','.join(COLUMNS)})") from None
    except csv.Error as err:
        raise InputError(f"{path}: not a CSV file ({err})") from None
    if not found:
        raise InputError(f"{path}: no bars, only the header")
    out = {}
    for symbol, rows in sorted(found.items()):
        rows.sort(key=lambda bar: bar.t)
        for before, after in pairwise(rows):
            if before.t == after.t:
                raise InputError(f"{path}: two bars for {symbol} in the minute starting at t={after.t}")
        out[symbol] = rows
    return out


def _not_a_number(path: Path, line: int, row: list[str], numeric: list[int]) -> InputError:
    """The error for the row's first column that is not a finite number."""
    for column, n in zip((c for c in COLUMNS if c != "symbol"), numeric, strict=True):
        try:
            value = float(row[n])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            return InputError(f"{path}:{line}: {column} must be a number, got {row[n]!r}")
    return InputError(f"{path}:{line}: not a bar: {','.join(row)}")


def strategy_params(raw: str) -> dict[str, float]:
    """--params: a JSON object of numbers, as QS_STRATEGY_PARAMS."""
    try:
        loaded = json.loads(raw)
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in loaded.values()):
        raise InputError(f'--params must be a JSON object of numbers, e.g. \'{{"fast": 5, "slow": 20}}\', got {raw!r}')
    return {str(k): float(v) for k, v in loaded.items()}


def run(
    bars_file: Path,
    *,
    strategy: str | None = None,
    params: Mapping[str, float] | None = None,
    market: str = "equity",
    lookback: int = LOOKBACK,
) -> dict[str, Any]:
    """Replay `bars_file` through the strategy the installed release names (or `strategy`; `params` over
    the release's own when it is the release's strategy), checked first; the `python -m quantshift_bot replay` document."""
    if market not in MARKETS:
        raise InputError(f"market must be one of {', '.join(MARKETS)}, got {market!r}")
    if not MIN_LOOKBACK <= lookback <= MAX_LOOKBACK:
        raise InputError(f"lookback must be between {MIN_LOOKBACK} and {MAX_LOOKBACK} bars (as QS_BARS_LOOKBACK), got {lookback}")
    release_name, release_params = _release_strategy()
    name = strategy or release_name
    merged = (dict(release_params) if name == release_name else {}) | dict(params or {})
    checked = check(load(name, merged), name, lookback)
    bars = read_bars(bars_file)
    result = replay(bars, checked, lookback=lookback, sizing=Sizing(fractional=MARKETS[market]))
    return {
        "release": _installed_release(),
        "strategy": {"name": name, "params": merged},
        "market": market,
        "symbols": sorted(bars),
        "bars": result.bars,
        "first": min(rows[0].t for rows in bars.values()),
        "last": max(rows[-1].t for rows in bars.values()),
        "seconds": round(result.seconds, 6),
        "bars_per_second": round(result.bars / result.seconds) if result.seconds > 0 else None,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "skipped": result.skipped,
        "orders": result.order_docs(),
        "trades": result.trade_docs(),
    }


def command(args: argparse.Namespace) -> int:
    """`python -m quantshift_bot replay`: the document as JSON to --out, else stdout."""
    params = strategy_params(args.params) if args.params is not None else None
    doc = run(args.bars, strategy=args.strategy, params=params, market=args.market, lookback=args.lookback)
    text = json.dumps(doc, indent=2)
    if args.out is None:
        print(text)
        return EXIT_OK
    try:
        args.out.write_text(text + "\n")
    except OSError as err:
        raise UserError(f"cannot write the replay to {args.out} ({err.strerror})") from None
    return EXIT_OK
