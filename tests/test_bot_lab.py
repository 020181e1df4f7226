"""The bot as a real process, the real broker SDKs against the lab's exchanges, a real Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from quantshift_bot import metrics
from quantshift_bot.brokers.alpaca import AlpacaBroker
from quantshift_bot.brokers.base import is_fence_order
from quantshift_bot.config import AlpacaSettings
from tests.botkit import bots, lab_get, lab_post
from tests.labkit import free_port


def alpaca_env(lab: dict[str, Any], redis_url: str, account: str = "live", **over: str) -> dict[str, str]:
    keys = lab["alpaca"][account]
    return {
        "QS_MODE": "live",
        "QS_BROKER": "alpaca",
        "QS_SYMBOLS": "AAPL,MSFT,NVDA",
        "QS_ACCOUNT_ID": f"lab-{account}",
        "QS_REDIS_URL": redis_url,
        "QS_METRICS_PORT": str(free_port()),
        "QS_TICK_SECONDS": "0.1",
        "QS_RELEASE": "r1",
        "QS_STRATEGY_PARAMS": '{"fast": 2, "slow": 5}',
        "QS_LEASE_TTL_MS": "1000",
        "ALPACA_API_KEY": keys["key_id"],
        "ALPACA_SECRET_KEY": keys["secret_key"],
        "ALPACA_TRADING_URL": lab["alpaca_url"],
        "ALPACA_DATA_URL": lab["alpaca_url"],
    } | over


def stats(lab: dict[str, Any]) -> dict[str, Any]:
    return lab_get(lab["alpaca_url"], "/lab/stats", lab["exchange_admin_token"])


def broker(lab: dict[str, Any], account: str = "live") -> AlpacaBroker:
    keys = lab["alpaca"][account]
    return AlpacaBroker(AlpacaSettings(keys["key_id"], keys["secret_key"], lab["alpaca_url"], lab["alpaca_url"]), paper=account == "paper")


def assert_unique_client_ids(alpaca: AlpacaBroker) -> None:
    from alpaca.trading.requests import GetOrdersRequest

    ids = [o.client_order_id for o in alpaca.trading.get_orders(GetOrdersRequest(status="all", limit=500))]
    assert ids and len(ids) == len(set(ids))


def test_shadow_records_would_be_orders_and_the_exchange_receives_none(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    before = stats(trade_lab)
    with bots(alpaca_env(trade_lab, redis_url, QS_MODE="shadow", QS_RELEASE="shadow-1"), tmp=tmp_path) as (shadow,):
        shadow.wait_for(lambda: len(shadow.events("would_be_order")) >= 3, what="three would-be orders")
        assert shadow.health()["status"] == "ready"
        assert shadow.terminate()[0] == 0
    after = stats(trade_lab)
    assert after["live"]["orders_received"] == before["live"]["orders_received"]
    assert after["paper"]["orders_received"] == before["paper"]["orders_received"]
    stored = redis.Redis.from_url(redis_url).xrange("qs:lab-live:shadow:wouldbe")
    assert len(stored) == len(shadow.events("would_be_order"))
    doc = json.loads(stored[0][1][b"order"])
    assert {"time", "symbol", "side", "qty", "price", "reason"} <= set(doc)


def test_live_then_sigterm_cancels_orders_keeps_positions_and_restart_recovers(
    trade_lab: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    env = alpaca_env(trade_lab, redis_url)
    alpaca = broker(trade_lab)
    r = redis.Redis.from_url(redis_url)
    with bots(env, tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: alpaca.positions(), what="a position at the broker")
        # an open, non-protective order of ours that SIGTERM must cancel: far below the market
        from alpaca.trading.requests import LimitOrderRequest

        resting = alpaca.trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL", qty=1, side="buy", time_in_force="day", limit_price=1.0, client_order_id="qs-lab-live-AAPL-1-buy"
            )
        )
        r.hset(
            "qs:lab-live:orders",
            "qs-lab-live-AAPL-1-buy",
            json.dumps({"symbol": "AAPL", "side": "buy", "qty": 1, "status": "new", "broker_id": str(resting.id)}),
        )
        code, seconds = bot.terminate()
        assert code == 0 and seconds < 5
    assert alpaca.find("qs-lab-live-AAPL-1-buy").status == "canceled"
    kept = {s: p.qty for s, p in alpaca.positions().items()}
    saved = {k.decode(): json.loads(v)["qty"] for k, v in r.hgetall("qs:lab-live:positions").items()}
    assert kept and saved == kept  # close_on_shutdown is off: positions stay, and Redis knows them
    received = stats(trade_lab)["live"]["orders_received"]

    with bots(env | {"QS_RELEASE": "r2"}, tmp=tmp_path) as (again,):
        again.wait_for(lambda: again.events("first_decision"), what="the restarted bot deciding")
        # Redis already knew every position: nothing had to be adopted from the broker
        assert not [e for e in again.events("reconciled") if e.get("action", "").startswith("adopted the broker")]
        assert again.health()["status"] == "ready"
        assert again.terminate()[0] == 0
    assert stats(trade_lab)["live"]["orders_received"] >= received
    assert_unique_client_ids(alpaca)
    held = {s: p.qty for s, p in alpaca.positions().items()}
    booked = {k.decode(): json.loads(v)["qty"] for k, v in r.hgetall("qs:lab-live:positions").items()}
    assert held == booked


def test_kill_9_during_order_placement_never_doubles(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    env = alpaca_env(trade_lab, redis_url, QS_SYMBOLS="AAPL")
    r = redis.Redis.from_url(redis_url)
    alpaca = broker(trade_lab)
    # every answer takes 800 ms: the bot is inside submit when we kill it
    with bots(env, tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.events("first_decision"), what="the bot trading")
        lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"], latency_ms=800)
        bot.wait_for(
            lambda: any(json.loads(v)["status"] == "intent" for v in r.hgetall("qs:lab-live:orders").values()),
            timeout=60,
            what="an order written as intent",
        )
        bot.kill()
    lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"])
    intent = next(k.decode() for k, v in r.hgetall("qs:lab-live:orders").items() if json.loads(v)["status"] == "intent")
    time.sleep(1.2)  # the dead bot's lease runs out
    with bots(env | {"QS_RELEASE": "r2"}, tmp=tmp_path) as (bot2,):
        bot2.wait_for(lambda: json.loads(r.hget("qs:lab-live:orders", intent))["status"] != "intent", what="the intent resolved")
        assert bot2.terminate()[0] == 0
    state = json.loads(r.hget("qs:lab-live:orders", intent))
    at_broker = alpaca.find(intent)
    assert at_broker is not None  # it reached the broker, or the bot that took over fenced its id there
    if is_fence_order(at_broker):
        assert state["status"] == "fenced" and at_broker.filled_qty == 0
    else:
        assert state["status"] == at_broker.status  # adopted, never sent a second time
    assert_unique_client_ids(alpaca)
    held = sum(p.qty for p in alpaca.positions().values())
    booked = sum(json.loads(v)["qty"] for v in r.hgetall("qs:lab-live:positions").values())
    assert held == booked


def test_two_bots_on_one_account_exactly_one_trades(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    a, b = alpaca_env(trade_lab, redis_url, QS_RELEASE="a"), alpaca_env(trade_lab, redis_url, QS_RELEASE="b")
    with bots(a, b, tmp=tmp_path) as (bot_a, bot_b):
        bot_a.wait_for(
            lambda: {bot_a.health() and bot_a.health()["status"], bot_b.health() and bot_b.health()["status"]} == {"ready", "standby"},
            what="one ready, one standby",
        )
        time.sleep(2)
        statuses = {bot_a.health()["status"], bot_b.health()["status"]}
        assert statuses == {"ready", "standby"}
        standby = bot_a if bot_a.health()["status"] == "standby" else bot_b
        assert "waiting for the lease" in standby.health()["reason"]
        assert standby.events("order") == []
        orders = redis.Redis.from_url(redis_url).hgetall("qs:lab-live:orders")
        assert {json.loads(v).get("release") for v in orders.values()} <= {"b" if standby is bot_a else "a"}


def test_redis_outage_stops_orders_then_recovers(trade_lab: dict[str, Any], redis_url: str, redis_server: Any, tmp_path: Path) -> None:
    with bots(alpaca_env(trade_lab, redis_url), tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", what="ready")
        redis_server.stop()
        try:
            bot.wait_for(lambda: bot.health() and bot.health()["status"] == "degraded", what="degraded on Redis loss")
            received = stats(trade_lab)["live"]["orders_received"]
            time.sleep(2)
            assert stats(trade_lab)["live"]["orders_received"] == received  # fail closed
            assert "redis" in bot.health()["reason"].lower() or "Connection" in bot.health()["reason"]
        finally:
            redis_server.start()
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", timeout=30, what="ready again")
        assert bot.terminate()[0] == 0


def test_a_redis_outage_longer_than_the_lease_never_leaves_two_bots_trading(
    trade_lab: dict[str, Any], redis_url: str, redis_server: Any, tmp_path: Path
) -> None:
    """Both bots of one account lose Redis for 3x the lease TTL (their leases expire in Redis and on
    their own clocks); after Redis returns, exactly one of them trades again and no order is doubled."""
    a, b = alpaca_env(trade_lab, redis_url, QS_RELEASE="a"), alpaca_env(trade_lab, redis_url, QS_RELEASE="b")
    with bots(a, b, tmp=tmp_path) as pair:

        def statuses() -> set[str]:
            return {str((bot.health() or {}).get("status")) for bot in pair}

        pair[0].wait_for(lambda: statuses() == {"ready", "standby"}, what="one ready, one standby")
        redis_server.stop()
        try:
            pair[0].wait_for(lambda: statuses() == {"degraded"}, what="both degraded (fail closed)")
            received = stats(trade_lab)["live"]["orders_received"]
            time.sleep(3)  # 3x the 1 s TTL
            assert stats(trade_lab)["live"]["orders_received"] == received  # nobody trades without Redis
        finally:
            redis_server.start()
        pair[0].wait_for(lambda: statuses() == {"ready", "standby"}, timeout=30, what="one ready, one standby again")
        for _ in range(10):  # and it stays that way
            assert statuses() == {"ready", "standby"}
            time.sleep(0.2)
        assert_unique_client_ids(broker(trade_lab))
        assert all(bot.terminate()[0] == 0 for bot in pair)


def test_broker_5xx_bounded_retries_and_error_rate(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    with bots(alpaca_env(trade_lab, redis_url, QS_MAX_RETRIES="2"), tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", what="ready")
        lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"], error_rate=1.0, status=503)
        bot.wait_for(lambda: bot.health()["status"] == "degraded", what="degraded on 5xx")
        assert bot.health()["error_rate"] > 0.05
        retries = bot.events("retry")
        assert retries and max(e["attempt"] for e in retries) <= 2
        lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"])
        bot.wait_for(lambda: "quantshift_broker_errors_total" in bot.metrics(), what="metrics")
        assert bot.proc.poll() is None  # it kept running
        assert bot.terminate()[0] == 0


def test_a_hung_exchange_times_out_counts_as_errors_and_the_bot_recovers(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    with bots(alpaca_env(trade_lab, redis_url, QS_MAX_RETRIES="1", QS_BROKER_TIMEOUT_S="0.5"), tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", what="ready")
        received = stats(trade_lab)["live"]["orders_received"]
        lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"], hang_s=5)
        try:
            bot.wait_for(lambda: bot.health()["status"] == "degraded", timeout=20, what="degraded on a hung exchange")
            assert "Timeout" in bot.health()["reason"] or "timed out" in bot.health()["reason"].lower()
            assert stats(trade_lab)["live"]["orders_received"] - received <= 1  # nothing piles up behind the hang
        finally:
            lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"])
        bot.wait_for(lambda: bot.health()["status"] == "ready", timeout=30, what="ready once the exchange answers")
        began = time.monotonic()
        assert bot.terminate()[0] == 0 and time.monotonic() - began < 5


def test_paper_mode_on_coinbase_with_jwt(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    keys = trade_lab["coinbase"]["paper"]
    env = {
        "QS_MODE": "paper",
        "QS_BROKER": "coinbase",
        "QS_SYMBOLS": "BTC-USD,ETH-USD",
        "QS_ACCOUNT_ID": "cb-paper",
        "QS_REDIS_URL": redis_url,
        "QS_METRICS_PORT": str(free_port()),
        "QS_TICK_SECONDS": "0.1",
        "QS_STRATEGY_PARAMS": '{"fast": 2, "slow": 5}',
        "QS_MAX_POSITION": "2000",
        "COINBASE_API_KEY": keys["key_name"],
        "COINBASE_API_SECRET": keys["private_key"],
        "COINBASE_BASE_URL": trade_lab["coinbase_base_url"],
        "COINBASE_CA_BUNDLE": trade_lab["exchange_ca_cert"],
    }
    with bots(env, tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.events("order"), what="a coinbase order")
        order = bot.events("order")[0]
        assert order["status"] == "filled" and order["qty"] != int(order["qty"])  # crypto sizes are fractional
        assert bot.health()["mode"] == "paper"
        assert bot.terminate()[0] == 0
    positions = redis.Redis.from_url(redis_url).hgetall("qs:cb-paper:positions")
    journal = redis.Redis.from_url(redis_url).xlen("qs:cb-paper:journal")
    assert positions or journal  # the fill was booked


def test_health_monitor_cli_reports_alerts(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    with bots(alpaca_env(trade_lab, redis_url), tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", what="ready")

        def health(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "quantshift", "bot", "health", "--url", bot.url, "--json", *extra],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        ok = health()
        assert ok.returncode == 0 and json.loads(ok.stdout)["alerts"] == []
        strict = health("--max-drawdown", "-1")  # any drawdown at all is too much: an alert, exit 3 (the answer is no)
        assert strict.returncode == 3 and "drawdown" in json.loads(strict.stdout)["alerts"][0]
        # The bot exports exactly the catalogue monitoring/ is written against, in Prometheus' own types.
        families = {f.name: f for f in text_string_to_metric_families(bot.metrics())}
        exported = {f.name + ("_total" if f.type == "counter" else ""): f.type for f in families.values()}
        assert exported == {name: {"info": "gauge", "stateset": "gauge"}.get(kind, kind) for name, kind, _ in metrics.METRICS}
        (build,) = families["quantshift_build_info"].samples
        assert build.labels == {"release": "r1", "mode": "live", "slot": ""} and build.value == 1
        leases = {(s.labels["account"], s.labels["symbol"]): s.value for s in families["quantshift_lease_held"].samples}
        assert leases == {(bot.health()["account"], symbol): float(held) for symbol, held in bot.health()["lease"].items()}
        assert sum(s.value for s in families["quantshift_decision_latency_seconds"].samples if s.name.endswith("_count")) >= 1
    down = subprocess.run(
        [sys.executable, "-m", "quantshift", "bot", "health", "--url", bot.url], capture_output=True, text=True, timeout=30, check=False
    )
    assert down.returncode == 3 and "unreachable" in down.stdout  # a bot that does not answer is an alert


def test_lab_alpaca_bracket_orders_and_limits_through_the_sdk(trade_lab: dict[str, Any]) -> None:
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopLossRequest, TakeProfitRequest

    alpaca = broker(trade_lab, "paper")
    price = alpaca.bars(("AAPL",), 5)["AAPL"][-1].c
    bracket = alpaca.trading.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=round(price * 1.5, 2)),
            stop_loss=StopLossRequest(stop_price=round(price * 0.5, 2)),
        )
    )
    assert bracket.status == "filled" and bracket.legs and len(bracket.legs) == 2
    protective = [o for o in alpaca.open_orders() if o.protective]
    assert len(protective) == 2  # take-profit and stop-loss stay open as protective legs
    resting = alpaca.trading.submit_order(
        LimitOrderRequest(symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=1.0)
    )
    assert resting.status == "new"
    alpaca.cancel(str(resting.id))
    assert alpaca.find(resting.client_order_id).status == "canceled"
    closed: Any = alpaca.trading.close_position("AAPL")  # the lab's DELETE /v2/positions/{symbol}, through the SDK
    assert closed is not None and str(closed.status.value) == "filled"
    assert not [o for o in alpaca.open_orders() if o.symbol == "AAPL"]  # closing the position cancelled its legs
    live = broker(trade_lab, "live")
    assert "AAPL" not in live.positions()  # paper and live are separate accounts


def test_lab_coinbase_refuses_a_jwt_signed_with_another_key(trade_lab: dict[str, Any]) -> None:
    from quantshift_bot.brokers.base import OrderRejected
    from quantshift_bot.brokers.coinbase import CoinbaseBroker
    from quantshift_bot.config import CoinbaseSettings

    paper, live = trade_lab["coinbase"]["paper"], trade_lab["coinbase"]["live"]
    good = CoinbaseBroker(
        CoinbaseSettings(paper["key_name"], paper["private_key"], trade_lab["coinbase_base_url"], trade_lab["exchange_ca_cert"])
    )
    assert good.equity() > 0
    forged = CoinbaseBroker(
        CoinbaseSettings(paper["key_name"], live["private_key"], trade_lab["coinbase_base_url"], trade_lab["exchange_ca_cert"])
    )
    try:
        forged.equity()
        raise AssertionError("a JWT signed with the wrong key was accepted")
    except OrderRejected as err:
        assert "401" in str(err)


def test_deploy_gate_passes_a_healthy_bot_and_fails_with_a_table(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    log = tmp_path / "audit.jsonl"
    with bots(alpaca_env(trade_lab, redis_url), tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.health() and bot.health()["status"] == "ready", what="ready")

        def gate(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "quantshift", "deploy", "gate", "--url", bot.url, "--audit-log", str(log), *extra],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        ok = gate("--restarts", "0", "--release", "r1", "--stage", "paper")
        assert ok.returncode == 0 and "gate PASSED" in ok.stdout
        restarting = gate("--restarts", "2")
        assert restarting.returncode == 3 and "not restarting" in restarting.stdout and "FAILED" in restarting.stdout
        lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"], error_rate=1.0, status=503)
        bot.wait_for(lambda: bot.health()["status"] == "degraded", what="degraded")
        failed = gate("--release", "r1", "--stage", "paper")
        assert failed.returncode == 3
        table = failed.stdout
        assert "service healthy" in table and "error rate" in table and "gate FAILED" in table
        lab_post(trade_lab["alpaca_url"], "/lab/faults", trade_lab["exchange_admin_token"])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["kind"], r["outcome"]) for r in records] == [("gate", "ok"), ("gate", "failed")]


def test_a_fenced_client_order_id_is_never_accepted_at_either_broker(trade_lab: dict[str, Any]) -> None:
    """The two brokers treat a repeated client order id differently, and the lab imitates both: Alpaca
    refuses it (HTTP 422), Coinbase answers with the order that already has it and creates none. Either
    way an id fenced by `burn` can never place an order."""
    from quantshift_bot.brokers.coinbase import CoinbaseBroker
    from quantshift_bot.config import CoinbaseSettings
    from quantshift_bot.models import OrderRequest

    cb_keys = trade_lab["coinbase"]["live"]
    coinbase = CoinbaseBroker(
        CoinbaseSettings(cb_keys["key_name"], cb_keys["private_key"], trade_lab["coinbase_base_url"], trade_lab["exchange_ca_cert"])
    )
    alpaca = broker(trade_lab)
    # Coinbase, through its own SDK: the same id twice is one order, answered twice.
    first = coinbase.client.market_order_buy(client_order_id="cb-repeat", product_id="BTC-USD", base_size="0.001")
    second = coinbase.client.market_order_buy(client_order_id="cb-repeat", product_id="BTC-USD", base_size="0.002")
    assert first["success"] and second["success"]
    assert first["success_response"]["order_id"] == second["success_response"]["order_id"]
    assert [o.client_order_id for o in coinbase.open_orders()] == [] and coinbase.positions()["BTC-USD"].qty == 0.001
    for name, b, symbol, qty in (("alpaca", alpaca, "AAPL", 3.0), ("coinbase", coinbase, "ETH-USD", 0.5)):
        before = b.positions().get(symbol)
        cid = f"qs-fence-test-{name}"
        fence = b.burn(cid, symbol, 100.0)
        assert is_fence_order(fence) and (fence.status, fence.filled_qty) == ("canceled", 0.0), name
        # The paused bot resumes and sends its order under the fenced id: no order, no fill.
        answer = b.submit(OrderRequest(cid, symbol, "buy", qty, 100.0, "late"))
        assert is_fence_order(answer) and answer.id == fence.id, name
        assert b.positions().get(symbol) == before, name
        # Fencing an id that already placed an order returns that order: the bot adopts it instead.
        placed = b.submit(OrderRequest(f"{cid}-placed", symbol, "buy", qty, 100.0, "sent before the fence"))
        assert b.burn(placed.client_order_id, symbol, 100.0).id == placed.id and not is_fence_order(placed), name


def test_a_bot_stuck_in_a_decision_is_stalled_hands_back_and_still_stops_on_sigterm(
    trade_lab: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    env = alpaca_env(
        trade_lab, redis_url, QS_FAILPOINTS="hang_in_decision", QS_STALL_TICKS="5", QS_STOP_TIMEOUT_S="1", QS_LEASE_TTL_MS="30000"
    )
    r = redis.Redis.from_url(redis_url)
    with bots(env, tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: bot.events("failpoint"), what="the loop stuck in its first decision")
        health = bot.wait_for(
            lambda: (h := bot.health()) and h["status"] == "stalled" and not any(h["lease"].values()) and h,
            timeout=5,
            what="stalled on /healthz, holding no lease",
        )
        assert health["last_tick_age_s"] >= 1.0 and "no progress for" in health["reason"]
        # Handed back at once, not after the 30 s TTL: the other release can trade.
        assert [k for k in r.keys("qs:lease:lab-live:*") if not k.endswith((b":fence", b":yielded"))] == []
        assert bot.events("stalled")
        code, seconds = bot.terminate(timeout=10)
    assert code == 0 and seconds < 3  # the stuck loop never sees SIGTERM: the stop timeout ends it
    assert bot.events("hard_exit")
