"""The bot's parts with a real Redis and the in-process sim broker: config, strategy, sizing, lease, engine, metrics."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import redis

from quantshift_bot import config, metrics
from quantshift_bot.brokers.base import BrokerError
from quantshift_bot.brokers.sim import SimBroker
from quantshift_bot.engine import Engine
from quantshift_bot.lease import LeaseSet
from quantshift_bot.models import Bar, Mode, OrderRequest, Position
from quantshift_bot.strategy import kelly, position_size
from quantshift_ma_cross import MovingAverageCross
from tests.botkit import ROOT

BASE = {
    "QS_MODE": "live",
    "QS_BROKER": "sim",
    "QS_SYMBOLS": "AAA,BBB",
    "QS_ACCOUNT_ID": "acct",
    "QS_STRATEGY_PARAMS": '{"fast": 2, "slow": 5}',
}


def cfg(redis_url: str, **over: str) -> config.BotConfig:
    return config.load(BASE | {"QS_REDIS_URL": redis_url, "QS_LEASE_TTL_MS": "1000"} | over)


def test_config_names_every_bad_setting() -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(
            {
                "QS_MODE": "yolo",
                "QS_BROKER": "alpaca",
                "QS_SYMBOLS": "aapl,$$",
                "QS_KELLY_FRACTION": "2",
                "QS_STRATEGY_PARAMS": '{"fast": 9, "slow": 3}',
                "ALPACA_TRADING_URL": "http://x/v2",
                "QS_CLOSE_ON_SHUTDOWN": "maybe",
            }
        )
    text = str(err.value)
    for name in (
        "QS_MODE",
        "QS_SYMBOLS",
        "QS_ACCOUNT_ID",
        "QS_KELLY_FRACTION",
        "QS_STRATEGY_PARAMS",
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
        "ALPACA_TRADING_URL",
        "QS_CLOSE_ON_SHUTDOWN",
    ):
        assert name in text, name


def test_bad_config_exits_2_before_connecting_and_hides_secrets() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "QS_MODE": "live",
        "QS_BROKER": "alpaca",
        "QS_SYMBOLS": "AAPL",
        "QS_ACCOUNT_ID": "a",
        "ALPACA_API_KEY": "KEYID",
        "ALPACA_SECRET_KEY": "super-secret-value",
        "QS_MAX_POSITION": "lots",
        "QS_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "quantshift_bot", "run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2 and "QS_MAX_POSITION" in proc.stderr
    assert "super-secret-value" not in proc.stdout + proc.stderr
    assert time.monotonic() - began < 10
    assert "super-secret-value" not in repr(config.load(env | {"QS_MAX_POSITION": "100", "QS_MAX_EXPOSURE": "1000"}))


def _bars(closes: list[float]) -> list[Bar]:
    return [Bar(60 * i, c, c, c, c, 1) for i, c in enumerate(closes)]


def test_moving_average_cross_signals_and_exits() -> None:
    s = MovingAverageCross(fast=2, slow=4, stop_loss=0.05, take_profit=0.1)
    assert s.decide("X", _bars([10, 10, 10, 10, 10]), None) is None
    buy = s.decide("X", _bars([10, 10, 10, 10, 9, 12]), None)
    assert buy is not None and buy.side == "buy" and buy.stop_loss == pytest.approx(12 * 0.95) and buy.take_profit == pytest.approx(13.2)
    held = Position("X", 5, 12, stop_loss=11.4, take_profit=13.2)
    assert s.decide("X", _bars([10, 10, 10, 10, 9, 12]), held) is None  # already long: no second buy
    stop = s.decide("X", _bars([10, 10, 10, 10, 12, 11]), held)
    assert stop is not None and stop.side == "sell" and "stop loss" in stop.reason
    cross_down = s.decide("X", _bars([12, 12, 12, 12, 12.5, 11]), Position("X", 5, 11.6, 1.0, 99.0))
    assert cross_down is not None and cross_down.side == "sell" and "crossed below" in cross_down.reason


def test_kelly_and_position_size() -> None:
    assert kelly(0.6, 2.0) == pytest.approx(0.4)
    assert kelly(0.3, 1.0) == 0.0
    common: dict[str, Any] = {"equity": 100_000, "price": 50.0, "win_rate": 0.6, "payoff": 2.0, "kelly_fraction": 0.5, "fractional": False}
    assert position_size(**common, max_position=1e9, room=1e9, size_factor=1.0) == 400  # 0.5 * 0.4 * 100k / 50
    assert position_size(**common, max_position=5_000, room=1e9, size_factor=1.0) == 100
    assert position_size(**common, max_position=5_000, room=1_000, size_factor=1.0) == 20
    assert position_size(**common, max_position=5_000, room=1e9, size_factor=0.1) == 10  # canary
    assert position_size(**common | {"win_rate": 0.2}, max_position=5_000, room=1e9, size_factor=1.0) == 0


def test_lease_single_writer_handover_and_fail_closed(redis_url: str, redis_server: Any) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    a = LeaseSet(client, "acct", ("AAA",), "bot-a", 600)
    b = LeaseSet(client, "acct", ("AAA",), "bot-b", 600)
    a.refresh()
    b.refresh()
    assert a.held() == ["AAA"] and b.held() == []
    token_a = a.leases["AAA"].token
    b.start()
    a.release_all()
    began = time.monotonic()
    while not b.held() and time.monotonic() - began < 2:
        time.sleep(0.005)
    assert b.held() == ["AAA"] and time.monotonic() - began < 0.3  # handed over in milliseconds
    assert b.leases["AAA"].token > token_a  # a new tenure, a new fencing token
    assert not a.confirm("AAA")  # the old owner can never renew what is no longer its own
    redis_server.stop()
    try:
        assert not b.confirm("AAA")  # Redis gone: no confirmation, no order
        time.sleep(0.6)
        assert b.held() == [] and not b.redis_ok
    finally:
        b.release_all()
        redis_server.start()


def _engine(redis_url: str, broker: SimBroker, **over: str) -> Engine:
    c = cfg(redis_url, **over)
    e = Engine(c, broker, redis.Redis.from_url(redis_url))
    e.start_equity = broker.equity()
    assert e.leases is None or (e.leases.refresh() or True)
    return e


def _run_ticks(engine: Engine, broker: SimBroker, n: int) -> None:
    for _ in range(n):
        broker.step()
        engine.tick()


def test_live_trades_shadow_never_orders_canary_scales(redis_url: str) -> None:
    live_broker = SimBroker(("AAA", "BBB"))
    live = _engine(redis_url, live_broker)
    _run_ticks(live, live_broker, 300)
    assert live_broker.submits > 0 and live.state.trades()

    shadow_broker = SimBroker(("AAA", "BBB"))
    shadow = _engine(redis_url, shadow_broker, QS_MODE="shadow")
    _run_ticks(shadow, shadow_broker, 300)
    assert shadow_broker.submits == 0
    would = shadow.state.would_be_orders()
    assert would and {"time", "symbol", "side", "qty", "price", "reason"} <= set(would[0])
    # same market, same strategy: the shadow would have done exactly what live did
    assert [(w["symbol"], w["side"], w["qty"]) for w in would] == [(o.symbol, o.side, o.qty) for o in live_broker.orders.values()]

    canary_broker = SimBroker(("AAA", "BBB"))
    canary = _engine(redis_url, canary_broker, QS_MODE="canary", QS_ACCOUNT_ID="acct2", QS_CANARY_FRACTION="0.1", QS_LEASE_SYMBOLS="AAA")
    _run_ticks(canary, canary_broker, 300)
    buys = [o for o in canary_broker.orders.values() if o.side == "buy"]
    assert buys and {o.symbol for o in canary_broker.orders.values()} == {"AAA"}  # only its slice
    live_aaa = [o.qty for o in live_broker.orders.values() if o.symbol == "AAA" and o.side == "buy"]
    assert max(o.qty for o in buys) <= max(live_aaa) * 0.1 + 1e-6


def test_restart_recovers_positions_and_never_doubles(redis_url: str) -> None:
    broker = SimBroker(("AAA", "BBB"))
    first = _engine(redis_url, broker)
    for _ in range(400):
        broker.step()
        first.tick()
        if first.state.positions():
            break
    held = first.state.positions()
    assert held
    sent = broker.submits
    # a crash: the process is gone without a shutdown, its lease still in Redis until the TTL ends
    time.sleep(1.1)
    second = _engine(redis_url, broker)
    second.tick()  # same bar again: the same decision id must not be sent twice
    assert second.state.positions().keys() == held.keys()
    assert broker.submits == sent
    # an order written as intent but lost before reaching the broker is never resent, and its id is
    # fenced at the broker (a canceled limit order holds it) so whoever wrote it can never send it
    from quantshift_bot.models import OrderRequest

    second.state.record_intent(OrderRequest("qs-acct-AAA-1-buy", "AAA", "buy", 1, 1, "lost"), "live", "r")
    second._sync_orders({"AAA"})
    assert second.state.orders()["qs-acct-AAA-1-buy"]["status"] == "fenced" and broker.submits == sent
    fence = broker.orders["qs-acct-AAA-1-buy"]
    assert (fence.type, fence.status, fence.filled_qty) == ("limit", "canceled", 0.0)


def test_metric_formulas() -> None:
    pnls = [100.0, -50.0, 200.0, -50.0]
    assert metrics.win_rate(pnls) == 0.5
    assert metrics.profit_factor(pnls) == 3.0
    assert metrics.profit_factor([1.0]) == math.inf
    assert metrics.max_drawdown(1000, [100, -550, 100]) == pytest.approx(0.5)
    assert metrics.sharpe([0.01, 0.03], 252) == pytest.approx(0.02 / 0.0141421356 * math.sqrt(252), rel=1e-6)
    assert metrics.payoff(pnls) == pytest.approx(3.0)


def test_latencies_are_histograms_in_seconds() -> None:
    c = metrics.Counters()
    for seconds in (0.003, 0.004, 0.2, 30.0):
        c.order(seconds)
    # Bucket counts per bound (not cumulative here): 2 within 5 ms, 1 within 250 ms, 1 above the last bound.
    assert c.order_buckets[metrics.ORDER_BUCKETS.index(0.005)] == 2
    assert c.order_buckets[metrics.ORDER_BUCKETS.index(0.25)] == 1 and c.order_buckets[-1] == 1
    assert c.order_seconds == pytest.approx(30.207) and sum(c.order_buckets) == 4
    c.call(True)
    c.call(False)
    assert (c.calls_total, c.errors_total, c.error_rate) == (2, 1, 0.5)
    assert {"quantshift_order_latency_seconds_bucket", "quantshift_ticks_total", "quantshift_build_info"} <= metrics.exported_series()
    assert "quantshift_order_latency_seconds" not in metrics.exported_series()  # a histogram is its _bucket, _sum and _count


def test_mode_enum_covers_config() -> None:
    assert {m.value for m in Mode} == {"paper", "shadow", "canary", "live"}


def test_primary_yields_a_slice_to_the_canary_and_takes_it_back(redis_url: str) -> None:
    import subprocess
    import sys

    client = redis.Redis.from_url(redis_url)
    primary = LeaseSet(client, "acct", ("AAA", "BBB"), "primary", 1000, yields=True)
    canary = LeaseSet(client, "acct", ("AAA",), "canary", 1000)
    primary.refresh()
    canary.refresh()
    assert primary.held() == ["AAA", "BBB"] and canary.held() == []

    def lease(*args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "quantshift", "bot", "lease", *args, "--redis-url", redis_url, "--account", "acct"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    assert lease("yield", "--symbols", "AAA")["yielded"] == ["AAA"]
    primary.refresh()  # the primary's next heartbeat lets go
    canary.refresh()
    assert primary.held() == ["BBB"] and canary.held() == ["AAA"]
    assert lease("show")["holders"] == {"AAA": "canary", "BBB": "primary"}
    lease("reclaim", "--symbols", "AAA")
    canary.release_all()
    primary.refresh()
    assert primary.held() == ["AAA", "BBB"]


def test_two_bots_starting_together_never_split_the_account(redis_url: str) -> None:
    import threading

    client = redis.Redis.from_url(redis_url)
    for attempt in range(20):
        client.flushall()
        a = LeaseSet(client, "acct", ("AAA", "BBB", "CCC"), "bot-a", 1000)
        b = LeaseSet(client, "acct", ("AAA", "BBB", "CCC"), "bot-b", 1000)
        threads = [threading.Thread(target=x.refresh) for x in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted([a.held(), b.held()]) == [[], ["AAA", "BBB", "CCC"]], attempt


class _Exploding(MovingAverageCross):
    def decide(self, symbol: str, bars: Any, position: Position | None) -> Any:
        raise RuntimeError("a bug in the strategy")


class _LateBroker(SimBroker):
    """The first submit reaches the broker but its answer is lost (a timeout); the retry is refused as a repeat."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        super().__init__(symbols)
        self.lost = 0

    def submit(self, req: Any) -> Any:
        order = super().submit(req)
        if self.lost == 0:
            self.lost += 1
            raise BrokerError("order: ReadTimeout")
        return order


