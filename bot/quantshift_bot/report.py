"""The comparison as one self-contained HTML page: tables and inline SVG charts, nothing fetched.

Axes: a time axis is labelled in UTC at a step chosen for its span (seconds, minutes, hours, days, weeks
from Monday, months), with the date under the first tick and wherever it changes. A value axis gets about
five "nice" ticks (1, 2, 2.5 or 5 times a power of ten) that cover the data. Every tick has a gridline.
quantshift.timeline draws its time axis with the same functions.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from quantshift_bot.compare import Comparison, Side

COLORS = {"shadow": "#d9822b", "production": "#2b6cb0"}
W, H = 720, 270
LEFT, RIGHT, TOP, BOTTOM = 72, 40, 30, 46  # margins of the plot area inside each chart

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86_400, 604_800
MONDAY = 4 * DAY  # 1970-01-05 00:00 UTC, the first Monday after the epoch: week ticks fall on Mondays
TIME_STEPS = (
    *(1, 2, 5, 10, 15, 30),
    *(MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE),
    *(HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR),
    *(DAY, 2 * DAY, 3 * DAY, 4 * DAY, WEEK, 2 * WEEK),
)
MONTH_STEPS = (1, 2, 3, 6, 12)
CSS = (
    ".g{stroke:#e2e8f0;stroke-width:1} .ax{stroke:#718096;stroke-width:1} .t{font-size:13px;font-weight:600}"
    " .l,.tx,.ty,.txd{font-size:11px;fill:#4a5568} .txd{fill:#718096}"
)


@dataclass(frozen=True)
class Tick:
    at: float  # the value (unix seconds on a time axis)
    label: str
    detail: str = ""  # a time tick's second line: the date (or year) at the first tick and where it changes


@dataclass(frozen=True)
class Axis:
    """Values lo..hi drawn from out_lo to out_hi (pixels; out_hi < out_lo for a y axis), with its ticks."""

    lo: float
    hi: float
    ticks: tuple[Tick, ...]
    out_lo: float
    out_hi: float

    def at(self, value: float) -> float:
        span = (self.hi - self.lo) or 1.0
        return self.out_lo + (value - self.lo) / span * (self.out_hi - self.out_lo)


def nice_step(raw: float, integer: bool = False) -> float:
    """The smallest of 1, 2, 2.5, 5 (times a power of ten) at least `raw`; a whole number when `integer`."""
    exponent = math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = factor * 10.0**exponent
        if step >= raw * (1 - 1e-9) and not (integer and step != round(step)):
            return step
    return 10.0 ** (exponent + 1)


def nice_ticks(lo: float, hi: float, count: int = 5, percent: bool = False, integer: bool = False) -> list[Tick]:
    """About `count` evenly spaced round values, the first <= lo and the last >= hi, labelled with as many
    decimals as the step needs (as percentages when `percent`)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"axis bounds must be finite, got {lo}, {hi}")
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:  # one value: a small band around it
        pad = abs(lo) * 0.05 or (0.01 if percent else 1.0)
        lo, hi = lo - pad, hi + pad
    step = nice_step((hi - lo) / max(1, count - 1), integer)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    values = [k * step for k in range(first, last + 1)]
    scale = 100.0 if percent else 1.0
    decimals = next(d for d in range(12) if all(abs(round(v * scale, d) - v * scale) < step * scale * 1e-6 for v in values))
    suffix = "%" if percent else ""
    return [Tick(v, f"{(0.0 if abs(v) < step * 1e-9 else v) * scale:,.{decimals}f}{suffix}") for v in values]


def time_ticks(start: float, end: float, most: int = 8) -> list[Tick]:
    """Ticks at round UTC times within [start, end] (unix seconds), at most `most` + 1 of them: the smallest
    step of TIME_STEPS (seconds to two weeks) that fits, else whole months."""
    start, end = min(start, end), max(start, end)
    if end - start < 1:
        start, end = start - 30, end + 30
    step = next((s for s in TIME_STEPS if (end - start) / s <= most), None)
    if step is None:
        return _month_ticks(start, end, most)
    origin = MONDAY if step >= WEEK else 0
    k = math.ceil((start - origin) / step)
    ticks: list[Tick] = []
    shown = ""
    while origin + k * step <= end:
        t = float(origin + k * step)
        when = dt.datetime.fromtimestamp(t, dt.UTC)
        if step < DAY:
            label, context = when.strftime("%H:%M:%S" if step < MINUTE else "%H:%M"), when.strftime("%Y-%m-%d")
        else:
            label, context = f"{when:%b} {when.day}", str(when.year)
        ticks.append(Tick(t, label, context if context != shown else ""))
        shown = context
        k += 1
    return ticks


