"""The bars the bots decide on, recorded in their Redis with a bounded retention: the market data the
replay gate (`quantshift replay`) judges a candidate on.

One stream per market and symbol, `qs:bars:{market}:{symbol}`, whose entry ids are the bars' open times
in milliseconds: a bar is recorded once however many bots see it (Redis refuses an id that is not newer
than the stream's last), and the stream keeps about the last RETENTION bars (30 days of minutes).
Recording never stands in the way of trading: a failure is logged once and the bot goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from quantshift_bot.models import Bar

PREFIX = "qs:bars:"
RETENTION = 30 * 24 * 60  # bars per symbol: 30 days of 1-minute bars
FIELDS = ("t", "symbol", "o", "h", "l", "c", "v")  # the CSV's columns (the lab exchanges read the same)


def key(market: str, symbol: str) -> str:
    return f"{PREFIX}{market}:{symbol}"


class Recorder:
    def __init__(self, client: redis.Redis, market: str, retention: int = RETENTION) -> None:
        self.client, self.market, self.retention = client, market, retention
        self.last: dict[str, int] = {}  # symbol -> the open time of the newest bar recorded

    def record(self, bars: Mapping[str, Sequence[Bar]], symbols: set[str]) -> int:
        """Record the bars of `symbols` newer than what is recorded; returns how many were added."""
        for symbol in symbols - set(self.last):
            newest = self.client.xrevrange(key(self.market, symbol), count=1)
            self.last[symbol] = _open_time(newest[0][0]) if newest else 0
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        for symbol in sorted(symbols):
            for bar in bars.get(symbol, ()):
                if bar.t > self.last[symbol]:
                    pipe.xadd(
                        key(self.market, symbol),
                        {"o": bar.o, "h": bar.h, "l": bar.l, "c": bar.c, "v": bar.v},
                        id=f"{bar.t * 1000}-0",
                        maxlen=self.retention,
                        approximate=True,
                    )
                    self.last[symbol] = bar.t
                    queued += 1
        if not queued:
            return 0
        results = pipe.execute(raise_on_error=False)  # an id another bot recorded first is refused: fine
        return sum(1 for r in results if not isinstance(r, Exception))


def _open_time(entry_id: object) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(raw.split("-")[0]) // 1000


def _sane(values: tuple[str, ...]) -> bool:
    try:
        o, h, low, c, v = (float(x) for x in values)
    except ValueError:
        return False
    return min(o, h, low, c) > 0 and v >= 0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def export(client: redis.Redis, out: Path) -> dict[str, Path]:
    """Every recorded bar as CSV, one file per market in `out`: {market: file}."""
    rows: dict[str, list[tuple[object, ...]]] = {}
    for name in sorted(_text(k) for k in client.scan_iter(match=f"{PREFIX}*:*", count=1000)):
        market, _, symbol = name.removeprefix(PREFIX).partition(":")
        for entry_id, f in client.xrange(name) or []:
            fields = {_text(k): _text(v) for k, v in (f or {}).items()}
            values = tuple(fields.get(k, "") for k in ("o", "h", "l", "c", "v"))
            if not _sane(values):
                continue  # a broker's bad print (a price at or below zero): not market data to judge a release on
            rows.setdefault(market, []).append((_open_time(entry_id), symbol, *values))
    found = {}
    for market, lines in rows.items():
        path = out / f"bars-{market}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FIELDS)
            w.writerows(sorted(lines))
        found[market] = path
    return found