def test_an_order_whose_answer_was_lost_is_adopted_not_doubled_or_orphaned(redis_url: str) -> None:
    broker = _LateBroker(("AAA", "BBB"))
    engine = _engine(redis_url, broker, QS_MAX_RETRIES="2")
    req = OrderRequest("qs-acct-AAA-1-buy", "AAA", "buy", 1.0, 100.0, "test")
    engine._send(req)
    assert broker.submits == 2 and len(broker.orders) == 1  # retried once, refused as a repeat: one order
    doc = engine.state.orders()["qs-acct-AAA-1-buy"]
    assert doc["status"] == "filled" and doc["broker_id"] == broker.orders["qs-acct-AAA-1-buy"].id
    assert engine.state.positions()["AAA"].qty == 1.0  # the fill counted once


def test_a_bug_crashes_the_bot_but_hands_its_leases_back_at_once(redis_url: str) -> None:
    broker = SimBroker(("AAA", "BBB"))
    c = cfg(redis_url, QS_TICK_SECONDS="0.05", QS_LEASE_TTL_MS="60000")
    engine = Engine(c, broker, redis.Redis.from_url(redis_url), strategy=_Exploding.from_params(c.strategy_params))
    with pytest.raises(RuntimeError, match="a bug in the strategy"):
        engine.run()
    client = redis.Redis.from_url(redis_url)
    # Released, not left to expire after the 60 s TTL: a release taking over gets them at once.
    assert client.get("qs:lease:acct:AAA") is None and client.get("qs:lease:acct:BBB") is None


