"""The replay (bot/quantshift_bot/replay.py): bars from a CSV through a strategy with a simulated broker, sized as the engine sizes."""

from __future__ import annotations

import csv
import json
import math
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from quantshift_bot import compare, config
from quantshift_bot.brokers.sim import SimBroker
from quantshift_bot.engine import SIZING_TRADES, Engine, buy_quantity
from quantshift_bot.models import Bar, Position, Signal, Trade
from quantshift_bot.replay import Sizing, read_bars, replay
from quantshift_bot.state import State
from quantshift_bot.strategy import check
from quantshift_ma_cross import MovingAverageCross
from tests import ROOT

PARAMS = {"fast": 3.0, "slow": 12.0}


def write_walk(path: Path, symbols: Sequence[str] = ("AAA", "BBB", "CCC"), minutes: int = 2 * 1440, seed: int = 11) -> Path:
    """A seeded random walk per symbol as the lab's bar CSV, rows shuffled (the replay sorts them)."""
    rng, rows = random.Random(seed), []
    start = 1_767_225_600
    for k, symbol in enumerate(symbols):
        price = 100.0 + 37 * k
        for i in range(minutes):
            close = round(price * math.exp(0.0004 * math.sin(i / 90 + k) + rng.gauss(0, 0.002)), 4)
            rows.append(
                (start + 60 * i, symbol, price, round(max(price, close) * 1.0005, 4), round(min(price, close) * 0.9995, 4), close, 500)
            )
            price = close
    rng.shuffle(rows)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("t", "symbol", "o", "h", "l", "c", "v"))
        out.writerows(rows)
    return path


def _sma(values: Sequence[float], n: int) -> float:
    return sum(values[-n:]) / n


class Inverted:
    """ma_cross turned around: long when the fast SMA crosses below the slow one, out on the cross back up."""

    def __init__(self, fast: int = 3, slow: int = 12) -> None:
        self.fast, self.slow = fast, slow

    @property
    def warmup(self) -> int:
        return self.slow + 1

    def protection(self, entry: float) -> tuple[float | None, float | None]:
        return None, None

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        if len(bars) < self.warmup:
            return None
        closes = [b.c for b in bars[-(self.slow + 1) :]]
        now = _sma(closes, self.fast) - _sma(closes, self.slow)
        before = _sma(closes[:-1], self.fast) - _sma(closes[:-1], self.slow)
        last = bars[-1]
        if before >= 0 > now and position is None:
            return Signal(symbol, "buy", last.c, "SMA cross down", last.t)
        if before <= 0 < now and position is not None:
            return Signal(symbol, "sell", last.c, "SMA cross up", last.t)
        return None


class Spy:
    """Buys when flat on every 7th minute and adds the minute after, sells 3 bars after its last buy;
    remembers what it was given."""

    warmup = 1

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Bar], Position | None]] = []

    def protection(self, entry: float) -> tuple[float | None, float | None]:
        return entry * 0.9, entry * 1.1

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        self.calls.append((symbol, list(bars), position))
        last = bars[-1]
        if position is None and last.t // 60 % 7 == 0:
            return Signal(symbol, "buy", last.c, "spy buy", last.t, *self.protection(last.c))
        if position is not None and last.t // 60 % 7 == 1:
            return Signal(symbol, "buy", last.c, "spy add", last.t, *self.protection(last.c))
        if position is not None and last.t - position.opened_at >= 180:
            return Signal(symbol, "sell", last.c, "spy sell", last.t)
        return None


