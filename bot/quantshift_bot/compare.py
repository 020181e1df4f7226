"""Shadow versus production: the same metrics side by side, and a statistical verdict.

Conventions:
- Trades are closed round trips from each side's journal; pnl in account currency, return = pnl /
  entry notional. Per-interval returns are the sums of trade returns closed in each interval
  (default one hour) over the intervals where either side traded (an idle interval counts as 0).
- Profit factor is per trade (sum of wins / |sum of losses|); Sharpe is per-trade, annualised with
  sqrt(252) for equities or sqrt(365) for crypto; max drawdown is on start equity + cumulative pnl.
- Signal agreement is measured over the period both sides ran, so on the bars both saw. A side's lifetime
  runs from the first to the last time it recorded anything compare reads (an order; a trade opened or
  closed). Only orders inside the overlap [max(first), min(last)] of the two lifetimes count; an order up
  to `agreement_seconds` outside it still matches one inside, so jitter at the edges costs nothing. An
  order matches at most one of the other side, with the same symbol and side and at most
  `agreement_seconds` apart; agreement = matched pairs / the larger of the two sides' counted orders.
  Identical order streams give 100 %; no overlap, or no order in it, gives None (not 0).
- Verdict, in the manner of automated canary analysis: a one-sided Mann-Whitney U test of "shadow's
  per-interval returns are lower than production's" at the stated confidence. Significant: fail.
  Not significant but shadow's mean interval return is below production's by more than `tolerance`
  (absolute, in return units): marginal. Otherwise pass. Fewer than `min_intervals` intervals or
  `min_trades` trades on either side: inconclusive, never pass.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from quantshift_bot import metrics


@dataclass(frozen=True)
class Settings:
    confidence: float = 0.95
    tolerance: float = 0.001
    interval_seconds: int = 3600
    min_trades: int = 20
    min_intervals: int = 10
    agreement_seconds: float = 60.0
    start_equity: float = 100_000.0
    market: str = "equity"


@dataclass
class Side:
    trades: int
    pnl: float
    win_rate: float
    profit_factor: float
    sharpe: float
    max_drawdown: float
    mean_interval_return: float
    equity_curve: list[tuple[float, float]] = field(default_factory=list)  # (closed_at, equity)
    returns: list[float] = field(default_factory=list)


@dataclass
class Verdict:
    result: str  # pass | marginal | fail | inconclusive
    reason: str
    p_value: float | None
    u_statistic: float | None
    intervals: int


@dataclass(frozen=True)
class Period:
    """A stretch of time in unix seconds, both ends included."""

    start: float
    end: float

    def holds(self, t: float, slack: float = 0.0) -> bool:
        return self.start - slack <= t <= self.end + slack


@dataclass
class Comparison:
    settings: Settings
    shadow: Side
    production: Side
    agreement: float | None
    verdict: Verdict
    overlap: Period | None = None  # when both sides ran: the period signal agreement is measured over

    def as_dict(self, curves: bool = False) -> dict[str, Any]:
        doc = asdict(self)
        if not curves:
            for side in ("shadow", "production"):
                doc[side].pop("equity_curve")
                doc[side].pop("returns")
        for side in ("shadow", "production"):
            if doc[side]["profit_factor"] == math.inf:
                doc[side]["profit_factor"] = "inf"
        return doc


def side_metrics(trades: Sequence[dict[str, Any]], s: Settings, interval_returns: list[float]) -> Side:
    ordered = sorted(trades, key=lambda t: float(t["closed_at"]))
    pnls = [float(t["pnl"]) for t in ordered]
    rets = [float(t["ret"]) for t in ordered]
    curve, equity = [], s.start_equity
    for t, p in zip(ordered, pnls, strict=True):
        equity += p
        curve.append((float(t["closed_at"]), equity))
    return Side(
        trades=len(ordered),
        pnl=sum(pnls),
        win_rate=metrics.win_rate(pnls),
        profit_factor=metrics.profit_factor(pnls),
        sharpe=metrics.sharpe(rets, metrics.PERIODS[s.market]),
        max_drawdown=metrics.max_drawdown(s.start_equity, pnls),
        mean_interval_return=statistics.fmean(interval_returns) if interval_returns else 0.0,
        equity_curve=curve,
        returns=rets,
    )


def interval_returns(
    shadow: Sequence[dict[str, Any]], production: Sequence[dict[str, Any]], seconds: int
) -> tuple[list[float], list[float]]:
    buckets: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for idx, trades in enumerate((shadow, production)):
        for t in trades:
            buckets[int(float(t["closed_at"]) // seconds)][idx] += float(t["ret"])
    keys = sorted(buckets)
    return [buckets[k][0] for k in keys], [buckets[k][1] for k in keys]


def mann_whitney_less(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """U statistic of x and the one-sided p-value of "x tends to be lower than y" (normal approximation,
    with tie and continuity corrections)."""
    n1, n2 = len(x), len(y)
    combined = sorted([(v, 0) for v in x] + [(v, 1) for v in y], key=lambda p: p[0])
    ranks = [0.0] * len(combined)
    ties = 0.0
    i = 0
    while i < len(combined):
        j = i
        while j + 1 < len(combined) and combined[j + 1][0] == combined[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, combined, strict=True) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1, 0.5
    z = (u1 - mean + 0.5) / math.sqrt(var)  # continuity correction toward the null for "less"
    return u1, 0.5 * math.erfc(-z / math.sqrt(2))


def lifetime(times: Iterable[float]) -> Period | None:
    """From the first to the last of `times`; None when there are none."""
    ordered = sorted(times)
    return Period(ordered[0], ordered[-1]) if ordered else None


def side_lifetime(trades: Sequence[dict[str, Any]], orders: Sequence[dict[str, Any]]) -> Period | None:
    """When a side ran, as far as its records tell: its orders, and its trades' openings and closings."""
    times = [float(o["time"]) for o in orders]
    times += [float(t[k]) for t in trades for k in ("opened_at", "closed_at") if t.get(k) is not None]
    return lifetime(times)


