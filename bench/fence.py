"""The single-writer fence: what it costs per order and per takeover, and how fast a divergence converges.

- per order: the engine's order path (`_send`, sim broker, real Redis) with every write fenced by the
  lease's tenure, against the same path with the fence switched off, in the same run; and the check
  before an order alone, against the check this release replaced (renew + read every order + write);
- per takeover: fencing one unsent order id at the lab's Alpaca and Coinbase (real SDKs), against
  placing one market order there;
- convergence: a live bot process on the lab, its position changed at the broker behind its back;
  the time until Redis agrees again, in seconds and in ticks.
"""

from __future__ import annotations

import json
import random
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
from quantshift_bot.models import OrderRequest
from tests import chaoskit, labkit
from tests.botkit import Bot, RedisServer, strategy_on_path

SYMBOLS = ("AAA", "BBB")


def _engine(redis_url: str, account: str = "bench") -> tuple[Engine, SimBroker]:
    cfg = config.load(
        {"QS_MODE": "live", "QS_BROKER": "sim", "QS_SYMBOLS": ",".join(SYMBOLS), "QS_ACCOUNT_ID": account, "QS_REDIS_URL": redis_url}
        | {"QS_LEASE_TTL_MS": "60000"}
    )
    broker = SimBroker(SYMBOLS)
    engine = Engine(cfg, broker, redis.Redis.from_url(redis_url))
    assert engine.leases is not None
    engine.leases.refresh()
    return engine, broker


def per_order(redis_url: str, n: int = 2000) -> list[dict[str, Any]]:
    redis.Redis.from_url(redis_url).flushall()
    engines = {"fenced": _engine(redis_url, "fenced")[0], "unfenced": _engine(redis_url, "unfenced")[0]}
    engines["unfenced"].state.fence = None
    times: dict[str, list[float]] = {label: [] for label in engines}
    for i in range(n):  # alternate, so both see the same machine at the same moment
        side = "buy" if i % 2 == 0 else "sell"
        for label, engine in engines.items():
            req = OrderRequest(f"qs-{label}-AAA-{i}-{side}", "AAA", side, 1.0, 100.0, "bench")
            began = time.perf_counter()
            engine._send(req)
            times[label].append((time.perf_counter() - began) * 1e6)
    fenced, plain = statistics.median(times["fenced"]), statistics.median(times["unfenced"])
    # The check before an order alone, with 1000 orders already in the book.
    redis.Redis.from_url(redis_url).flushall()
    engine, _ = _engine(redis_url)
    client = redis.Redis.from_url(redis_url)
    for i in range(1000):
        engine.state.record_intent(OrderRequest(f"qs-bench-BBB-{i}-buy", "BBB", "buy", 1.0, 100.0, "fill"), "live", "r")
    assert engine.leases is not None
    old, new = [], []
    for i in range(n):
        req = OrderRequest(f"qs-bench-AAA-x{i}-buy", "AAA", "buy", 1.0, 100.0, "bench")
        began = time.perf_counter()
        engine.leases.confirm("AAA")  # what this release replaced: a renewal, a read of every order, a write
        _ = req.client_order_id in engine.state.orders()
        client.hset("qs:bench:orders-old", req.client_order_id, "{}")
        old.append((time.perf_counter() - began) * 1e6)
        began = time.perf_counter()
        engine.state.record_intent(req, "live", "r")  # now: one script checks the tenure, the id, writes, renews
        new.append((time.perf_counter() - began) * 1e6)
    return [
        {
            "name": f"order path with every write fenced (engine._send, sim broker, real Redis), median of {n}",
            "value": round(fenced, 1),
            "unit": "us",
            "baseline": f"{round(plain, 1)} us unfenced",
        },
        {"name": "latency the fence adds per order (fenced - unfenced, medians)", "value": round(fenced - plain, 1), "unit": "us"},
        {
            "name": "order path with every write fenced, p99",
            "value": round(percentile(times["fenced"], 0.99), 1),
            "unit": "us",
            "baseline": f"{round(percentile(times['unfenced'], 0.99), 1)} us unfenced",
        },
        {
            "name": "the check before an order, 1000 orders in the book (fenced intent script, median)",
            "value": round(statistics.median(new), 1),
            "unit": "us",
            "baseline": f"{round(statistics.median(old), 1)} us renew + read every order + write (before)",
        },
    ]


