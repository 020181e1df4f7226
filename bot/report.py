"""The comparison as one self-contained HTML page: tables and inline SVG plots, nothing fetched."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence

from bot.compare import Comparison, Side

COLORS = {"shadow": "#d9822b", "production": "#2b6cb0"}
W, H, PAD = 640, 240, 40


def _scale(values: Sequence[float], lo: float, hi: float, out_lo: float, out_hi: float) -> list[float]:
    span = (hi - lo) or 1.0
    return [out_lo + (v - lo) / span * (out_hi - out_lo) for v in values]


def _axes(title: str, y_lo: float, y_hi: float, fmt: str) -> str:
    return (
        f'<text x="{PAD}" y="16" class="t">{html.escape(title)}</text>'
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" class="ax"/>'
        f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{H - PAD}" class="ax"/>'
        f'<text x="4" y="{H - PAD}" class="l">{format(y_lo, fmt)}</text><text x="4" y="32" class="l">{format(y_hi, fmt)}</text>'
    )


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], fmt: str = ",.0f") -> str:
    points = [p for s in series.values() for p in s]
    if not points:
        return f'<svg viewBox="0 0 {W} {H}" role="img"><text x="{PAD}" y="40">{html.escape(title)}: no data</text></svg>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    y_lo, y_hi = min(ys), max(ys)
    body = [_axes(title, y_lo, y_hi, fmt)]
    for name, pts in series.items():
        if not pts:
            continue
        px = _scale([p[0] for p in pts], min(xs), max(xs), PAD, W - 10)
        py = _scale([p[1] for p in pts], y_lo, y_hi, H - PAD, 24)
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(zip(px, py, strict=True)))
        body.append(f'<path d="{path}" fill="none" stroke="{COLORS[name]}" stroke-width="2"><title>{name}</title></path>')
    return f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">{"".join(body)}</svg>'


def histogram(title: str, series: dict[str, list[float]], bins: int = 20) -> str:
    values = [v for s in series.values() for v in s]
    if not values:
        return f'<svg viewBox="0 0 {W} {H}" role="img"><text x="{PAD}" y="40">{html.escape(title)}: no data</text></svg>'
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1e-9
    counts = {name: [0] * bins for name in series}
    for name, vals in series.items():
        for v in vals:
            counts[name][min(bins - 1, int((v - lo) / width))] += 1
    top = max(max(c) for c in counts.values()) or 1
    body = [_axes(title, 0, top, "d")]
    slot = (W - 10 - PAD) / bins
    for k, (name, c) in enumerate(counts.items()):
        for b, n in enumerate(c):
            h = n / top * (H - PAD - 24)
            x = PAD + b * slot + k * slot / 2
            body.append(
                f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{slot / 2 - 1:.1f}" height="{h:.1f}" fill="{COLORS[name]}" opacity="0.8">'
                f"<title>{name}: {n} trades in [{lo + b * width:.4%}, {lo + (b + 1) * width:.4%})</title></rect>"
            )
    body.append(f'<text x="{PAD}" y="{H - 8}" class="l">{lo:.2%}</text><text x="{W - 70}" y="{H - 8}" class="l">{hi:.2%}</text>')
    return f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">{"".join(body)}</svg>'


def _drawdown(side: Side, start: float) -> list[tuple[float, float]]:
    peak, out = start, []
    for t, eq in side.equity_curve:
        peak = max(peak, eq)
        out.append((t, -(peak - eq) / peak if peak else 0.0))
    return out


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
    agree = (
        f"<p>Signal agreement (same symbol and side within {c.settings.agreement_seconds:.0f} s): <b>{c.agreement:.1%}</b></p>"
        if c.agreement is not None
        else ""
    )
    charts = [
        line_chart("Equity (start + cumulative pnl)", {"shadow": s.equity_curve, "production": p.equity_curve}),
        line_chart(
            "Drawdown from peak",
            {"shadow": _drawdown(s, c.settings.start_equity), "production": _drawdown(p, c.settings.start_equity)},
            fmt=".1%",
        ),
        histogram("Distribution of trade returns", {"shadow": s.returns, "production": p.returns}),
    ]
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:720px;color:#1a202c}}
h1{{font-size:1.4rem}} table{{border-collapse:collapse;width:100%}} th,td{{padding:.3rem .6rem;border-bottom:1px solid #e2e8f0;text-align:right}}
th{{text-align:left;font-weight:500}} .verdict{{padding:.8rem 1rem;border-radius:6px;font-weight:600}}
.pass{{background:#e6fffa;color:#22543d}} .marginal{{background:#fffbeb;color:#744210}} .fail{{background:#fff5f5;color:#742a2a}} .inconclusive{{background:#edf2f7;color:#2d3748}}
svg{{width:100%;height:auto;margin:1rem 0}} .ax{{stroke:#a0aec0}} .t{{font-size:13px;font-weight:600}} .l{{font-size:11px;fill:#4a5568}}
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
