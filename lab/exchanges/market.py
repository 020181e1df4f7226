"""Deterministic market data on a controllable clock: a seeded random walk per symbol (or a CSV replay).

The same seed, symbol and minute always give the same bar, so every bot (primary, shadow, paper)
sees the same prices, and a test can predict them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

EPOCH = int(dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC).timestamp())  # a Monday, 09:30 New York


@dataclass(frozen=True)
class Bar:
    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the market's own name
    c: float
    v: int
    n: int
    vw: float


class Clock:
    """Market time: starts at `start`, runs `speed` times faster than the wall clock, can be set or advanced."""

    def __init__(self, start: int = EPOCH + 3600, speed: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._base, self._mono, self.speed = float(start), time.monotonic(), speed

    def now(self) -> float:
        with self._lock:
            return self._base + (time.monotonic() - self._mono) * self.speed

    def set(self, when: float | None = None, speed: float | None = None) -> None:
        with self._lock:
            current = self._base + (time.monotonic() - self._mono) * self.speed
            self._base, self._mono = (float(when) if when is not None else current), time.monotonic()
            if speed is not None:
                self.speed = speed

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)


class Market:
    """Minute bars for any symbol; prices are cached per symbol as the walk is extended."""

    def __init__(self, seed: int = 42, volatility: float = 0.002, csv_path: Path | None = None) -> None:
        self.seed, self.volatility = seed, volatility
        self._closes: dict[str, list[float]] = {}
        self._rngs: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self._csv: dict[str, dict[int, Bar]] = _load_csv(csv_path) if csv_path else {}
        self._shocks: list[tuple[int, float]] = []  # (first minute index, factor): level shifts from then on

    def shock(self, fraction: float, now: float) -> int:
        """Every symbol's price moves by `fraction` (-0.5: halves) from the next minute on, and stays there:
        a gap no stop can escape. Bars already completed never change. Returns the first shocked minute."""
        first = int(now) // 60 * 60 + 60
        with self._lock:
            self._shocks.append(((first - EPOCH) // 60, 1.0 + fraction))
        return first

    def _level(self, i: int) -> float:
        level = 1.0
        for first, factor in self._shocks:
            if i >= first:
                level *= factor
        return level

    def _walk(self, symbol: str, upto: int) -> list[float]:
        closes = self._closes.get(symbol)
        if closes is None:
            digest = hashlib.sha256(f"{self.seed}:{symbol}".encode()).digest()
            closes = [50.0 + int.from_bytes(digest[:2], "big") % 450]
            self._closes[symbol] = closes
            self._rngs[symbol] = random.Random(int.from_bytes(digest[2:10], "big"))
        rng = self._rngs[symbol]
        while len(closes) <= upto:
            # A gentle mean-reverting drift keeps the walk in a sane band however long the lab runs.
            drift = -0.0005 * math.log(closes[-1] / closes[0])
            closes.append(round(closes[-1] * math.exp(drift + rng.gauss(0, self.volatility)), 4))
        return closes

    def bar(self, symbol: str, minute_start: int) -> Bar:
        if symbol in self._csv:
            found = self._csv[symbol].get(minute_start)
            if found is not None:
                return found
        i = max(1, (minute_start - EPOCH) // 60)
        with self._lock:
            closes = self._walk(symbol, i)
            o, c = round(closes[i - 1] * self._level(i - 1), 4), round(closes[i] * self._level(i), 4)
        wick = abs(c - o) * 0.5 + o * self.volatility * 0.25
        # A gap (a shock) makes a long body: its lower wick never reaches zero, as no traded price does.
        h, low = round(max(o, c) + wick, 4), round(max(min(o, c) - wick, min(o, c) * 0.5), 4)
        v = 1000 + (i * 7919 + len(symbol) * 104729) % 9000
        return Bar(minute_start, o, h, low, c, v, v // 10, round((o + c + h + low) / 4, 4))

    def bars(self, symbol: str, start: int, end: int) -> list[Bar]:
        """Completed minute bars with start <= t < end."""
        first = (start + 59) // 60 * 60
        return [self.bar(symbol, t) for t in range(first, end - 59, 60)]

    def price(self, symbol: str, now: float) -> float:
        """The last trade price: the close of the most recent completed minute."""
        return self.bar(symbol, int(now) // 60 * 60 - 60).c


def _load_csv(path: Path) -> dict[str, dict[int, Bar]]:
    """CSV with columns t (unix seconds), symbol, o, h, l, c, v: replayed instead of the walk."""
    out: dict[str, dict[int, Bar]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            t = int(row["t"]) // 60 * 60
            o, h, low, c, v = (float(row[k]) for k in ("o", "h", "l", "c", "v"))
            out.setdefault(row["symbol"], {})[t] = Bar(t, o, h, low, c, int(v), max(1, int(v) // 10), round((o + h + low + c) / 4, 4))
    return out