def overlap(a: Period | None, b: Period | None) -> Period | None:
    """The period both ran, None when they never ran at the same time."""
    if a is None or b is None or max(a.start, b.start) > min(a.end, b.end):
        return None
    return Period(max(a.start, b.start), min(a.end, b.end))


def _pairs(shadow: Sequence[dict[str, Any]], production: Sequence[dict[str, Any]], seconds: float) -> list[tuple[int, int]]:
    """The most (shadow index, production index) pairs of the same symbol and side at most `seconds` apart,
    each order in one pair at most: per symbol and side, in time order, each shadow order takes the earliest
    production order still free within reach (optimal for matching points within a distance)."""
    by_key: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for j, p in enumerate(production):
        by_key[(str(p["symbol"]), str(p["side"]))].append((float(p["time"]), j))
    for candidates in by_key.values():
        candidates.sort()
    nxt: dict[tuple[str, str], int] = defaultdict(int)
    pairs = []
    for t, i in sorted((float(s["time"]), i) for i, s in enumerate(shadow)):
        key = (str(shadow[i]["symbol"]), str(shadow[i]["side"]))
        candidates, k = by_key.get(key, []), nxt[key]
        while k < len(candidates) and candidates[k][0] < t - seconds:
            k += 1
        if k < len(candidates) and candidates[k][0] <= t + seconds:
            pairs.append((i, candidates[k][1]))
            k += 1
        nxt[key] = k
    return pairs


def agreement(
    shadow_orders: Sequence[dict[str, Any]],
    production_orders: Sequence[dict[str, Any]],
    seconds: float,
    period: Period | None = None,
) -> float | None:
    """Signal agreement over `period` (default: the overlap of the two order streams' own lifetimes), as
    the module docstring defines it; None when the sides never ran together or placed no order then."""
    if period is None:
        period = overlap(lifetime(float(o["time"]) for o in shadow_orders), lifetime(float(o["time"]) for o in production_orders))
    if period is None:
        return None
    shadow = [o for o in shadow_orders if period.holds(float(o["time"]), seconds)]
    production = [o for o in production_orders if period.holds(float(o["time"]), seconds)]
    shadow_in = {i for i, o in enumerate(shadow) if period.holds(float(o["time"]))}
    production_in = {j for j, o in enumerate(production) if period.holds(float(o["time"]))}
    # A pair counts when one of its orders is inside; its partner just outside the edge then counts too.
    pairs = [(i, j) for i, j in _pairs(shadow, production, seconds) if i in shadow_in or j in production_in]
    counted = max(len(shadow_in | {i for i, _ in pairs}), len(production_in | {j for _, j in pairs}))
    return len(pairs) / counted if counted else None


