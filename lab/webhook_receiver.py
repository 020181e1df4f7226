"""The lab's webhook receiver: it takes what a notification would send to Slack, Telegram or a generic
endpoint, keeps it, and shows it to the demo and the tests. Served by the exchange process (plain HTTP:
http is accepted only for the lab).

  POST /hook/{channel}               a generic or Slack-style message (a JSON object with `text`)
  POST /bot{token}/sendMessage       Telegram's Bot API shape (`chat_id` and `text` required, as there)
  POST /alertmanager/{channel}       Alertmanager's webhook (`status` and `alerts`: what fires and resolves)
  GET  /lab/webhook/received         what arrived, oldest first (lab admin token)
  POST /lab/webhook/fault            delay_s, status: make the receiver slow or failing (lab admin token)
  GET  /lab/webhook/fault            that setting, and how many messages were attempted
  DELETE /lab/webhook/received       forget what arrived (lab admin token)
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from lab.exchanges.state import require_admin
from lab.httpd import ApiError, Request, Router

KEEP = 1000


class WebhookReceiver:
    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self.received: list[dict[str, Any]] = []
        self.delay_s, self.status, self.attempts = 0.0, 200, 0
        self.lock = threading.Lock()
        self.router = Router()
        self._register()

    def authenticate(self, req: Request) -> None:
        require_admin(req, self.admin_token)  # /lab/... needs the admin token; a hook's URL is its credential

    def _take(self, req: Request, channel: str, need: tuple[str, ...]) -> dict[str, Any]:
        with self.lock:
            delay, status = self.delay_s, self.status
            self.attempts += 1
        if delay:
            time.sleep(delay)
        if status != 200:
            raise ApiError(status, "the lab receiver is set to fail")
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(body, dict) or any(not body.get(k) for k in need):
            raise ApiError(400, f"a message needs {', '.join(need)}")
        entry = {"channel": channel, "at": round(time.time(), 3), "body": body}
        with self.lock:
            self.received = [*self.received[-(KEEP - 1) :], entry]
        return entry

    def _register(self) -> None:
        r = self.router

        @r.route("POST", "/hook/{channel}")
        def hook(req: Request) -> Any:
            self._take(req, req.vars["channel"], ("text",))
            return {"ok": True}

        @r.route("POST", "/alertmanager/{channel}")
        def alertmanager(req: Request) -> Any:
            self._take(req, "alertmanager:" + req.vars["channel"], ("status", "alerts"))
            return {"ok": True}

        @r.route("POST", "/{bot}/sendMessage")
        def telegram(req: Request) -> Any:
            if not req.vars["bot"].startswith("bot"):
                raise ApiError(404, "Not Found")
            entry = self._take(req, "telegram", ("chat_id", "text"))
            return {"ok": True, "result": {"message_id": len(self.received), "text": entry["body"]["text"]}}

        @r.route("GET", "/lab/webhook/received")
        def received(req: Request) -> Any:
            with self.lock:
                return list(self.received)

        @r.route("DELETE", "/lab/webhook/received")
        def forget(req: Request) -> Any:
            with self.lock:
                self.received = []
            return {"ok": True}

        @r.route("GET", "/lab/webhook/fault")
        def show_fault(req: Request) -> Any:
            with self.lock:
                return {"delay_s": self.delay_s, "status": self.status, "attempts": self.attempts}

        @r.route("POST", "/lab/webhook/fault")
        def fault(req: Request) -> Any:
            try:
                delay, status = float(req.params.get("delay_s", 0)), int(req.params.get("status", 200))
            except ValueError:
                raise ApiError(400, "delay_s is seconds, status an HTTP code") from None
            with self.lock:
                self.delay_s, self.status = max(0.0, delay), status
            return {"delay_s": self.delay_s, "status": self.status}


def describe(entry: dict[str, Any]) -> str:
    """One line per message as an operator reads it: a notification's text, or what Alertmanager says
    fires or resolved (alert, host, bot: summary)."""
    body = entry.get("body") or {}
    if "alerts" in body:
        parts = []
        for alert in body.get("alerts") or []:
            labels, notes = alert.get("labels") or {}, alert.get("annotations") or {}
            where = " ".join(str(labels[k]) for k in ("host", "bot") if labels.get(k))
            parts.append(
                f"{str(alert.get('status', body.get('status', ''))).upper()} {labels.get('alertname', '?')} {where}: {notes.get('summary', '')}"
            )
        return "; ".join(parts)
    return str(body.get("text", ""))
