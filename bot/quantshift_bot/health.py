"""`/healthz` (ready | standby | degraded, with the reason) and `/metrics` (Prometheus text)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from quantshift_bot import metrics

if TYPE_CHECKING:
    from quantshift_bot.engine import Engine


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        engine = self.server.engine
        if self.path.startswith("/healthz"):
            doc = document(engine)
            body, ctype = json.dumps(doc).encode(), "application/json"
            # standby is healthy (it waits for the lease by design); degraded and stopping are not.
            code = 200 if doc["status"] in ("ready", "standby", "starting") else 503
        elif self.path.startswith("/metrics"):
            body, ctype, code = metrics.exposition(self.server.registry), "text/plain; version=0.0.4; charset=utf-8", 200
        else:
            body, ctype, code = b'{"error": "not found"}', "application/json", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, engine: Any, host: str, port: int) -> None:
        self.engine = engine
        self.registry = metrics.registry(engine)
        super().__init__((host, port), _Handler)

    def start(self) -> None:
        # A short poll so shutdown() returns at once: SIGTERM-to-exit time is part of every switchover.
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="health", daemon=True).start()


def document(engine: Engine) -> dict[str, Any]:
    """Computed when asked: a loop that stopped completing ticks is `stalled`, whatever it last said."""
    held = engine.leases.held() if engine.leases is not None else []
    status, reason, age = engine.status, engine.reason, engine._loop_age()
    if not engine.loop_alive() and status != "stopping":
        idle = engine._idle_age() or 0.0
        status, reason = "stalled", f"no progress for {idle:.1f} s (limit {engine.cfg.stall_after_s:g} s); last tick {age or 0:.1f} s ago"
    return {
        "status": status,
        "reason": reason,
        "last_tick_age_s": age,
        "mode": engine.cfg.mode.value,
        "release": engine.cfg.release,
        "account": engine.cfg.account_id,
        "strategy": engine.cfg.strategy,
        "lease": {s: s in held for s in engine.cfg.lease_symbols} if engine.leases else None,
        "uptime_s": round(time.time() - engine.started, 1),
        "error_rate": round(engine.counters.error_rate, 4),
        "orders_sent": engine.counters.orders_sent,
        "would_be_orders": engine.counters.would_be_orders,
        "market": {s: {"t": t, "c": c} for s, (t, c) in sorted(engine.last_bars.items())},
        "session": {
            "trades": len(engine.session_pnls),
            "win_rate": round(metrics.win_rate(engine.session_pnls), 4),
            "pnl": round(sum(engine.session_pnls), 4),
            "drawdown": round(metrics.max_drawdown(engine.start_equity or 1.0, engine.session_pnls), 6),
        },
    }
