"""systemd's notify protocol: READY=1, WATCHDOG=1, STATUS=..., STOPPING=1 as datagrams to $NOTIFY_SOCKET.

Outside systemd (no socket) every call does nothing. WATCHDOG=1 is sent only by the trading loop after a
completed tick, so systemd's watchdog vouches for the loop itself, never for a side thread.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, path: str | None = None) -> None:
        path = path if path is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + path[1:]) if path.startswith("@") else path  # '@' names an abstract socket
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def active(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError:
            pass  # systemd gone or the socket full: never let reporting break trading

    def ready(self, status: str, watchdog_s: float | None = None) -> None:
        """Warm; `watchdog_s` sets systemd's watchdog to the bot's own bound (WATCHDOG_USEC)."""
        extra = [f"WATCHDOG_USEC={int(watchdog_s * 1_000_000)}"] if watchdog_s else []
        self.send("READY=1", f"STATUS={status}", *extra)

    def watchdog(self, status: str) -> None:
        self.send("WATCHDOG=1", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")