def test_the_strategy_gets_the_engine_inputs_and_fills_are_booked(tmp_path: Path) -> None:
    bars = read_bars(write_walk(tmp_path / "bars.csv", minutes=120))
    spy = Spy()
    result = replay(bars, spy, lookback=20)
    # one decision per bar, minute by minute, symbols in order within a minute
    assert [(w[-1].t, s) for s, w, _ in spy.calls] == sorted((b.t, s) for s, rows in bars.items() for b in rows)
    for symbol, window, position in spy.calls:
        rows = bars[symbol]
        end = rows.index(window[-1]) + 1
        assert window == rows[max(0, end - 20) : end]  # the latest `lookback` bars, oldest first
        if position is not None:  # as the engine books fills: the buys since the last sell, at their average price,
            # opened at the latest buy, with its stop and target
            before = [o for o in result.orders if o.symbol == symbol and o.time < window[-1].t]
            buys = before[max((n + 1 for n, o in enumerate(before) if o.side == "sell"), default=0) :]
            assert buys and all(o.side == "buy" for o in buys)
            assert position.qty == pytest.approx(sum(o.qty for o in buys)) and position.opened_at == buys[-1].time
            assert position.entry_price == pytest.approx(sum(o.qty * o.price for o in buys) / sum(o.qty for o in buys))
            assert position.stop_loss == pytest.approx(buys[-1].price * 0.9) and position.take_profit == pytest.approx(buys[-1].price * 1.1)
    assert result.bars == 360 and len(spy.calls) == 360 and any(o.reason == "spy add" for o in result.orders)
    sells = [o for o in result.orders if o.side == "sell"]
    assert sells and len(result.trades) == len(sells)
    for order, trade in zip(sells, result.trades, strict=True):  # a sell closes the whole position at its price
        assert (trade.symbol, trade.qty, trade.exit_price, trade.closed_at) == (order.symbol, order.qty, order.price, order.time)
        bought = [o for o in result.orders if o.symbol == order.symbol and trade.opened_at - 60 <= o.time <= trade.opened_at]
        assert order.qty == pytest.approx(sum(o.qty for o in bought if o.side == "buy"))
        assert trade.closed_at - trade.opened_at == 180
    first_buy = result.orders[0]
    assert first_buy.side == "buy" and first_buy.qty == math.floor(10_000 / first_buy.price)  # prior Kelly capped by max_position


def test_the_same_strategy_twice_gives_the_same_orders_and_trades_and_compare_reads_them(tmp_path: Path) -> None:
    bars = read_bars(write_walk(tmp_path / "bars.csv"))
    one = replay(bars, MovingAverageCross.from_params(PARAMS))
    two = replay(bars, MovingAverageCross.from_params(PARAMS))
    assert len(one.trades) >= 20 and one.order_docs() == two.order_docs() and one.trade_docs() == two.trade_docs()
    for doc in one.trade_docs():
        assert doc["pnl"] == pytest.approx((doc["exit_price"] - doc["entry_price"]) * doc["qty"])
    settings = compare.Settings(min_trades=5, min_intervals=5)
    same = compare.compare(one.trade_docs(), two.trade_docs(), settings, one.order_docs(), two.order_docs())
    assert same.agreement == 1.0 and same.verdict.result == "pass" and same.shadow.trades == len(one.trades)


def test_an_inverted_strategy_trades_differently(tmp_path: Path) -> None:
    bars = read_bars(write_walk(tmp_path / "bars.csv"))
    check(Inverted(), "inverted", 60)  # it keeps the contract: the difference is its signals alone
    straight = replay(bars, MovingAverageCross.from_params(PARAMS | {"stop_loss": 0.5, "take_profit": 9.0}))
    inverted = replay(bars, Inverted())
    assert len(straight.trades) >= 20 and len(inverted.trades) >= 20
    buys = {(o.symbol, o.time) for o in straight.orders if o.side == "buy"}
    inverted_buys = {(o.symbol, o.time) for o in inverted.orders if o.side == "buy"}
    assert not buys & inverted_buys  # a cross up and a cross down never fall on the same bar
    # Each inverted buy is a bar where the straight strategy, holding, sells; each inverted sell one where, flat, it buys.
    plain = MovingAverageCross.from_params(PARAMS | {"stop_loss": 0.5, "take_profit": 9.0})
    for order in inverted.orders:
        rows = bars[order.symbol]
        end = next(i for i, bar in enumerate(rows) if bar.t == order.time) + 1
        holding = Position(order.symbol, 1.0, order.price) if order.side == "buy" else None
        mirror = plain.decide(order.symbol, rows[max(0, end - 60) : end], holding)
        assert mirror is not None and mirror.side == ("sell" if order.side == "buy" else "buy"), order
    settings = compare.Settings(min_trades=5, min_intervals=5)
    versus = compare.compare(inverted.trade_docs(), straight.trade_docs(), settings, inverted.order_docs(), straight.order_docs())
    assert versus.agreement is not None and versus.agreement < 0.5