def compare(
    shadow_trades: Sequence[dict[str, Any]],
    production_trades: Sequence[dict[str, Any]],
    settings: Settings | None = None,
    shadow_orders: Sequence[dict[str, Any]] = (),
    production_orders: Sequence[dict[str, Any]] = (),
) -> Comparison:
    s = settings or Settings()
    xs, ys = interval_returns(shadow_trades, production_trades, s.interval_seconds)
    shadow, production = side_metrics(shadow_trades, s, xs), side_metrics(production_trades, s, ys)
    both = overlap(side_lifetime(shadow_trades, shadow_orders), side_lifetime(production_trades, production_orders))
    agreed = agreement(shadow_orders, production_orders, s.agreement_seconds, both) if both is not None else None
    return Comparison(s, shadow, production, agreed, judge(shadow, production, xs, ys, s), both)


def judge(shadow: Side, production: Side, xs: list[float], ys: list[float], s: Settings) -> Verdict:
    if min(shadow.trades, production.trades) < s.min_trades or len(xs) < s.min_intervals:
        return Verdict(
            "inconclusive",
            f"too little data: {shadow.trades} shadow and {production.trades} production trades over {len(xs)} "
            f"intervals (need {s.min_trades} trades each and {s.min_intervals} intervals)",
            None,
            None,
            len(xs),
        )
    u, p = mann_whitney_less(xs, ys)
    alpha = 1 - s.confidence
    gap = production.mean_interval_return - shadow.mean_interval_return
    if p < alpha:
        return Verdict(
            "fail",
            f"shadow's interval returns are lower than production's (Mann-Whitney U={u:.1f}, one-sided p={p:.4f} < {alpha:.2f})",
            p,
            u,
            len(xs),
        )
    if gap > s.tolerance:
        return Verdict(
            "marginal",
            f"not significantly worse (p={p:.4f}) but shadow's mean interval return trails production's by "
            f"{gap:.4%} > tolerance {s.tolerance:.4%}",
            p,
            u,
            len(xs),
        )
    return Verdict(
        "pass",
        f"shadow is not worse than production (p={p:.4f} >= {alpha:.2f}; mean interval return gap {gap:+.4%} "
        f"within tolerance {s.tolerance:.4%})",
        p,
        u,
        len(xs),
    )


def render_table(c: Comparison) -> str:
    rows = [
        ("trades", f"{c.shadow.trades}", f"{c.production.trades}"),
        ("pnl", f"{c.shadow.pnl:,.2f}", f"{c.production.pnl:,.2f}"),
        ("win rate", f"{c.shadow.win_rate:.1%}", f"{c.production.win_rate:.1%}"),
        ("profit factor", _pf(c.shadow.profit_factor), _pf(c.production.profit_factor)),
        ("sharpe (annualised)", f"{c.shadow.sharpe:.2f}", f"{c.production.sharpe:.2f}"),
        ("max drawdown", f"{c.shadow.max_drawdown:.2%}", f"{c.production.max_drawdown:.2%}"),
        ("mean interval return", f"{c.shadow.mean_interval_return:.4%}", f"{c.production.mean_interval_return:.4%}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'shadow':>14}  {'production':>14}"]
    lines += [f"{name:<{width}}  {a:>14}  {b:>14}" for name, a, b in rows]
    if c.agreement is not None:
        lines.append(f"{'signal agreement':<{width}}  {c.agreement:>14.1%}")
        if c.overlap is not None:
            lines.append(f"{'':<{width}}  (while both ran: {_utc(c.overlap.start)} to {_utc(c.overlap.end)} UTC)")
    lines += ["", f"verdict: {c.verdict.result.upper()}: {c.verdict.reason}"]
    return "\n".join(lines)


def _pf(value: float) -> str:
    return "inf" if value == math.inf else f"{value:.2f}"


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
