"""`/healthz` (ready | standby | degraded, with the reason) and `/metrics` (Prometheus text)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.metrics import prometheus


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        engine = self.server.engine
        if self.path.startswith("/healthz"):
            doc = engine.health()
            body, ctype = json.dumps(doc).encode(), "application/json"
            # standby is healthy (it waits for the lease by design); degraded and stopping are not.
            code = 200 if doc["status"] in ("ready", "standby", "starting") else 503
        elif self.path.startswith("/metrics"):
            body, ctype, code = prometheus(engine.metric_samples()).encode(), "text/plain; version=0.0.4", 200
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
        super().__init__((host, port), _Handler)

    def start(self) -> None:
        # A short poll so shutdown() returns at once: SIGTERM-to-exit time is part of every switchover.
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="health", daemon=True).start()