class Saw:
    """On a sawtooth 100, 101, 102, 103, 100...: buys at 100, sells at 102. It always wins."""

    warmup = 1

    def protection(self, entry: float) -> tuple[float | None, float | None]:
        return None, None

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        last = bars[-1]
        if last.c == 100 and position is None:
            return Signal(symbol, "buy", last.c, "low", last.t)
        if last.c == 102 and position is not None:
            return Signal(symbol, "sell", last.c, "high", last.t)
        return None


def test_replay_sizes_on_the_latest_500_trades() -> None:
    """Kelly of the equity the latest SIZING_TRADES trades left, the prior before PRIOR_TRADES: computed here
    on its own, without quantshift_bot.engine, over more than 500 trades."""
    bars = {"SAW": [Bar(60 * i, 100.0 + i % 4, 103.0, 100.0, 100.0 + i % 4, 1.0) for i in range(4 * 520)]}
    result = replay(bars, Saw(), sizing=Sizing(start_equity=10_000.0, max_position=1e12, max_exposure=1e12))
    assert len(result.trades) == 520 and result.skipped == 0
    closed: list[float] = []
    for order in result.orders:
        if order.side == "sell":
            closed.append((order.price - 100.0) * order.qty)
            continue
        recent = closed[-500:]
        w = (len(recent) + 0.55 * 10) / (len(recent) + 10)  # always winning, shrunk toward the prior (10 trades of 55 %)
        kelly = w - (1 - w) / 2.0  # no loss yet: the payoff is the prior's 2
        assert order.qty == math.floor((10_000.0 + sum(recent)) * 0.5 * kelly / order.price), len(closed)
    assert [t.pnl for t in result.trades] == closed


def expected_quantity(
    pnls: list[float], held: dict[str, tuple[float, float]], prices: dict[str, float], price: float, fractional: bool, size_factor: float
) -> float:
    """The sizing rule written out on its own: Kelly f = W - (1 - W) / R with the journal's win rate W and
    payoff R shrunk toward the prior (55 %, 2.0) as if it were 10 more trades, half Kelly of start equity
    plus pnl, capped at 10,000 per symbol and at the room under 50,000, times the size factor."""
    recent = pnls[-500:]
    n, wins, losses = len(recent), [p for p in recent if p > 0], [-p for p in recent if p < 0]
    observed_w = len(wins) / n if n else 0.0
    observed_r = (sum(wins) / len(wins)) / (sum(losses) / len(losses)) if wins and losses else 2.0
    w = (observed_w * n + 0.55 * 10) / (n + 10)
    r = (observed_r * n + 2.0 * 10) / (n + 10)
    kelly = max(0.01, w - (1 - w) / r)  # never below the probe size
    room = 50_000.0 - sum(q * prices.get(s, e) for s, (q, e) in held.items())
    qty = min((97_531.25 + sum(recent)) * 0.5 * kelly, 10_000.0, max(room, 0.0)) * size_factor / price
    return math.floor(qty * 1e6) / 1e6 if fractional else float(math.floor(qty))


