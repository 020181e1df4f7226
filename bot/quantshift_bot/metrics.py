"""Performance figures from the trade journal, and the Prometheus metrics the bot serves (prometheus_client).

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

import bisect
import math
import statistics
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantshift_bot.engine import Engine

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


# Latency buckets in seconds: an order round trip to a broker (ms to the broker timeout), and a decision
# (market data in to decision: sub-millisecond to a slow tick).
ORDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class Counters:
    """Live counters the engine updates; /metrics renders them (counters since the process started)."""

    calls: deque[bool] = field(default_factory=lambda: deque(maxlen=200))  # True = the call failed
    order_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    decision_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    calls_total: int = 0
    errors_total: int = 0
    orders_sent: int = 0
    would_be_orders: int = 0
    ticks: int = 0
    last_tick_at: float = 0.0  # unix time of the last completed tick
    fenced_writes: int = 0  # state writes Redis refused (the lease had passed on)
    fenced_orders: int = 0  # orders the broker refused because a new holder had fenced their id
    burned_ids: int = 0  # order ids of an earlier tenure fenced at the broker on taking over
    divergences: int = 0  # positions repaired to the broker's by the periodic reconciliation
    order_buckets: list[int] = field(default_factory=lambda: [0] * (len(ORDER_BUCKETS) + 1))
    decision_buckets: list[int] = field(default_factory=lambda: [0] * (len(DECISION_BUCKETS) + 1))
    order_seconds: float = 0.0
    decision_seconds: float = 0.0

    def call(self, failed: bool) -> None:
        self.calls.append(failed)
        self.calls_total += 1
        self.errors_total += failed

    def order(self, seconds: float) -> None:
        self.order_ms.append(seconds * 1000)
        self.order_seconds += seconds
        self.order_buckets[bisect.bisect_left(ORDER_BUCKETS, seconds)] += 1

    def decision(self, seconds: float) -> None:
        self.decision_ms.append(seconds * 1000)
        self.decision_seconds += seconds
        self.decision_buckets[bisect.bisect_left(DECISION_BUCKETS, seconds)] += 1

    def tick(self) -> None:
        self.ticks += 1
        self.last_tick_at = time.time()

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


# The catalogue: every family a bot exports, as (name in the exposition, type, help). monitoring/METRICS.md
# documents it, monitoring/ (alert rules, the dashboard) may name only these, and tests/test_bot_lab.py
# checks a real bot's /metrics against it. Target labels (bot, host, env, stage) come from the scrape
# configuration; the release is a label of quantshift_build_info only, so a deploy makes no new series.
STATUSES = ("starting", "ready", "standby", "degraded", "stalled", "stopping")
METRICS: tuple[tuple[str, str, str], ...] = (
    ("quantshift_build_info", "info", "the running release, mode (paper, shadow, canary, live) and slot (a, b)"),
    ("quantshift_status", "stateset", "the /healthz status: 1 for the current one"),
    ("quantshift_ready", "gauge", "1 when trading (or shadowing), 0 in standby, degraded, stalled or stopping"),
    ("quantshift_start_time_seconds", "gauge", "unix time the bot process started"),
    ("quantshift_last_tick_timestamp_seconds", "gauge", "unix time of the last completed tick (0 before the first)"),
    ("quantshift_ticks_total", "counter", "completed ticks"),
    ("quantshift_broker_calls_total", "counter", "broker calls"),
    ("quantshift_broker_errors_total", "counter", "failed broker calls (refused orders included)"),
    ("quantshift_broker_error_ratio", "gauge", "failed broker calls / broker calls, over the last 200 calls"),
    ("quantshift_order_latency_seconds", "histogram", "order submit round trip to the broker"),
    ("quantshift_decision_latency_seconds", "histogram", "market data in to decision"),
    ("quantshift_orders_sent_total", "counter", "orders sent to the broker"),
    ("quantshift_would_be_orders_total", "counter", "shadow orders recorded, never sent"),
    ("quantshift_fenced_writes_total", "counter", "state writes Redis refused: the lease had passed to another tenure"),
    ("quantshift_fenced_orders_total", "counter", "orders the broker refused because a new lease holder had fenced their id"),
    ("quantshift_fenced_ids_total", "counter", "order ids of an earlier tenure this bot made unusable at the broker"),
    ("quantshift_position_divergences_total", "counter", "positions found different from the broker's while trading, and repaired"),
    ("quantshift_closed_trades", "gauge", "closed trades in the account's journal"),
    ("quantshift_win_ratio", "gauge", "account journal: closed trades with pnl > 0 / closed trades"),
    ("quantshift_profit_factor", "gauge", "account journal: sum of winning pnl / |sum of losing pnl| (+Inf with no loss)"),
    ("quantshift_sharpe_ratio", "gauge", "account journal: mean / stdev of per-trade returns, annualised"),
    ("quantshift_max_drawdown_ratio", "gauge", "account journal: largest fall of start equity + cumulative pnl from its peak"),
    ("quantshift_realized_pnl_usd", "gauge", "account journal: sum of closed-trade pnl"),
    ("quantshift_exposure_usd", "gauge", "sum of position qty x last price"),
    ("quantshift_open_positions", "gauge", "open positions"),
    ("quantshift_session_closed_trades", "gauge", "trades this process (this release) closed"),
    ("quantshift_session_win_ratio", "gauge", "this process's own closed trades with pnl > 0 / its closed trades"),
    ("quantshift_session_pnl_usd", "gauge", "this process's own realized pnl"),
    ("quantshift_session_drawdown_ratio", "gauge", "this process's own drawdown, fraction of start equity's peak"),
    ("quantshift_lease_held", "gauge", "1 when this bot holds the (account, symbol) single-writer lease; live and canary bots only"),
)
HELP = {name: help_text for name, _, help_text in METRICS}
# What the host's guard serves on its own /metrics (roles/quantshift_bot/files/quantshift-guard.py).
GUARD_SERIES = ("quantshift_guard_up", "quantshift_guard_baking", "quantshift_guard_rollbacks_total")


def exported_series() -> set[str]:
    """Every series name a bot's exposition can hold (a histogram's _bucket, _sum and _count)."""
    out: set[str] = set()
    for name, kind, _ in METRICS:
        out |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    return out


class _Collector:
    """Families computed at each scrape from the engine's state (one registry per engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Any]:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
            StateSetMetricFamily,
        )

        e, c = self.engine, self.engine.counters
        values = _values(e)
        for name, kind, help_text in METRICS:
            if kind == "gauge" and name != "quantshift_lease_held":
                yield GaugeMetricFamily(name, help_text, value=values[name])
            elif kind == "counter":
                yield CounterMetricFamily(name, help_text, value=values[name])
        yield InfoMetricFamily(
            "quantshift_build",
            HELP["quantshift_build_info"],
            value={"release": e.cfg.release, "mode": e.cfg.mode.value, "slot": e.cfg.slot},
        )
        yield StateSetMetricFamily("quantshift_status", HELP["quantshift_status"], value={s: s == values["status"] for s in STATUSES})
        for name, buckets, counts, total in (
            ("quantshift_order_latency_seconds", ORDER_BUCKETS, c.order_buckets, c.order_seconds),
            ("quantshift_decision_latency_seconds", DECISION_BUCKETS, c.decision_buckets, c.decision_seconds),
        ):
            cumulative, running = [], 0
            for bound, n in zip((*(repr(b) for b in buckets), "+Inf"), counts, strict=True):
                running += n
                cumulative.append((bound, running))
            yield HistogramMetricFamily(name, HELP[name], buckets=cumulative, sum_value=total)
        if e.leases is not None:
            held = GaugeMetricFamily("quantshift_lease_held", HELP["quantshift_lease_held"], labels=["account", "symbol"])
            for symbol, holds in values["leases"].items():
                held.add_metric([e.cfg.account_id, symbol], float(holds))
            yield held