def _month_ticks(start: float, end: float, most: int) -> list[Tick]:
    months = (end - start) / (30.44 * DAY)
    step = next((m for m in MONTH_STEPS if months / m <= most), 12 * math.ceil(months / 12 / most))
    first = dt.datetime.fromtimestamp(start, dt.UTC)
    index = first.year * 12 + first.month - 1
    if dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC).timestamp() < start:
        index += 1
    index = math.ceil(index / step) * step
    ticks: list[Tick] = []
    shown = ""
    while (t := dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC).timestamp()) <= end:
        when = dt.datetime.fromtimestamp(t, dt.UTC)
        if step % 12 == 0:
            ticks.append(Tick(t, str(when.year)))
        else:
            ticks.append(Tick(t, f"{when:%b}", str(when.year) if str(when.year) != shown else ""))
            shown = str(when.year)
        index += step
    return ticks


def time_axis(times: Iterable[float], out_lo: float, out_hi: float) -> Axis:
    """A time axis over exactly the span of `times` (a minute around a single time)."""
    values = list(times)
    lo, hi = min(values), max(values)
    if hi - lo < 1:
        lo, hi = lo - 30, hi + 30
    return Axis(lo, hi, tuple(time_ticks(lo, hi)), out_lo, out_hi)


def value_axis(values: Iterable[float], out_lo: float, out_hi: float, percent: bool = False, integer: bool = False) -> Axis:
    """A value axis whose bounds are its first and last nice tick."""
    found = list(values)
    ticks = nice_ticks(min(found), max(found), percent=percent, integer=integer)
    return Axis(ticks[0].at, ticks[-1].at, tuple(ticks), out_lo, out_hi)


def x_axis_svg(x: Axis, top: float, bottom: float) -> str:
    """Vertical gridlines from `top` to `bottom`, the axis line at `bottom`, tick labels (and dates) below it."""
    out = [f'<line x1="{x.out_lo:.1f}" y1="{bottom:.1f}" x2="{x.out_hi:.1f}" y2="{bottom:.1f}" class="ax"/>']
    for tick in x.ticks:
        px = x.at(tick.at)
        out.append(f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{bottom + 4:.1f}" class="g"/>')
        out.append(f'<text x="{px:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" class="tx">{html.escape(tick.label)}</text>')
        if tick.detail:
            out.append(f'<text x="{px:.1f}" y="{bottom + 30:.1f}" text-anchor="middle" class="txd">{html.escape(tick.detail)}</text>')
    return "".join(out)


def y_axis_svg(y: Axis, left: float, right: float) -> str:
    """Horizontal gridlines from `left` to `right`, the axis line at `left`, tick labels left of it."""
    out = [f'<line x1="{left:.1f}" y1="{y.out_lo:.1f}" x2="{left:.1f}" y2="{y.out_hi:.1f}" class="ax"/>']
    for tick in y.ticks:
        py = y.at(tick.at)
        out.append(f'<line x1="{left - 4:.1f}" y1="{py:.1f}" x2="{right:.1f}" y2="{py:.1f}" class="g"/>')
        out.append(f'<text x="{left - 7:.1f}" y="{py + 4:.1f}" text-anchor="end" class="ty">{html.escape(tick.label)}</text>')
    return "".join(out)


def _chart(title: str, caption: str, body: Sequence[str]) -> str:
    head = (
        f'<text x="{LEFT}" y="18" class="t">{html.escape(title)}</text>'
        f'<text x="{W - RIGHT}" y="18" text-anchor="end" class="l">{html.escape(caption)}</text>'
    )
    return f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">{head}{"".join(body)}</svg>'


def _empty(title: str) -> str:
    return _chart(title, "", [f'<text x="{LEFT}" y="60" class="l">no data</text>'])


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], percent: bool = False, include: Sequence[float] = ()) -> str:
    """Lines over time, one per series (`include`: values the y axis must show, e.g. 0)."""
    points = [p for s in series.values() for p in s]
    if not points:
        return _empty(title)
    x = time_axis((p[0] for p in points), LEFT, W - RIGHT)
    y = value_axis([*(p[1] for p in points), *include], H - BOTTOM, TOP, percent=percent)
    body = [y_axis_svg(y, LEFT, W - RIGHT), x_axis_svg(x, TOP, H - BOTTOM)]
    for name, pts in series.items():
        if not pts:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{x.at(t):.1f},{y.at(v):.1f}" for i, (t, v) in enumerate(pts))
        body.append(f'<path d="{path}" fill="none" stroke="{COLORS[name]}" stroke-width="2"><title>{name}</title></path>')
        if len(pts) == 1:  # a line of one point draws nothing
            body.append(f'<circle cx="{x.at(pts[0][0]):.1f}" cy="{y.at(pts[0][1]):.1f}" r="3" fill="{COLORS[name]}"/>')
    return _chart(title, "time (UTC)", body)