# journal pnls, positions (qty, entry), last prices, buy price, fractional broker, mode
SIZING_CASES: dict[str, tuple[list[float], dict[str, tuple[float, float]], dict[str, float], float, bool, str]] = {
    "prior Kelly, fractional": ([], {}, {}, 123.4567, True, "shadow"),
    "prior Kelly, whole shares": ([], {}, {}, 123.4567, False, "shadow"),
    "win rate and payoff from the journal": ([12.0, -10.0] * 7 + [3.5], {}, {}, 57.31, True, "shadow"),
    "the equity the journal left": ([-5000.0] * 3 + [4000.0], {}, {}, 45.67, False, "shadow"),
    "few trades: mostly the prior": ([12.0, -10.0] * 4 + [3.5], {}, {}, 57.31, True, "shadow"),
    "exposure room at last prices": ([], {"BBB": (300.0, 90.0), "CCC": (100.0, 50.0)}, {"BBB": 140.0}, 33.3, False, "shadow"),
    "canary size factor": ([12.0, -10.0] * 10, {}, {}, 211.11, True, "canary"),
    "no edge: the probe size": ([-5.0] * 8 + [1.0] * 4, {}, {}, 10.0, True, "shadow"),
    "only the last 500 trades": ([-50.0] * 100 + [12.0, -10.0] * 250, {}, {}, 77.7, True, "shadow"),
    "ten losses first: smaller, not zero": ([-20.0] * 6 + [60.0] * 4, {}, {}, 50.0, False, "shadow"),
}


