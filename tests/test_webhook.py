"""Notifications: each format reaches a receiver in its own shape (the lab's receiver, over HTTP), a slow
or failing receiver never holds up the command that recorded the event, and a bad webhook setting is
refused in one line before anything is recorded or locked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.httpd import JsonServer
from lab.webhook_receiver import WebhookReceiver
from quantshift import webhook
from tests import hostkit

ADMIN = "lab-admin-token"


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"X-Lab-Admin": ADMIN, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as answer:
            return json.load(answer)

    def received(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/lab/webhook/received"))

    def fault(self, delay_s: float = 0, status: int = 200) -> dict[str, Any]:
        return dict(self._call("POST", "/lab/webhook/fault", {"delay_s": delay_s, "status": status}))

    def attempts(self) -> int:
        return int(self._call("GET", "/lab/webhook/fault")["attempts"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    lab = WebhookReceiver(ADMIN)
    server = JsonServer(("127.0.0.1", 0), lab.router, lab.authenticate, envelope=lambda d: d)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def record(**over: Any) -> dict[str, Any]:
    return {"kind": "rollback", "release": "r2", "stage": "production", "outcome": "ok", "host": "h1", "reason": "guard: error_rate",
            "who": "guard@h1", "when": 1_800_000_000.0, "extra": {}} | over  # fmt: skip


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quantshift", *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_each_format_reaches_its_receiver_in_its_own_shape(receiver: Receiver) -> None:
    formats = {
        "generic": {"url": receiver.url + "/hook/ops", "format": "generic"},
        "slack": {"url": receiver.url + "/hook/slack", "format": "slack"},
        "telegram": {"url": receiver.url + "/bot123456:ABC-token/sendMessage", "format": "telegram", "chat_id": "-1001"},
    }
    for name, given in formats.items():
        assert webhook.send(webhook.check(given, allow_http=True), record()) == "", name
    generic, slack, telegram = receiver.received()
    assert generic["body"]["event"] == "rollback.ok" and generic["body"]["record"]["release"] == "r2"
    assert set(slack["body"]) == {"text"} and "ROLLED BACK r2 on h1" in slack["body"]["text"]
    assert (telegram["channel"], telegram["body"]["chat_id"]) == ("telegram", "-1001") and "guard: error_rate" in telegram["body"]["text"]


def test_a_refusing_receiver_is_not_retried_a_failing_one_is(receiver: Receiver) -> None:
    hook = webhook.check({"url": receiver.url + "/hook/ops"}, allow_http=True)
    receiver.fault(status=400)
    assert webhook.send(hook, record()) == "HTTP 400" and receiver.attempts() == 1
    receiver.fault(status=503)
    assert webhook.send(hook, record()) == "HTTP 503" and receiver.attempts() == 1 + webhook.TRIES
    assert receiver.received() == []


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"QUANTSHIFT_WEBHOOK_URL": "http://hooks.example.invalid/x"}, "must be https outside the lab"),
        ({"QUANTSHIFT_WEBHOOK_URL": "hooks.example.invalid/x"}, "must be https://HOST"),
        ({"QUANTSHIFT_WEBHOOK_URL": "https://hooks.example.invalid/x", "QUANTSHIFT_WEBHOOK_FORMAT": "teams"}, "format must be one of"),
        ({"QUANTSHIFT_WEBHOOK_URL": "https://api.example.invalid/botT/sendMessage", "QUANTSHIFT_WEBHOOK_FORMAT": "telegram"}, "chat_id"),
    ],
)
def test_a_bad_webhook_setting_refuses_the_deploy_before_the_lock_or_any_record(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    log = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTSHIFT_")} | {"QUANTSHIFT_AUDIT_LOG": str(log)} | settings
    taken = cli(env, "deploy", "lock", "acquire", "--environment", "production", "--owner", "run-1", "--release", "r2")
    assert taken.returncode == 1 and says in taken.stderr and len(taken.stderr.strip().splitlines()) == 1
    assert "Traceback" not in taken.stderr and "example.invalid" not in taken.stderr  # the URL is a secret
    recorded = cli(env, "deploy", "record", "--kind", "rollback", "--release", "r2", "--stage", "production", "--outcome", "ok")
    assert recorded.returncode == 1 and says in recorded.stderr
    assert not log.exists() and not (tmp_path / "deploy-production.lock").exists()


def test_a_deploy_start_is_sent_from_the_background_and_a_slow_receiver_holds_nothing_up(receiver: Receiver, tmp_path: Path) -> None:
    env = os.environ | {
        "QUANTSHIFT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "QUANTSHIFT_AUDIT_REDIS_URL": "",
        "QUANTSHIFT_WEBHOOK_URL": receiver.url + "/hook/ops",
        "QUANTSHIFT_WEBHOOK_ALLOW_HTTP": "1",
        "QUANTSHIFT_WEBHOOK_LOG": str(tmp_path / "webhook.log"),
    }
    receiver.fault(delay_s=3)
    taken = cli(env, "deploy", "lock", "acquire", "--environment", "production", "--owner", "run-1", "--release", "r2")
    assert taken.returncode == 0, taken.stderr
    assert receiver.received() == []  # the command has returned; its message is still on its way
    for _ in range(100):
        if receiver.received():
            break
        time.sleep(0.1)
    (only,) = receiver.received()  # the deploy's start, not the lock's bookkeeping
    assert only["body"]["event"] == "deploy.started" and only["body"]["record"]["release"] == "r2"
    # A receiver that stays down: the command still succeeds; the failure is logged without the URL.
    receiver.fault(status=500)
    failed = cli(env, "deploy", "record", "--kind", "gate", "--release", "r2", "--stage", "production", "--outcome", "failed")
    assert failed.returncode == 0
    for _ in range(100):
        if (tmp_path / "webhook.log").exists():
            break
        time.sleep(0.1)
    logged = json.loads((tmp_path / "webhook.log").read_text().splitlines()[-1])
    assert (logged["why"], "GATE FAILED r2" in logged["message"]) == ("HTTP 500", True)
    assert receiver.url not in (tmp_path / "webhook.log").read_text()
    assert (tmp_path / "webhook.log").stat().st_mode & 0o777 == 0o600


def test_the_guard_notifies_from_a_thread_and_only_with_a_valid_webhook(receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    g = hostkit.guard()
    receiver.fault(delay_s=1)
    g.notify({"webhook": {"url": receiver.url + "/hook/ops", "format": "slack"}, "lab": True}, record(outcome="started"))
    assert receiver.received() == []  # it returned without waiting for the slow receiver
    for _ in range(50):
        if receiver.received():
            break
        time.sleep(0.1)
    assert "ROLLING BACK r2" in receiver.received()[0]["body"]["text"]
    g.notify({"webhook": {"url": receiver.url + "/hook/ops"}, "lab": False}, record())  # http outside the lab
    assert '"webhook_failed"' in capsys.readouterr().out and len(receiver.received()) == 1