def per_takeover(facts: dict[str, Any], n: int = 20) -> list[dict[str, Any]]:
    from quantshift_bot.brokers.alpaca import AlpacaBroker
    from quantshift_bot.brokers.coinbase import CoinbaseBroker
    from quantshift_bot.config import AlpacaSettings, CoinbaseSettings

    a, c = facts["alpaca"]["live"], facts["coinbase"]["live"]
    brokers = {
        "alpaca": (
            AlpacaBroker(AlpacaSettings(a["key_id"], a["secret_key"], facts["alpaca_url"], facts["alpaca_url"]), paper=False),
            "AAPL",
            1.0,
        ),
        "coinbase": (
            CoinbaseBroker(CoinbaseSettings(c["key_name"], c["private_key"], facts["coinbase_base_url"], facts["exchange_ca_cert"])),
            "BTC-USD",
            0.001,
        ),
    }
    out = []
    for name, (broker, symbol, qty) in brokers.items():
        burn, order = [], []
        for i in range(n):
            began = time.perf_counter()
            broker.burn(f"bench-fence-{name}-{i}", symbol, 100.0)
            burn.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            broker.submit(OrderRequest(f"bench-order-{name}-{i}", symbol, "buy", qty, 100.0, "bench"))
            order.append((time.perf_counter() - began) * 1000)
        out.append(
            {
                "name": f"fence one unsent order id on taking over ({name} lab, real SDK: limit order + cancel), median of {n}",
                "value": round(statistics.median(burn), 2),
                "unit": "ms",
                "baseline": f"{round(statistics.median(order), 2)} ms one market order",
            }
        )
    return out


def convergence(facts: dict[str, Any], redis_url: str, tmp: Path, rounds: int = 9) -> list[dict[str, Any]]:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.requests import MarketOrderRequest

    redis.Redis.from_url(redis_url).flushall()
    standby = facts["alpaca"]["live"]["standby"]
    outside = TradingClient(standby["key_id"], standby["secret_key"], url_override=facts["alpaca_url"])
    outside.submit_order(MarketOrderRequest(symbol="MSFT", qty=100, side="buy", time_in_force="day"))
    tick, every = 0.1, 10
    quiet = strategy_on_path(tmp / "strategies", "never") | {"QS_TICK_SECONDS": str(tick)}  # never signals
    env = chaoskit.bot_env(facts, redis_url, "alpaca", "primary", "bench", QS_SYMBOLS="MSFT", QS_RECONCILE_EVERY=str(every), **quiet)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"qs:{chaoskit.ACCOUNT['alpaca']}:positions"

    def booked() -> float:
        raw = r.hget(key, "MSFT")
        return float(json.loads(raw)["qty"]) if raw else 0.0

    bot = Bot(env, tmp / "converge.log")
    seconds = []
    try:
        bot.wait_for(lambda: booked() == 100.0, timeout=60, what="the position adopted")
        rng = random.Random(1)
        for i in range(rounds):
            time.sleep(rng.uniform(0, every * tick))  # anywhere within the reconciliation interval
            want = booked() - 1
            outside.submit_order(MarketOrderRequest(symbol="MSFT", qty=1, side="sell", time_in_force="day"))
            began = time.monotonic()
            while booked() != want:
                time.sleep(0.002)
                if time.monotonic() - began > 30:
                    raise AssertionError(f"round {i}: no convergence within 30 s:\n{bot.log.read_text()[-2000:]}")
            seconds.append(time.monotonic() - began)
        bot.terminate()
    finally:
        bot.kill()
    worst = max(seconds)
    return [
        {
            "name": f"a divergence repaired: broker changed behind the bot's back -> Redis agrees (median of {rounds}, tick {tick} s)",
            "value": round(statistics.median(seconds), 3),
            "unit": "s",
            "baseline": "never (before: positions were reconciled only on taking a lease)",
        },
        {
            "name": f"... the slowest of {rounds}, in ticks (reconciled every {every} ticks)",
            "value": round(worst / tick, 1),
            "unit": "ticks",
            "target": f"< {every + 2}",
            "met": worst / tick < every + 2,
        },
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with RedisServer(tmp / "redis") as server:
            figures = per_order(server.url)
            lab = labkit.lab_settings(tmp, "10.231.24.0/24", "qsbrb5")
            with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_MARKET_SPEED": "60"}) as facts:
                figures += per_takeover(facts)
                figures += convergence(facts, server.url, tmp)
    print(record("fence", [below(f) for f in figures], backend="local processes, real Redis, lab exchanges"))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
