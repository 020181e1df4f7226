"""Performance figures from the trade journal, and the Prometheus text the bot serves.

Conventions (also in /metrics HELP lines):
- win rate: trades with pnl > 0 / all closed trades.
- profit factor: sum of winning pnl / |sum of losing pnl|, per trade; +Inf with no loss, 0 with no win.
- Sharpe: mean / sample stdev of per-trade returns (pnl / entry notional), times sqrt(252) for equities
  or sqrt(365) for crypto, i.e. annualised as if one trade per trading day; 0 with fewer than 2 trades.
- max drawdown: the largest fall of the equity curve (start equity + cumulative pnl) from its running
  peak, as a fraction of that peak.
- error rate: failed broker calls / all broker calls over the last 200 calls.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.engine import Engine

PERIODS = {"equity": 252, "crypto": 365}


def win_rate(pnls: Sequence[float]) -> float:
    return sum(1 for p in pnls if p > 0) / len(pnls) if pnls else 0.0


def profit_factor(pnls: Sequence[float]) -> float:
    gains = sum(p for p in pnls if p > 0)
    losses = -sum(p for p in pnls if p < 0)
    if losses == 0:
        return math.inf if gains > 0 else 0.0
    return gains / losses


def sharpe(returns: Sequence[float], periods_per_year: int) -> float:
    if len(returns) < 2:
        return 0.0
    sd = statistics.stdev(returns)
    return statistics.fmean(returns) / sd * math.sqrt(periods_per_year) if sd > 0 else 0.0


def max_drawdown(start_equity: float, pnls: Iterable[float]) -> float:
    equity = peak = start_equity
    worst = 0.0
    for p in pnls:
        equity += p
        peak = max(peak, equity)
        if peak > 0:
            worst = max(worst, (peak - equity) / peak)
    return worst


def payoff(pnls: Sequence[float]) -> float:
    """Average win / average loss (Kelly's R); 0 when either side is empty."""
    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p < 0]
    return statistics.fmean(wins) / statistics.fmean(losses) if wins and losses else 0.0


@dataclass
class Counters:
    """Live counters the engine updates; the health endpoint renders them."""

    calls: deque[bool] = field(default_factory=lambda: deque(maxlen=200))  # True = the call failed
    order_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    decision_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    orders_sent: int = 0
    would_be_orders: int = 0
    ticks: int = 0
    fenced_writes: int = 0  # state writes Redis refused (the lease had passed on)
    fenced_orders: int = 0  # orders the broker refused because a new holder had fenced their id
    burned_ids: int = 0  # order ids of an earlier tenure fenced at the broker on taking over
    divergences: int = 0  # positions repaired to the broker's by the periodic reconciliation

    def call(self, failed: bool) -> None:
        self.calls.append(failed)

    @property
    def error_rate(self) -> float:
        return sum(self.calls) / len(self.calls) if self.calls else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(trades: list[dict[str, Any]], start_equity: float, market: str) -> dict[str, float]:
    pnls = [float(t["pnl"]) for t in trades]
    returns = [float(t["ret"]) for t in trades]
    return {
        "trades": float(len(trades)),
        "win_rate": win_rate(pnls),
        "profit_factor": profit_factor(pnls),
        "sharpe": sharpe(returns, PERIODS[market]),
        "max_drawdown": max_drawdown(start_equity, pnls),
        "realized_pnl": sum(pnls),
    }


