"""The bot's structured log: one JSON line per event, what operators grep and what benches measure."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

log = logging.getLogger("bot")


def event(kind: str, **fields: Any) -> None:
    """One structured log line (JSON): what operators grep and what benches measure."""
    log.info(json.dumps({"event": kind, "t": round(time.time(), 6), "pid": os.getpid(), **fields}, default=str))
