"""A deterministic synthetic history of 1-minute bars, written in the lab's CSV replay format
(`t,symbol,o,h,l,c,v`, read by lab.exchanges.market), so the demo and tests have days of market data.

The model, per symbol: the log price is a trend path plus a swing around it. The trend path's minute
returns are a regime drift plus Gaussian noise; a regime lasts hours (a minimum plus an exponential
tail) and is a trend up, a trend down or, now and then, flat, its sign leaning back toward the symbol's
opening price so a month stays in a sane band. The swing is mean-reverting (it fades over some twenty
minutes): the rallies inside a fall and the dips inside a rise that whipsaw a short crossover. So a
moving-average crossover makes money here, the same rules inverted lose it, and a crossover that also
asks the longer trend does better than the plain one. Every minute of every day is a bar (24/7); the
same seed, symbols, days and start always give the same bars, byte for byte.

    python -m lab.history --days 30 --symbols AAPL,MSFT,NVDA --seed 42 --out history.csv [--start 2026-10-01]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import os
import random
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

HEADER = ("t", "symbol", "o", "h", "l", "c", "v")
DEFAULT_START = "2026-10-01"
MAX_DAYS = 366  # a year of minutes per symbol is plenty for a lab; more is a typo
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")


@dataclass(frozen=True)
class Model:
    """The generator's knobs; per-minute figures are log returns."""

    noise: float = 0.0008  # standard deviation of a minute's noise
    drift: float = 0.00015  # typical size of a trend's drift per minute (each trend draws 0.5x to 1.5x)
    regime_min: int = 90  # minutes a regime lasts at least
    regime_mean: int = 150  # mean minutes beyond the minimum (exponential)
    flat: float = 0.15  # chance a new regime is flat (no drift)
    pull: float = 4.0  # how hard a trend's sign leans back toward the opening price (per unit of log distance)
    swing: float = 0.0015  # standard deviation of the mean-reverting swing around the trend (log)
    swing_minutes: float = 20.0  # the swing's time scale: how long it takes to fade

    def __post_init__(self) -> None:
        for name in ("noise", "drift", "pull", "swing"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"model {name} must be >= 0, got {getattr(self, name)!r}")
        if self.regime_min < 1 or not self.regime_mean > 0 or not 0 <= self.flat <= 1 or not self.swing_minutes >= 1:
            raise ValueError("model needs regime_min >= 1, regime_mean > 0, flat in [0, 1] and swing_minutes >= 1")


@dataclass(frozen=True)
class HistoryBar:
    t: int  # bar open, unix seconds
    symbol: str
    o: float
    h: float
    l: float  # noqa: E741 - the market's own name
    c: float
    v: int

    def csv_line(self) -> str:
        return f"{self.t},{self.symbol},{self.o:.4f},{self.h:.4f},{self.l:.4f},{self.c:.4f},{self.v}\n"


class _Path:
    """One symbol's price path, a minute at a time, from its own seeded generator."""

    def __init__(self, seed: int, symbol: str, model: Model) -> None:
        digest = hashlib.sha256(f"lab.history:{seed}:{symbol}".encode()).digest()
        self.rng = random.Random(int.from_bytes(digest[:8], "big"))
        self.model = model
        self.anchor = 20.0 + int.from_bytes(digest[8:10], "big") % 480  # opening price, 20 to 500
        self.close = self.anchor
        self.level, self.swing = 0.0, 0.0  # log of the trend path (from the anchor) and the swing around it
        self.drift, self.left = 0.0, 0
        self.keep = 1.0 - 1.0 / model.swing_minutes
        self.kick = model.swing * math.sqrt(1.0 - self.keep**2)

    def _new_regime(self) -> None:
        m, rng = self.model, self.rng
        self.left = m.regime_min + int(rng.expovariate(1.0 / m.regime_mean))
        if rng.random() < m.flat:
            self.drift = 0.0
            return
        up = rng.random() < 1.0 / (1.0 + math.exp(m.pull * self.level))  # level: log distance from the opening price
        self.drift = (1.0 if up else -1.0) * m.drift * rng.uniform(0.5, 1.5)

    def bar(self, t: int, symbol: str) -> HistoryBar:
        if self.left <= 0:
            self._new_regime()
        self.left -= 1
        m, rng = self.model, self.rng
        z = rng.gauss(0.0, 1.0)
        o = self.close
        self.level += self.drift + m.noise * z
        self.swing = self.swing * self.keep + self.kick * rng.gauss(0.0, 1.0)
        c = round(self.anchor * math.exp(self.level + self.swing), 4)
        self.close = c
        h = round(max(o, c) * (1.0 + abs(rng.gauss(0.0, m.noise * 0.5))), 4)
        low = round(min(o, c) * (1.0 - abs(rng.gauss(0.0, m.noise * 0.5))), 4)
        v = int(rng.uniform(500.0, 1500.0) * (1.0 + abs(z)))
        return HistoryBar(t, symbol, o, h, low, c, v)


