"""The deployment monitor: a bot's /healthz and /metrics against alert thresholds (the gates use it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlertThresholds:
    """When `quantshift bot health` alerts on a running bot (looser than a deploy gate: a bot that
    passed its gate is only flagged here, never rolled back; the gate's set is quantshift.gate.GateThresholds)."""

    min_win_rate: float = 0.5
    max_drawdown: float = 0.2
    max_error_rate: float = 0.05
    min_trades: int = 10  # below this many closed trades the win rate says nothing yet


def parse_prometheus(text: str) -> dict[str, float]:
    """`name{labels} value` lines to {name: value} (the first sample of each name, labels ignored)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        out.setdefault(name, float(value.replace("+Inf", "inf")))
    return out


def evaluate(health: dict[str, Any], values: dict[str, float], t: AlertThresholds) -> list[str]:
    alerts = []
    if health.get("status") not in ("ready", "standby"):
        alerts.append(f"status {health.get('status')}: {health.get('reason') or 'no reason given'}")
    trades = values.get("quantshift_closed_trades", 0)
    win_rate = values.get("quantshift_win_ratio", 0)
    if trades >= t.min_trades and win_rate < t.min_win_rate:
        alerts.append(f"win rate {win_rate:.1%} < {t.min_win_rate:.0%} over {int(trades)} trades")
    if values.get("quantshift_max_drawdown_ratio", 0) > t.max_drawdown:
        alerts.append(f"drawdown {values['quantshift_max_drawdown_ratio']:.1%} > {t.max_drawdown:.0%}")
    if values.get("quantshift_broker_error_ratio", 0) > t.max_error_rate:
        alerts.append(f"error rate {values['quantshift_broker_error_ratio']:.1%} > {t.max_error_rate:.0%}")
    return alerts


def check(url: str, thresholds: AlertThresholds, timeout: float = 5) -> dict[str, Any]:
    import urllib.error  # here: the command line imports this module for its defaults and must start fast
    import urllib.request

    base = url.rstrip("/")
    try:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=timeout) as resp:
                health = json.load(resp)
        except urllib.error.HTTPError as err:  # 503 still carries the JSON with the reason
            health = json.loads(err.read() or b"{}")
        with urllib.request.urlopen(base + "/metrics", timeout=timeout) as resp:
            values = parse_prometheus(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as err:
        return {"ok": False, "url": base, "alerts": [f"unreachable: {err}"], "health": None, "metrics": {}}
    alerts = evaluate(health, values, thresholds)
    return {"ok": not alerts, "url": base, "alerts": alerts, "health": health, "metrics": values}


def render(report: dict[str, Any]) -> str:
    lines = [f"{report['url']}: {'OK' if report['ok'] else 'ALERT'}"]
    health = report.get("health") or {}
    if health:
        lines.append(f"  status {health.get('status')} mode {health.get('mode')} release {health.get('release')}")
    m = report.get("metrics", {})
    for key in ("quantshift_closed_trades", "quantshift_win_ratio", "quantshift_max_drawdown_ratio", "quantshift_broker_error_ratio"):
        if key in m:
            lines.append(f"  {key.removeprefix('quantshift_'):<20} {m[key]:.4g}")
    lines += [f"  ALERT {a}" for a in report["alerts"]]
    return "\n".join(lines)
