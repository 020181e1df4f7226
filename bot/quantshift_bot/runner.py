"""`python -m quantshift_bot run`: read the config, connect, serve health, trade until SIGTERM, exit 0."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

EXIT_CONFIG = 2


def run(env_file: Path | None = None) -> int:
    from quantshift_bot import config

    logging.basicConfig(level=os.environ.get("QS_LOG_LEVEL", "INFO"), format="%(message)s", stream=sys.stdout)
    env = dict(os.environ)
    try:
        if env_file is not None:
            env = config.read_env_file(env_file) | env
        cfg = config.load(env)
    except (config.ConfigError, OSError) as err:
        print(f"quantshift bot: {err}", file=sys.stderr)
        return EXIT_CONFIG
    import redis

    from quantshift_bot import brokers
    from quantshift_bot.engine import Engine
    from quantshift_bot.health import HealthServer

    client = redis.Redis.from_url(cfg.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=5)
    engine = Engine(cfg, brokers.make(cfg), client)

    def stop(signum: int, frame: FrameType | None) -> None:
        engine.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = HealthServer(engine, cfg.metrics_host, cfg.metrics_port)
    server.start()
    try:
        return engine.run()
    finally:
        server.shutdown()