def parse_start(text: str) -> int:
    """Unix seconds of a date (YYYY-MM-DD, midnight UTC) or an ISO date-time (UTC unless it says otherwise)
    on a whole minute (ValueError otherwise)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"start {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    t = when.timestamp()
    if t % 60:
        raise ValueError(f"start {text!r} is not on a whole minute: bars open on the minute")
    return int(t)


def generate(
    days: int, symbols: Sequence[str], seed: int = 42, start: int | str = DEFAULT_START, model: Model | None = None
) -> Iterator[HistoryBar]:
    """Every minute's bar for every symbol over `days` from `start` (unix seconds or a date), in time order and,
    within a minute, in the order the symbols were given. ValueError, before the first bar, names a bad argument."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}, got {days!r}")
    if isinstance(symbols, str):
        raise ValueError(f"symbols must be a list of symbols, got the string {symbols!r}")
    names = list(symbols)
    if not names:
        raise ValueError("no symbols: give at least one, e.g. AAPL,MSFT")
    for name in names:
        if not isinstance(name, str) or not SYMBOL.match(name):
            raise ValueError(f"symbol {name!r} is not a ticker (letters, digits and . _ / -, up to 32 characters)")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"symbol(s) given twice: {', '.join(twice)}")
    first = parse_start(start) if isinstance(start, str) else start
    if isinstance(first, bool) or not isinstance(first, int) or first % 60:
        raise ValueError(f"start must be unix seconds on a whole minute, got {start!r}")
    return _bars(days, names, seed, first, model or Model())


def _bars(days: int, symbols: list[str], seed: int, start: int, model: Model) -> Iterator[HistoryBar]:
    paths = [(symbol, _Path(seed, symbol, model)) for symbol in symbols]
    for minute in range(days * 1440):
        t = start + 60 * minute
        for symbol, path in paths:
            yield path.bar(t, symbol)


def write_csv(path: Path, bars: Iterator[HistoryBar] | Sequence[HistoryBar]) -> int:
    """Writes the bars as the lab's CSV, atomically (a failed run leaves no half file); returns the row count."""
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(",".join(HEADER) + "\n")
            chunk: list[str] = []
            for bar in bars:
                chunk.append(bar.csv_line())
                if len(chunk) >= 10_000:
                    fh.writelines(chunk)
                    count += len(chunk)
                    chunk.clear()
            fh.writelines(chunk)
            count += len(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the message names the argument.
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m lab.history", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, required=True, help=f"days of minutes to write, 1 to {MAX_DAYS}")
    parser.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. AAPL,MSFT,NVDA")
    parser.add_argument("--seed", type=int, default=42, help="the same seed gives the same file (default 42)")
    parser.add_argument(
        "--start", default=DEFAULT_START, help=f"first bar: a date (midnight UTC) or ISO date-time (default {DEFAULT_START})"
    )
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write (replaced if it exists)")
    args = parser.parse_args(argv)
    out: Path = args.out
    if not out.parent.is_dir():
        parser.error(f"--out {out}: directory {out.parent} does not exist")
    if out.is_dir():
        parser.error(f"--out {out}: is a directory, not a file")
    try:
        bars = generate(args.days, [s.strip() for s in args.symbols.split(",")], args.seed, args.start)
    except ValueError as err:
        parser.error(str(err))
    try:
        rows = write_csv(out, bars)
    except OSError as err:
        print(f"{parser.prog}: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"{out}: {rows} bars ({args.days} days x {rows // (args.days * 1440)} symbols, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
