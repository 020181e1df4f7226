"""Chaos: the leader of two live bots on one account is paused (SIGSTOP) past its lease at each moment
of its order path, or killed, while the other takes over and trades; then it resumes. Judged from
outside the bots: the exchange's record of accepted orders and an independent poll of Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import chaoskit

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