def histogram(title: str, series: dict[str, list[float]]) -> str:
    """Counts of values per bin, the series side by side; bins are a quarter of the x tick step."""
    values = [v for s in series.values() for v in s]
    if not values:
        return _empty(title)
    x = value_axis(values, LEFT, W - RIGHT, percent=True)
    width = (x.ticks[1].at - x.ticks[0].at) / 4
    bins = max(1, round((x.hi - x.lo) / width))
    counts = {name: [0] * bins for name in series}
    for name, vals in series.items():
        for v in vals:
            counts[name][min(bins - 1, max(0, int((v - x.lo) / width)))] += 1
    top = max(max(c) for c in counts.values())
    y = value_axis([0, top], H - BOTTOM, TOP, integer=True)
    body = [y_axis_svg(y, LEFT, W - RIGHT), x_axis_svg(x, TOP, H - BOTTOM)]
    slot = (x.out_hi - x.out_lo) / bins
    for k, (name, c) in enumerate(counts.items()):
        for b, n in enumerate(c):
            if not n:
                continue
            px, py = x.out_lo + b * slot + k * slot / len(counts), y.at(n)
            body.append(
                f'<rect x="{px:.1f}" y="{py:.1f}" width="{max(1.0, slot / len(counts) - 1):.1f}" height="{y.at(0) - py:.1f}" '
                f'fill="{COLORS[name]}" opacity="0.8"><title>{name}: {n} trades in [{x.lo + b * width:.3%}, '
                f"{x.lo + (b + 1) * width:.3%})</title></rect>"
            )
    return _chart(title, "trade return; trades per bin", body)


def _drawdown(side: Side, start: float) -> list[tuple[float, float]]:
    peak, out = start, []
    for t, eq in side.equity_curve:
        peak = max(peak, eq)
        out.append((t, -(peak - eq) / peak if peak else 0.0))
    return out


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def render(c: Comparison, title: str = "Shadow versus production") -> str:
    s, p, v = c.shadow, c.production, c.verdict

    def pf(x: float) -> str:
        return "∞" if x == math.inf else f"{x:.2f}"

    rows = [
        ("Trades", f"{s.trades}", f"{p.trades}"),
        ("PnL", f"{s.pnl:,.2f}", f"{p.pnl:,.2f}"),
        ("Win rate", f"{s.win_rate:.1%}", f"{p.win_rate:.1%}"),
        ("Profit factor (per trade)", pf(s.profit_factor), pf(p.profit_factor)),
        (f"Sharpe (per trade, x sqrt({252 if c.settings.market == 'equity' else 365}))", f"{s.sharpe:.2f}", f"{p.sharpe:.2f}"),
        ("Max drawdown", f"{s.max_drawdown:.2%}", f"{p.max_drawdown:.2%}"),
        (
            f"Mean return per {c.settings.interval_seconds // 60} min interval",
            f"{s.mean_interval_return:.4%}",
            f"{p.mean_interval_return:.4%}",
        ),
    ]
    table = "".join(f"<tr><th>{html.escape(a)}</th><td>{b}</td><td>{c_}</td></tr>" for a, b, c_ in rows)
    within = f"same symbol and side within {c.settings.agreement_seconds:.0f} s"
    if c.agreement is not None and c.overlap is not None:
        agree = (
            f"<p>Signal agreement ({within}, while both ran: {_utc(c.overlap.start)} to {_utc(c.overlap.end)} UTC): "
            f'<b id="agreement">{c.agreement:.1%}</b></p>'
        )
    elif c.agreement is not None:
        agree = f'<p>Signal agreement ({within}): <b id="agreement">{c.agreement:.1%}</b></p>'
    else:
        agree = '<p class="l" id="agreement">Signal agreement: not measured (no orders of both sides over a period both ran).</p>'
    charts = [
        line_chart("Equity (start + cumulative pnl)", {"shadow": s.equity_curve, "production": p.equity_curve}),
        line_chart(
            "Drawdown from peak",
            {"shadow": _drawdown(s, c.settings.start_equity), "production": _drawdown(p, c.settings.start_equity)},
            percent=True,
            include=(0.0,),
        ),
        histogram("Distribution of trade returns", {"shadow": s.returns, "production": p.returns}),
    ]
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:760px;color:#1a202c}}
h1{{font-size:1.4rem}} table{{border-collapse:collapse;width:100%}} th,td{{padding:.3rem .6rem;border-bottom:1px solid #e2e8f0;text-align:right}}
th{{text-align:left;font-weight:500}} .verdict{{padding:.8rem 1rem;border-radius:6px;font-weight:600}}
.pass{{background:#e6fffa;color:#22543d}} .marginal{{background:#fffbeb;color:#744210}} .fail{{background:#fff5f5;color:#742a2a}} .inconclusive{{background:#edf2f7;color:#2d3748}}
svg{{width:100%;height:auto;margin:1rem 0}} {CSS}
.key span{{display:inline-block;width:12px;height:12px;margin:0 .3rem 0 1rem;vertical-align:middle}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict {v.result}" id="verdict">{v.result.upper()}: {html.escape(v.reason)}</p>
<p class="key"><span style="background:{COLORS["shadow"]}"></span>shadow<span style="background:{COLORS["production"]}"></span>production</p>
<table><thead><tr><th></th><th>shadow</th><th>production</th></tr></thead><tbody>{table}</tbody></table>
{agree}
{"".join(charts)}
<p class="l">Mann-Whitney U on per-interval returns, one-sided, confidence {c.settings.confidence:.0%}, tolerance {c.settings.tolerance:.3%};
at least {c.settings.min_trades} trades per side and {c.settings.min_intervals} intervals or the verdict is inconclusive. Made {made}.</p>
</body></html>
"""