def test_taking_a_lease_wakes_the_trading_loop(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    holder = LeaseSet(client, "acct", ("AAA", "BBB"), "old", 60000)
    holder.refresh()
    broker = SimBroker(("AAA", "BBB"))
    engine = _engine(redis_url, broker, QS_TICK_SECONDS="30")  # a long tick: only the wake makes it decide soon
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        assert engine.last_decision_at is None  # in standby: the old holder trades
        released = time.time()
        holder.release_all()
        began = time.monotonic()
        while engine.last_decision_at is None and time.monotonic() - began < 5:
            time.sleep(0.005)
        assert engine.last_decision_at is not None and engine.last_decision_at - released < 1.0
    finally:
        engine.request_stop()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_every_state_write_is_fenced_by_the_lease_tenure(redis_url: str) -> None:
    from quantshift_bot.models import Trade
    from quantshift_bot.state import Fenced

    client = redis.Redis.from_url(redis_url)
    broker = SimBroker(("AAA", "BBB"))
    old = _engine(redis_url, broker)
    assert old.leases is not None and old.leases.held() == ["AAA", "BBB"]
    # Paused past its TTL: its keys expire and another bot takes them. Nothing has told the old one yet.
    client.delete("qs:lease:acct:AAA", "qs:lease:acct:BBB")
    other = LeaseSet(client, "acct", ("AAA", "BBB"), "other", 1000)
    other.refresh()
    assert other.held() == ["AAA", "BBB"] and old.leases.fence("AAA") is not None
    late = [
        lambda: old.state.save_position(Position("AAA", 26, 100.0, None, None, time.time(), "late")),
        lambda: old.state.drop_position("BBB"),
        lambda: old.state.record_intent(OrderRequest("qs-acct-AAA-9-buy", "AAA", "buy", 1, 100.0, "late"), "live", "r1"),
        lambda: old.state.journal(Trade("AAA", 1, 100.0, 101.0, 0.0, 1.0, "late")),
    ]
    for write in late:
        with pytest.raises(Fenced):
            write()
    assert client.hlen("qs:acct:positions") == 0 and client.hlen("qs:acct:orders") == 0 and client.xlen("qs:acct:journal") == 0
    # The order path stops in Redis, before the broker, and the bot counts the symbol as lost.
    with pytest.raises(Fenced):
        old._send(OrderRequest("qs-acct-AAA-10-buy", "AAA", "buy", 1, 100.0, "late"))
    assert broker.submits == 0
    # A new tenure of the same owner is a new token: a write under the old value is refused too.
    mine = LeaseSet(client, "acct2", ("AAA",), "same", 1000)
    mine.refresh()
    stale = mine.fence("AAA")
    mine.release_all()
    mine = LeaseSet(client, "acct2", ("AAA",), "same", 1000)
    mine.refresh()
    assert stale is not None and mine.fence("AAA") is not None and mine.fence("AAA") != stale
    from quantshift_bot.state import State

    with pytest.raises(Fenced):
        State(client, "acct2", lambda _s: stale, 1000).save_position(Position("AAA", 1, 1.0, None, None, 0.0, "x"))


class _Hanging(MovingAverageCross):
    """A strategy stuck in its first decision until the test lets it go (the process stays up)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.let_go = threading.Event()

    def decide(self, symbol: str, bars: Any, position: Position | None) -> Any:
        self.let_go.wait()
        return None


def test_a_stuck_loop_stops_its_watchdog_hands_its_leases_back_and_reports_stalled(redis_url: str, tmp_path: Any) -> None:
    import socket

    from quantshift_bot.notify import Notifier

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(0.05)
    client = redis.Redis.from_url(redis_url)
    holder = LeaseSet(client, "acct", ("AAA", "BBB"), "old", 60000)
    holder.refresh()
    broker = SimBroker(("AAA", "BBB"))
    c = cfg(redis_url, QS_TICK_SECONDS="0.05", QS_LEASE_TTL_MS="60000", QS_STALL_TICKS="2")  # stalled after 1 s
    strategy = _Hanging.from_params(c.strategy_params)
    engine = Engine(c, broker, client, strategy=strategy)
    engine.notifier = Notifier(str(tmp_path / "notify"))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    received: list[tuple[float, str]] = []

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                received.append((time.monotonic(), listener.recv(4096).decode()))
            except TimeoutError:
                pass

    try:
        drain(0.5)  # in standby: ready once warm, then a watchdog ping per completed tick
        assert received and received[0][1].startswith("READY=1\nSTATUS=standby")
        assert sum("WATCHDOG=1" in m for _, m in received) >= 3 and engine.health()["status"] == "standby"
        holder.release_all()  # the leases come to the engine; its first decision hangs
        hung = time.monotonic()
        drain(2.0)
        assert not [m for t, m in received if t > hung + 0.2 and "WATCHDOG=1" in m]  # the watchdog starves
        health = engine.health()
        assert health["status"] == "stalled" and health["last_tick_age_s"] > 1.0 and health["lease"] == {"AAA": False, "BBB": False}
        # Handed back within the stall limit, not left to the 60 s TTL: another release takes the account.
        assert client.get("qs:lease:acct:AAA") is None and client.get("qs:lease:acct:BBB") is None
        other = LeaseSet(client, "acct", ("AAA", "BBB"), "next", 60000)
        other.refresh()
        assert other.held() == ["AAA", "BBB"]
    finally:
        engine.stop.set()  # no SIGTERM path here: a hard exit would end the test process
        strategy.let_go.set()
        thread.join(timeout=5)
        listener.close()
    assert not thread.is_alive()