def prometheus(samples: list[tuple[str, str, float, dict[str, str]]]) -> str:
    """Render (name, help, value, labels) as the Prometheus text exposition format."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, help_text, value, labels in samples:
        if name not in seen:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            seen.add(name)
        label = ",".join(f'{k}="{v}"' for k, v in labels.items())
        num = "+Inf" if value == math.inf else repr(float(value))
        lines.append(f"{name}{{{label}}} {num}" if label else f"{name} {num}")
    return "\n".join(lines) + "\n"


def samples(engine: Engine) -> list[tuple[str, str, float, dict[str, str]]]:
    """The catalogue /metrics serves: (name, help, value, labels) for one bot."""
    import redis  # here, not at the top: the command line imports this module for its defaults

    market = "crypto" if engine.cfg.broker == "coinbase" else "equity"
    try:
        trades = engine.state.trades()
        positions = engine.state.positions()
    except redis.RedisError:
        trades, positions = [], {}
    perf = summary(trades, engine.start_equity or 1.0, market)
    exposure = sum(p.qty * engine.prices.get(s, p.entry_price) for s, p in positions.items())
    base = {"bot": engine.cfg.name, "mode": engine.cfg.mode.value, "release": engine.cfg.release}
    c = engine.counters
    out: list[tuple[str, str, float, dict[str, str]]] = [
        ("quantshift_up", "1 while the bot runs; labels carry mode and release", 1.0, base),
        ("quantshift_ready", "1 when trading (or shadowing), 0 in standby or degraded", float(engine.status == "ready"), base),
        ("quantshift_win_rate", "closed trades with pnl > 0 / closed trades", perf["win_rate"], base),
        ("quantshift_profit_factor", "sum of winning pnl / |sum of losing pnl| per trade", perf["profit_factor"], base),
        ("quantshift_sharpe", f"mean/stdev of per-trade returns x sqrt({PERIODS[market]})", perf["sharpe"], base),
        (
            "quantshift_max_drawdown",
            "largest fall of start equity + cumulative pnl from its peak, fraction",
            perf["max_drawdown"],
            base,
        ),
        ("quantshift_realized_pnl", "sum of closed-trade pnl", perf["realized_pnl"], base),
        ("quantshift_trades", "closed trades in the journal", perf["trades"], base),
        ("quantshift_exposure", "sum of position qty x last price", exposure, base),
        ("quantshift_positions", "open positions", float(len(positions)), base),
        ("quantshift_error_rate", "failed broker calls / broker calls, last 200", c.error_rate, base),
        (
            "quantshift_order_latency_ms",
            "order submit round trip, p50 and p99 of the last 200",
            percentile(c.order_ms, 0.5),
            base | {"quantile": "0.5"},
        ),
        (
            "quantshift_order_latency_ms",
            "order submit round trip, p50 and p99 of the last 200",
            percentile(c.order_ms, 0.99),
            base | {"quantile": "0.99"},
        ),
        (
            "quantshift_decision_latency_ms",
            "market data in to decision, p50 and p99",
            percentile(c.decision_ms, 0.5),
            base | {"quantile": "0.5"},
        ),
        (
            "quantshift_decision_latency_ms",
            "market data in to decision, p50 and p99",
            percentile(c.decision_ms, 0.99),
            base | {"quantile": "0.99"},
        ),
        ("quantshift_orders_sent", "orders sent since start", float(c.orders_sent), base),
        ("quantshift_would_be_orders", "shadow orders recorded (never sent) since start", float(c.would_be_orders), base),
        (
            "quantshift_fenced_writes",
            "state writes Redis refused since start: the lease had passed to another tenure",
            float(c.fenced_writes),
            base,
        ),
        (
            "quantshift_fenced_orders",
            "orders the broker refused since start because a new lease holder had fenced their id",
            float(c.fenced_orders),
            base,
        ),
        (
            "quantshift_fenced_ids",
            "order ids of an earlier tenure this bot made unusable at the broker since start",
            float(c.burned_ids),
            base,
        ),
        (
            "quantshift_position_divergences",
            "positions found different from the broker's while trading, and repaired, since start",
            float(c.divergences),
            base,
        ),
        ("quantshift_uptime_seconds", "seconds since start", time.time() - engine.started, base),
    ]
    if engine.leases is not None:
        held = set(engine.leases.held())
        out += [
            ("quantshift_lease_held", "1 when this bot holds the symbol's single-writer lease", float(s in held), base | {"symbol": s})
            for s in engine.cfg.lease_symbols
        ]
    return out
