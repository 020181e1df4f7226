from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import labkit

# Test labs never share an address, bridge or state directory with the operator's lab.
MEMORY_SUBNET = "10.231.8.0/24"
LXC_SUBNET = "10.231.9.0/24"
LXC_BRIDGE = "qsbrt0"


@pytest.fixture(scope="session")
def memory_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    lab = labkit.lab_settings(tmp_path_factory.mktemp("memlab"), MEMORY_SUBNET, "qsbrm0")
    with labkit.running_lab(lab, "memory") as facts:
        facts["settings"] = lab
        yield facts


def lxc_available() -> str | None:
    if os.geteuid() != 0:
        return "the lxc backend needs root"
    missing = [t for t in ("lxc-start", "debootstrap") if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (make setup)" if missing else None


@pytest.fixture(scope="session")
def lxc_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = lxc_available()
    if reason:
        pytest.skip(reason)
    lab = labkit.lab_settings(Path(tmp_path_factory.mktemp("lxclab")), LXC_SUBNET, LXC_BRIDGE)
    with labkit.running_lab(lab, "lxc", with_monitoring=True) as facts:
        facts["settings"] = lab
        yield facts


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.botkit import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    import redis

    if redis_server.proc is None:  # a test stopped it: bring it back for the next one
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    url: str = redis_server.url
    return url


@pytest.fixture
def trade_lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A private lab whose market moves ten bars a second, so strategies act within a test's seconds."""
    lab = labkit.lab_settings(tmp_path, "10.231.14.0/24", "qsbrx0")
    with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_MARKET_SPEED": "600"}) as facts:
        facts["settings"] = lab
        yield facts
