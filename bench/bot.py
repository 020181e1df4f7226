"""The bot: tick-to-decision latency per mode, shadow overhead, SIGTERM with 100 positions, lease handover gap."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import below, record
from quantshift_bot import config
from quantshift_bot.brokers.sim import SimBroker
from quantshift_bot.engine import Engine
from quantshift_bot.metrics import percentile
from tests import labkit
from tests.botkit import Bot, RedisServer, strategy_on_path

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def decision_latency(redis_url: str, ticks: int = 2000) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    tick_ms: dict[str, float] = {}
    for mode in ("live", "paper", "canary", "shadow"):
        redis.Redis.from_url(redis_url).flushall()
        cfg = config.load(
            {
                "QS_MODE": mode,
                "QS_BROKER": "sim",
                "QS_SYMBOLS": ",".join(SYMBOLS),
                "QS_ACCOUNT_ID": "bench",
                "QS_REDIS_URL": redis_url,
                "QS_STRATEGY_PARAMS": '{"fast": 3, "slow": 10}',
            }
        )
        broker = SimBroker(SYMBOLS)
        engine = Engine(cfg, broker, redis.Redis.from_url(redis_url))
        engine.start_equity = broker.equity()
        if engine.leases is not None:
            engine.leases.refresh()
        durations = []
        for _ in range(ticks):
            broker.step()
            began = time.perf_counter()
            engine.tick()
            durations.append((time.perf_counter() - began) * 1000)
        d = list(engine.counters.decision_ms)
        tick_ms[mode] = statistics.fmean(durations)
        figures += [
            {
                "name": f"tick-to-decision p50 ({mode}, {len(SYMBOLS)} symbols, sim broker, real Redis)",
                "value": round(percentile(d, 0.5), 3),
                "unit": "ms",
            },
            {
                "name": f"tick-to-decision p99 ({mode})",
                "value": round(percentile(d, 0.99), 3),
                "unit": "ms",
                "target": "< 5",
                "met": percentile(d, 0.99) < 5,
            },
        ]
    figures.append(
        {"name": "shadow overhead: mean tick time shadow / live", "value": round(tick_ms["shadow"] / tick_ms["live"], 2), "unit": "ratio"}
    )
    return figures


def _env(facts: dict[str, Any], redis_url: str, symbols: str, **over: str) -> dict[str, str]:
    keys = facts["alpaca"]["live"]
    return {
        "QS_MODE": "live",
        "QS_BROKER": "alpaca",
        "QS_SYMBOLS": symbols,
        "QS_ACCOUNT_ID": "bench",
        "QS_REDIS_URL": redis_url,
        "QS_METRICS_PORT": str(labkit.free_port()),
        "QS_TICK_SECONDS": "0.05",
        "QS_LEASE_TTL_MS": "2000",
        "QS_STRATEGY_PARAMS": '{"fast": 3, "slow": 10}',
        "ALPACA_API_KEY": keys["key_id"],
        "ALPACA_SECRET_KEY": keys["secret_key"],
        "ALPACA_TRADING_URL": facts["alpaca_url"],
        "ALPACA_DATA_URL": facts["alpaca_url"],
    } | over


def _ready(bot: Bot, timeout: float = 60) -> None:
    bot.wait_for(lambda: (h := bot.health()) and h["status"] == "ready", timeout=timeout, what="ready")


def sigterm_with_positions(facts: dict[str, Any], redis_url: str, tmp: Path, n: int = 100) -> list[dict[str, Any]]:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.requests import MarketOrderRequest

    keys = facts["alpaca"]["live"]
    trading = TradingClient(keys["key_id"], keys["secret_key"], url_override=facts["alpaca_url"])
    symbols = [f"S{i:03d}" for i in range(n)]
    for s in symbols:
        trading.submit_order(MarketOrderRequest(symbol=s, qty=1, side="buy", time_in_force="day"))
    out = []
    for close in ("false", "true"):
        redis.Redis.from_url(redis_url).flushall()
        # A strategy that never signals (tests.botkit's): the positions stay as they are.
        quiet = strategy_on_path(tmp / "strategies", "never")
        bot = Bot(
            _env(facts, redis_url, ",".join(symbols), QS_CLOSE_ON_SHUTDOWN=close, QS_MAX_EXPOSURE="1e9", QS_TICK_SECONDS="0.5", **quiet),
            tmp / f"sigterm-{close}.log",
        )
        try:
            _ready(bot, 120)
            positions = len(redis.Redis.from_url(redis_url).hkeys("qs:bench:positions"))
            code, seconds = bot.terminate(60)
        finally:
            bot.kill()
        left = sum(1 for p in trading.get_all_positions() if p.symbol in symbols)
        assert left == (0 if close == "true" else n), f"{left} positions left at the broker"
        label = "closing them all" if close == "true" else "keeping them"
        target = {"target": "< 2", "met": seconds < 2} if close == "false" else {}
        out.append(
            {"name": f"SIGTERM to exit with {positions} open positions, {label} (exit {code})", "value": round(seconds, 3), "unit": "s"}
            | target
        )
    return out


def handover_gap(facts: dict[str, Any], redis_url: str, tmp: Path) -> list[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushall()
    env = _env(facts, redis_url, "AAPL,MSFT")
    old = Bot(env | {"QS_RELEASE": "old"}, tmp / "old.log")
    new = restart = None
    try:
        _ready(old)
        new = Bot(env | {"QS_RELEASE": "new", "QS_METRICS_PORT": str(labkit.free_port())}, tmp / "new.log")
        new.wait_for(lambda: (h := new.health()) and h["status"] == "standby", timeout=60, what="standby")
        old.terminate()
        new.wait_for(lambda: new.events("first_decision"), what="the new release deciding")
        last = old.events("last_decision")[0]["at"]
        gap = (new.events("first_decision")[0]["t"] - last) * 1000
        # baseline: the same switch done as stop-then-start (the new process starts cold after the old exits)
        new.terminate()
        last_b = new.events("last_decision")[0]["at"]
        restart = Bot(env | {"QS_RELEASE": "restart", "QS_METRICS_PORT": str(labkit.free_port())}, tmp / "restart.log")
        restart.wait_for(lambda: restart.events("first_decision"), timeout=60, what="the restarted release deciding")
        baseline = (restart.events("first_decision")[0]["t"] - last_b) * 1000
        restart.terminate()
    finally:
        for b in (old, new, restart):
            if b is not None:
                b.kill()
    return [
        {
            "name": "lease handover gap between two processes (last decision of old -> first of new)",
            "value": round(gap, 1),
            "unit": "ms",
            "baseline": f"{round(baseline, 1)} ms stop-then-start",
            "target": "< 500",
            "met": gap < 500,
        }
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with RedisServer(tmp / "redis") as server:
            figures = decision_latency(server.url)
            lab = labkit.lab_settings(tmp, "10.231.23.0/24", "qsbrb4")
            with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_MARKET_SPEED": "60"}) as facts:
                figures += handover_gap(facts, server.url, tmp)
                figures += sigterm_with_positions(facts, server.url, tmp)
    print(record("bot", [below(f) for f in figures], backend="local processes, real Redis"))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
