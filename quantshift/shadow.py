"""The shadow check of deploy-shadow.yml: the shadow sees what the primary sees, records, never sends.

Three checks, polled together until they all hold or the time is up:
- same market data: for every symbol the primary trades, the shadow reported the same bar (time and
  close) as the primary at least once (both read the same feed, so this happens within a bar);
- would-be trades: the shadow has recorded at least `min_would_be` would-be orders since it started;
- no orders: the shadow sent none (its orders_sent counter is 0) and it runs in shadow mode on the
  primary's account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantshift.gate import Check, GateResult, Progress, to_stderr
from quantshift_bot import monitor


@dataclass(frozen=True)
class ShadowExpectations:
    min_would_be: int = 1
    timeout_s: float = 120.0
    poll_s: float = 0.25


def _health(url: str) -> dict[str, Any]:
    report = monitor.check(url, monitor.AlertThresholds())
    return report.get("health") or {}


def check(
    shadow_url: str,
    primary_url: str,
    expect: ShadowExpectations,
    fetch: Callable[[str], dict[str, Any]] = _health,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    write: Callable[[str], None] = to_stderr,
) -> GateResult:
    """Poll both bots until every check holds, an order is sent, or `expect.timeout_s` is up; progress
    goes to `write` (stderr)."""
    deadline = clock() + expect.timeout_s
    progress = Progress(
        f"shadow-check: waiting for the shadow at {shadow_url} to see the bars of {primary_url} and record would-be orders",
        expect.timeout_s,
        clock,
        write,
    )
    matched: set[str] = set()
    while True:
        shadow, primary = fetch(shadow_url), fetch(primary_url)
        want = set((primary.get("market") or {}).keys())
        for symbol, bar in (shadow.get("market") or {}).items():
            if symbol in want and bar == (primary.get("market") or {}).get(symbol):
                matched.add(symbol)
        would_be = int(shadow.get("would_be_orders", 0))
        checks = (
            Check("shadow mode", str(shadow.get("mode", "unreachable")), "shadow", shadow.get("mode") == "shadow"),
            Check(
                "same account",
                f"{shadow.get('account')} / {primary.get('account')}",
                "equal",
                bool(shadow.get("account")) and shadow.get("account") == primary.get("account"),
            ),
            Check(
                "same market data",
                f"{len(matched & want)}/{len(want)} symbols",
                "all primary symbols",
                bool(want) and want <= matched,
            ),
            Check("would-be orders recorded", str(would_be), f">= {expect.min_would_be}", would_be >= expect.min_would_be),
            Check("orders sent by the shadow", str(shadow.get("orders_sent", "?")), "0", shadow.get("orders_sent") == 0),
        )
        result = GateResult(all(c.ok for c in checks), checks)
        # An order sent is final: fail at once. Otherwise wait for the data and the would-be trades.
        if result.passed or shadow.get("orders_sent", 0) or clock() >= deadline:
            return result
        progress.look("waiting on " + "; ".join(f"{c.name} {c.value}" for c in checks if not c.ok))
        sleep(expect.poll_s)
