"""Notifications: one audit record becomes one webhook message, in the receiver's own format.

Formats: `generic` (a JSON document with the text and the whole record), `slack` (an incoming-webhook
`{"text": ...}`) and `telegram` (the Bot API's sendMessage: the URL carries the bot token, the body the
`chat_id`). The URL is a secret (Slack and Telegram put the credential in it): it comes from Vault
(`quantshift_bot_webhook`), reaches the controller's commands as QUANTSHIFT_WEBHOOK_URL and the guard in its
0600 config, and is never printed.

Sending never holds anything up: the controller hands the message to a detached process
(`python -m quantshift.webhook send`), the guard to a thread, and both return at once; a receiver that is
slow, down or refusing costs at most a line in a log (`webhook_failed`), never a rollback's time.

Standard library only: the role installs this file next to the release guard on every bot host.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

FORMATS = ("generic", "slack", "telegram")
TRIES = 3
TIMEOUT_S = 5.0


class WebhookError(ValueError):
    """A webhook setting that cannot work (the controller reports it as its AuditError)."""


def check(config: dict[str, Any], allow_http: bool = False) -> dict[str, Any]:
    """The webhook settings as given ({} or no url: notifications off), or one WebhookError naming what is wrong."""
    url = str(config.get("url") or "").strip()
    if not url:
        return {}
    fmt = str(config.get("format") or "generic")
    if fmt not in FORMATS:
        raise WebhookError(f"webhook format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError(f"webhook URL must be https://HOST/..., got a {parts.scheme or 'scheme-less'} URL")
    if parts.scheme == "http" and not allow_http:
        raise WebhookError("webhook URL must be https outside the lab (it carries a credential)")
    chat_id = str(config.get("chat_id") or "").strip()
    if fmt == "telegram" and (not chat_id or not parts.path.endswith("/sendMessage")):
        raise WebhookError("a telegram webhook needs the Bot API's .../bot<TOKEN>/sendMessage URL and a chat_id")
    return {"url": url, "format": fmt, "chat_id": chat_id}


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The controller's webhook, from QUANTSHIFT_WEBHOOK_URL/_FORMAT/_CHAT_ID (the playbooks set them from
    Vault); http only with QUANTSHIFT_WEBHOOK_ALLOW_HTTP=1 (the lab)."""
    env = os.environ if environ is None else environ
    return check(
        {
            "url": env.get("QUANTSHIFT_WEBHOOK_URL", ""),
            "format": env.get("QUANTSHIFT_WEBHOOK_FORMAT", "") or "generic",
            "chat_id": env.get("QUANTSHIFT_WEBHOOK_CHAT_ID", ""),
        },
        allow_http=env.get("QUANTSHIFT_WEBHOOK_ALLOW_HTTP", "") in ("1", "true", "True"),
    )


def worth_sending(record: dict[str, Any]) -> bool:
    """Deploy start and end, a failed gate, every rollback, override and promotion; not lock bookkeeping."""
    kind, outcome = record.get("kind"), record.get("outcome")
    return kind in ("deploy", "rollback", "override", "promotion") or (kind == "gate" and outcome != "ok")


def text(record: dict[str, Any]) -> str:
    """One line a person reads on a phone."""
    kind, outcome = record.get("kind", "?"), record.get("outcome", "?")
    headline = {
        ("deploy", "started"): "deploy started",
        ("deploy", "ok"): "deployed",
        ("deploy", "failed"): "DEPLOY FAILED",
        ("gate", "failed"): "GATE FAILED",
        ("rollback", "started"): "ROLLING BACK",
        ("rollback", "ok"): "ROLLED BACK",
        ("rollback", "failed"): "ROLLBACK FAILED",
    }.get((kind, outcome), f"{kind} {outcome}")
    when = dt.datetime.fromtimestamp(float(record.get("when") or time.time()), dt.UTC).strftime("%H:%M:%S UTC")
    where = f" on {record['host']}" if record.get("host") else ""
    reason = f": {record['reason']}" if record.get("reason") else ""
    return f"QuantShift {record.get('stage', '?')}: {headline} {record.get('release', '?')}{where} at {when} by {record.get('who', '?')}{reason}"


def payload(config: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    line = text(record)
    if config["format"] == "slack":
        return {"text": line}
    if config["format"] == "telegram":
        return {"chat_id": config["chat_id"], "text": line, "disable_web_page_preview": True}
    return {"source": "quantshift", "event": f"{record.get('kind')}.{record.get('outcome')}", "text": line, "record": record}


def send(config: dict[str, Any], record: dict[str, Any], tries: int = TRIES, timeout: float = TIMEOUT_S) -> str:
    """POST the message; "" when delivered, else why not (after `tries`). Never raises, never names the URL."""
    body = json.dumps(payload(config, record), default=str).encode()
    why = "not tried"
    for attempt in range(tries):
        request = urllib.request.Request(config["url"], data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
            return ""
        except urllib.error.HTTPError as err:
            why = f"HTTP {err.code}"
            if 400 <= err.code < 500 and err.code != 429:
                break  # the receiver refuses this message: repeating it will not help
        except (OSError, ValueError) as err:
            why = err.__class__.__name__
        time.sleep(min(2.0, 0.5 * 2**attempt))
    return why


def in_thread(config: dict[str, Any], record: dict[str, Any], done: Callable[[str], None]) -> threading.Thread:
    """Send from a daemon thread (the guard): `done` gets "" or the reason it was not delivered."""
    thread = threading.Thread(target=lambda: done(send(config, record)), name="webhook", daemon=True)
    thread.start()
    return thread


def detached(config: dict[str, Any], record: dict[str, Any]) -> None:
    """Send from a process of its own that outlives this one (the controller's commands return at once)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "quantshift.webhook", "send"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert child.stdin is not None
    child.stdin.write(json.dumps({"config": config, "record": record}, default=str).encode())
    child.stdin.close()


def failure_log() -> str:
    return os.environ.get("QUANTSHIFT_WEBHOOK_LOG", os.path.join(os.path.expanduser("~"), ".local", "state", "quantshift", "webhook.log"))


def _main() -> int:
    """`python -m quantshift.webhook send` (JSON {config, record} on stdin): the detached sender."""
    if sys.argv[1:] != ["send"]:
        print("usage: python -m quantshift.webhook send < {config, record}", file=sys.stderr)
        return 2
    job = json.load(sys.stdin)
    why = send(job["config"], job["record"])
    if why:
        path = failure_log()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(json.dumps({"event": "webhook_failed", "t": round(time.time(), 3), "why": why, "message": text(job["record"])}) + "\n")
    return 0 if not why else 1


if __name__ == "__main__":
    sys.exit(_main())
