"""Helpers for bot tests: a real redis-server we start and stop, and bot processes with their own ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests import ROOT
from tests.labkit import free_port


class RedisServer:
    """A redis-server of our own (AOF on, so a restart keeps state), stopped by its pid."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: make setup")
        self.dir, self.port = workdir, free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()  # even when the block failed


class Bot:
    """`python -m quantshift_bot run` as a real process; its JSON log lines are read back from a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["QS_METRICS_PORT"])
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quantshift_bot", "run"], env=os.environ | env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                data: dict[str, Any] = json.load(resp)
                return data
        except urllib.error.HTTPError as err:
            data = json.loads(err.read())
            return data
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=2) as resp:
            return str(resp.read().decode())

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                doc = json.loads(line)
                if kind is None or doc.get("event") == kind:
                    out.append(doc)
        return out

    def wait_for(self, predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"bot exited ({self.proc.returncode}) while waiting for {what}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def bots(*envs: dict[str, str], tmp: Path) -> Iterator[list[Bot]]:
    started = [Bot(env, tmp / f"bot-{i}-{time.time_ns()}.log") for i, env in enumerate(envs)]
    try:
        yield started
    finally:
        for b in started:
            b.kill()


def lab_post(url: str, path: str, token: str, **params: Any) -> dict[str, Any]:
    import ssl
    from urllib.parse import urlencode

    req = urllib.request.Request(url + path, data=urlencode(params).encode(), headers={"X-Lab-Admin": token}, method="POST")
    ctx = ssl.create_default_context(cafile=os.environ.get("QS_TEST_CA")) if url.startswith("https") else None
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        data: dict[str, Any] = json.load(resp)
        return data


def lab_get(url: str, path: str, token: str) -> dict[str, Any]:
    req = urllib.request.Request(url + path, headers={"X-Lab-Admin": token})
    with urllib.request.urlopen(req, timeout=5) as resp:
        data: dict[str, Any] = json.load(resp)
        return data


NEVER_SIGNALS = '''
class Never:
    """Keeps the contract and never signals: a bot that only reconciles."""

    warmup = 1

    def decide(self, symbol, bars, position):
        return None

    def protection(self, entry):
        return None, None


def make(params):
    if params:
        raise ValueError(f"never takes no parameters, got {sorted(params)}")
    return Never()
'''


def strategy_on_path(where: Path, name: str, source: str = NEVER_SIGNALS) -> dict[str, str]:
    """A strategy package `name` (module qs_test_NAME, entry point NAME in quantshift.strategies) importable
    from `where` without installing it: its code and a .dist-info the bot's entry point lookup reads.
    Returns the environment a bot process needs to find it."""
    package = where / f"qs_test_{name}"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(source)
    info = where / f"qs_test_{name}-0.0.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: qs-test-{name}\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(f"[quantshift.strategies]\n{name} = qs_test_{name}:make\n")
    return {"QS_STRATEGY": name, "QS_STRATEGY_PARAMS": "{}", "PYTHONPATH": str(where)}