@pytest.mark.parametrize("case", sorted(SIZING_CASES))
def test_buy_quantity_sizes_as_engine_act_did(case: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pnls, held, prices, price, fractional, mode = SIZING_CASES[case]
    client = redis.Redis.from_url(redis_url)
    cfg = config.load(
        {"QS_MODE": mode, "QS_BROKER": "sim", "QS_SYMBOLS": "AAA,BBB,CCC", "QS_ACCOUNT_ID": "sizing", "QS_REDIS_URL": redis_url}
    )
    broker = SimBroker(("AAA", "BBB", "CCC"))
    broker.fractional = fractional
    engine = Engine(cfg, broker, client)
    engine.start_equity, engine.prices = 97_531.25, dict(prices)
    journal = State(client, cfg.state_account)
    trades = [Trade("BBB", 1.0, 100.0, 100.0 + p, float(i), float(i + 1), "t") for i, p in enumerate(pnls)]
    for trade in trades:
        journal.journal(trade)
    sent: list[Any] = []
    monkeypatch.setattr(engine, "_would_be", sent.append)
    monkeypatch.setattr(engine, "_send", sent.append)
    positions = {s: Position(s, q, e) for s, (q, e) in held.items()}
    engine.act(Signal("AAA", "buy", price, "test", 60), None, positions)
    expected = expected_quantity(pnls, held, prices, price, fractional, cfg.size_factor)
    assert (sent[0].qty if sent else 0.0) == expected
    assert expected > 0  # a probe size at least, never a stop for good
    quantity = buy_quantity(
        price,
        [t.pnl for t in trades][-SIZING_TRADES:],
        positions,
        prices,
        start_equity=97_531.25,
        kelly_fraction=cfg.kelly_fraction,
        max_position=cfg.max_position,
        max_exposure=cfg.max_exposure,
        size_factor=cfg.size_factor,
        fractional=fractional,
    )
    assert quantity == expected


def test_replay_orders_what_a_shadow_engine_orders_on_the_same_bars(redis_url: str) -> None:
    """The engine ticking once a bar in shadow mode (instant fills at the decision price) and the replay of
    its bars: the same orders, quantities and trades. A tight exposure limit makes the room bind when two
    symbols buy in the same minute, where the engine sizes on the positions it read when the tick began."""
    symbols = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
    env = {
        "QS_MODE": "shadow",
        "QS_BROKER": "sim",
        "QS_SYMBOLS": ",".join(symbols),
        "QS_ACCOUNT_ID": "faithful",
        "QS_REDIS_URL": redis_url,
        "QS_STRATEGY_PARAMS": '{"fast": 2, "slow": 5}',
        "QS_MAX_POSITION": "6000",
        "QS_MAX_EXPOSURE": "13000",
    }
    broker = SimBroker(symbols)
    engine = Engine(config.load(env), broker, redis.Redis.from_url(redis_url))
    engine.start_equity = broker.equity()
    first = len(broker.bars(symbols, 10**6)["AAA"])  # the bars the broker had before the engine's first tick
    for _ in range(600):
        broker.step()
        engine.tick()
    history = broker.bars(symbols, 10**6)
    sizing = Sizing(start_equity=engine.start_equity, max_position=6000, max_exposure=13000, fractional=broker.fractional)
    result = replay(history, MovingAverageCross.from_params({"fast": 2, "slow": 5}), sizing=sizing, since=history["AAA"][first].t)
    would_be = [(w["symbol"], w["side"], w["qty"], w["price"]) for w in engine.state.would_be_orders()]
    assert len(would_be) >= 10
    assert [(o.symbol, o.side, o.qty, o.price) for o in result.orders] == would_be
    same_minute = [t for t in {o.time for o in result.orders} if sum(o.time == t and o.side == "buy" for o in result.orders) > 1]
    assert same_minute  # the case the tick's position snapshot decides
    journal = engine.state.trades()
    assert [(t["symbol"], t["qty"], t["pnl"]) for t in journal] == [(t.symbol, t.qty, t.pnl) for t in result.trades]


def _bot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantshift_bot", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_replays_a_file_into_one_json_document(tmp_path: Path) -> None:
    bars_file, out = write_walk(tmp_path / "bars.csv"), tmp_path / "replay.json"
    proc = _bot("replay", "--bars", str(bars_file), "--params", json.dumps(PARAMS), "--market", "crypto", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    bars = read_bars(bars_file)
    expected = replay(bars, MovingAverageCross.from_params(PARAMS), sizing=Sizing(fractional=True))
    assert doc["release"] == config._installed_release()
    assert doc["strategy"]["name"] == config._release_strategy()[0] and doc["strategy"]["params"] == config._release_strategy()[1] | PARAMS
    assert (doc["market"], doc["symbols"], doc["bars"]) == ("crypto", ["AAA", "BBB", "CCC"], 3 * 2 * 1440)
    assert (doc["first"], doc["last"]) == (1_767_225_600, 1_767_225_600 + 60 * (2 * 1440 - 1))
    assert doc["seconds"] > 0 and doc["bars_per_second"] > 0 and doc["peak_rss_kb"] > 0
    assert doc["orders"] == expected.order_docs() and doc["trades"] == expected.trade_docs()
    assert any(o["qty"] != int(o["qty"]) for o in doc["orders"])  # crypto trades fractions


BAD_CSV = {
    "missing column": ("t,symbol,o,h,l,c\n1767225600,AAA,1,1,1,1\n", "no column v"),
    "not a number": ("t,symbol,o,h,l,c,v\n1767225600,AAA,1,1,1,1,5\n1767225660,AAA,1,1,1,abc,5\n", "bars.csv:3: c must be a number"),
    "nan": ("t,symbol,o,h,l,c,v\n1767225600,AAA,1,1,1,nan,5\n", "bars.csv:2: c must be a number"),
    "short row": ("t,symbol,o,h,l,c,v\n1767225600,AAA,1,1\n", "bars.csv:2: 4 field(s)"),
    "two bars a minute": ("t,symbol,o,h,l,c,v\n1767225600,AAA,1,1,1,1,5\n1767225630,AAA,1,1,1,1,5\n", "two bars for AAA"),
    "empty": ("", "empty file"),
    "header only": ("t,symbol,o,h,l,c,v\n", "no bars"),
    "price zero": ("t,symbol,o,h,l,c,v\n1767225600,AAA,1,1,1,0,5\n", "bars.csv:2:"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_a_bad_csv_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    content, says = BAD_CSV[case]
    bars_file = tmp_path / "bars.csv"
    bars_file.write_text(content)
    proc = _bot("replay", "--bars", str(bars_file))
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bars", "/nonexistent/bars.csv"], "no such file"),
        (["--params", "not json"], "--params must be a JSON object of numbers"),
        (["--params", '{"fast": 9, "slow": 3}'], "refuses its parameters"),
        (["--strategy", "no_such_strategy"], "is not installed"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    bars_file = write_walk(tmp_path / "bars.csv", minutes=30)
    proc = _bot("replay", "--bars", str(bars_file), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr
