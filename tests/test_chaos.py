"""Chaos: the leader of two live bots on one account is paused (SIGSTOP) past its lease at each moment
of its order path, or killed, while the other takes over and trades; then it resumes. Judged from
outside the bots: the exchange's record of accepted orders and an independent poll of Redis."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import chaoskit
from tests.botkit import bots, strategy_on_path

CASES = [("alpaca", m) for m in chaoskit.MOMENTS] + [("coinbase", "after_intent"), ("coinbase", "in_flight")]


@pytest.mark.parametrize(("broker", "moment"), CASES, ids=[f"{b}-{m}" for b, m in CASES])
def test_a_paused_leader_never_trades_or_books_after_its_lease_passed(
    trade_lab: dict[str, Any], redis_url: str, tmp_path: Path, broker: str, moment: str
) -> None:
    out = chaoskit.run(trade_lab, redis_url, tmp_path, broker, moment)
    assert chaoskit.violations(out.ledger, out.observer, out.pids_by_sender) == []
    assert chaoskit.final_disagreements(out.ledger, redis_url, chaoskit.ACCOUNT[broker]) == []
    leader = out.leader[0]
    # The path under test was taken: the resumed leader ran into a fence, not into luck.
    if moment == "after_intent":
        fenced = leader.events("order_fenced")
        assert fenced, leader.log.read_text()[-3000:]
        cid = fenced[0]["client_order_id"]
        holder = [o for o in out.ledger["orders"] if o["client_order_id"] == cid]
        # The id is held at the exchange by the other bot's fence order, canceled unfilled.
        assert [(o["type"], o["status"], o["filled_qty"]) for o in holder] == [("limit", "canceled", 0.0)]
        assert holder[0]["sender"] != next(k for k, pids in out.pids_by_sender.items() if leader.proc.pid in pids)
    elif moment in ("after_lease_check", "in_flight"):
        assert leader.events("fenced"), leader.log.read_text()[-3000:]
    if moment == "in_flight":
        # The order accepted while it was in flight was adopted by the other bot, never booked twice.
        adopted = [e for e in out.other.events("reconciled") if "order is" in str(e.get("action"))]
        assert adopted, out.other.log.read_text()[-3000:]


def test_a_divergence_from_the_broker_is_logged_counted_and_repaired(trade_lab: dict[str, Any], redis_url: str, tmp_path: Path) -> None:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.requests import MarketOrderRequest

    standby = trade_lab["alpaca"]["live"]["standby"]
    outside = TradingClient(standby["key_id"], standby["secret_key"], url_override=trade_lab["alpaca_url"])
    outside.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy", time_in_force="day"))
    # A strategy that never signals (a package of the test's own): only reconciliation moves Redis.
    quiet = strategy_on_path(tmp_path / "strategies", "never")
    env = chaoskit.bot_env(trade_lab, redis_url, "alpaca", "primary", "a", QS_SYMBOLS="AAPL", **quiet)
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    def booked() -> float | None:
        raw = r.hget(f"qs:{chaoskit.ACCOUNT['alpaca']}:positions", "AAPL")
        return float(json.loads(raw)["qty"]) if raw else None

    with bots(env, tmp=tmp_path) as (bot,):
        bot.wait_for(lambda: booked() == 10.0, what="the broker's position adopted on taking the lease")
        assert bot.events("divergence") == []  # adopting on takeover is reconciliation, not a divergence
        outside.submit_order(MarketOrderRequest(symbol="AAPL", qty=4, side="sell", time_in_force="day"))  # e.g. by hand
        bot.wait_for(lambda: booked() == 6.0, what="the divergence repaired")
        (found,) = bot.events("divergence")
        assert (found["symbol"], found["redis_qty"], found["broker_qty"]) == ("AAPL", 10.0, 6.0)
        assert re.search(r"^quantshift_position_divergences_total 1(\.0)?$", bot.metrics(), re.M)
        assert bot.terminate()[0] == 0