def _values(engine: Engine) -> dict[str, Any]:
    import redis  # here, not at the top: the command line imports this module for its defaults

    from quantshift_bot.health import document

    market = "crypto" if engine.cfg.broker == "coinbase" else "equity"
    try:
        trades = engine.state.trades()
        positions = engine.state.positions()
    except redis.RedisError:
        trades, positions = [], {}
    perf = summary(trades, engine.start_equity or 1.0, market)
    doc = document(engine)
    c = engine.counters
    session = engine.session_pnls
    return {
        "status": doc["status"],
        "leases": doc["lease"] or {},
        "quantshift_ready": float(doc["status"] == "ready"),
        "quantshift_start_time_seconds": engine.started,
        "quantshift_last_tick_timestamp_seconds": c.last_tick_at,
        "quantshift_ticks_total": c.ticks,
        "quantshift_broker_calls_total": c.calls_total,
        "quantshift_broker_errors_total": c.errors_total,
        "quantshift_broker_error_ratio": c.error_rate,
        "quantshift_orders_sent_total": c.orders_sent,
        "quantshift_would_be_orders_total": c.would_be_orders,
        "quantshift_fenced_writes_total": c.fenced_writes,
        "quantshift_fenced_orders_total": c.fenced_orders,
        "quantshift_fenced_ids_total": c.burned_ids,
        "quantshift_position_divergences_total": c.divergences,
        "quantshift_closed_trades": perf["trades"],
        "quantshift_win_ratio": perf["win_rate"],
        "quantshift_profit_factor": perf["profit_factor"],
        "quantshift_sharpe_ratio": perf["sharpe"],
        "quantshift_max_drawdown_ratio": perf["max_drawdown"],
        "quantshift_realized_pnl_usd": perf["realized_pnl"],
        "quantshift_exposure_usd": sum(p.qty * engine.prices.get(s, p.entry_price) for s, p in positions.items()),
        "quantshift_open_positions": float(len(positions)),
        "quantshift_session_closed_trades": float(len(session)),
        "quantshift_session_win_ratio": win_rate(session),
        "quantshift_session_pnl_usd": sum(session),
        "quantshift_session_drawdown_ratio": max_drawdown(engine.start_equity or 1.0, session),
    }


def registry(engine: Engine) -> Any:
    """The engine's own registry: its families only (no process or platform collectors)."""
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(engine))
    return reg


def exposition(reg: Any) -> bytes:
    """The Prometheus text format (0.0.4) of a registry."""
    from prometheus_client import generate_latest

    return bytes(generate_latest(reg))
