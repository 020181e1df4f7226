"""The production deployment window: after the NYSE close (early closes and holidays from the exchange
calendar), never on a Friday, never close to the open; crypto bots on weekends. "Now" is a parameter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from quantshift_bot.errors import InputError

NEW_YORK = ZoneInfo("America/New_York")


MARKETS = ("equity", "crypto")  # equity: the exchange calendar's closes; crypto: around the clock


@dataclass(frozen=True)
class WindowRules:
    after_close_minutes: int = 15  # let the close settle (last fills, end-of-day reconciliation)
    before_open_minutes: int = 60  # the new release must be running and checked well before the open
    no_friday: bool = True
    crypto_weekends_only: bool = True  # crypto trades around the clock: deploy when it is quietest


class WindowError(InputError):
    """The time or market given cannot be judged (no zone, beyond the exchange calendar...)."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Sessions:
    """The NYSE sessions the exchange calendar knows, in unix seconds: what the window reads."""

    first_minute: float
    last_open: float
    opens: list[float]  # sorted
    closes: list[float]  # closes[i] ends the session opened at opens[i]
    by_date: dict[str, int]  # New York date (YYYY-MM-DD) -> its session's index


@lru_cache(maxsize=1)
def _sessions() -> Sessions:
    """The sessions, from a cache file kept per exchange_calendars version and month (a deploy's window
    check then costs milliseconds instead of importing pandas, about a second), else from the calendar."""
    import json
    import os
    from importlib import metadata
    from pathlib import Path

    version = metadata.version("exchange_calendars")
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = home / "quantshift" / f"xnys-{version}-{dt.datetime.now(dt.UTC):%Y-%m}.json"
    try:
        doc = json.loads(cache.read_text())
    except (OSError, ValueError):
        doc = _from_calendar()
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(cache)
        except OSError:
            pass  # no cache: the next check asks the calendar again
    opens, closes = [float(t) for t in doc["opens"]], [float(t) for t in doc["closes"]]
    by_date = {dt.datetime.fromtimestamp(t, NEW_YORK).strftime("%Y-%m-%d"): i for i, t in enumerate(opens)}
    return Sessions(float(doc["first_minute"]), float(doc["last_open"]), opens, closes, by_date)


def _from_calendar() -> dict[str, Any]:
    # Imported here: it pulls in pandas and takes a second; only the controller ever asks.
    import exchange_calendars

    cal = exchange_calendars.get_calendar("XNYS")
    return {
        "first_minute": cal.first_minute.timestamp(),
        "last_open": cal.session_open(cal.last_session).timestamp(),
        "opens": [t.timestamp() for t in cal.opens],
        "closes": [t.timestamp() for t in cal.closes],
    }


def _utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise WindowError("give 'now' with a timezone (e.g. 2026-11-24T22:00:00+00:00)")
    try:
        t.astimezone(NEW_YORK)  # the rules read New York's clock
        return t.astimezone(dt.UTC)
    except OverflowError:
        raise WindowError(f"{t.isoformat()} is out of range for a deployment window") from None


def _within_calendar(now: dt.datetime) -> None:
    """The exchange calendar knows the past sessions since 2006 and the next year's; the next open must be in it."""
    cal = _sessions()
    first, last = dt.datetime.fromtimestamp(cal.first_minute, dt.UTC), dt.datetime.fromtimestamp(cal.last_open, dt.UTC)
    if not first <= now < last:
        raise WindowError(
            f"{now:%Y-%m-%d %H:%M} UTC is outside the exchange calendar ({first:%Y-%m-%d} to {last:%Y-%m-%d %H:%M} UTC): give a time within it"
        )


def check(now: dt.datetime, market: str = "equity", rules: WindowRules | None = None) -> Decision:
    """May a production deploy of a `market` (equity | crypto) bot start at `now`?"""
    r = rules or WindowRules()
    now = _utc(now)
    local = now.astimezone(NEW_YORK)
    day = local.strftime("%A")
    if market == "equity":
        _within_calendar(now)
    if r.no_friday and local.weekday() == 4:
        return Decision(False, f"{local:%Y-%m-%d %H:%M} New York is a Friday: no production deploys on Fridays")
    if market == "crypto":
        if r.crypto_weekends_only and local.weekday() < 5:
            return Decision(False, f"{local:%Y-%m-%d %H:%M} New York is a {day}: crypto bots deploy on weekends only")
        return Decision(True, f"{local:%Y-%m-%d %H:%M} New York, {day}: inside the crypto weekend window")
    if market != "equity":
        raise WindowError(f"market must be equity or crypto, got {market!r}")
    import bisect

    cal = _sessions()
    at = now.timestamp()
    next_open = dt.datetime.fromtimestamp(cal.opens[bisect.bisect_right(cal.opens, at)], dt.UTC)
    today = cal.by_date.get(f"{local:%Y-%m-%d}")
    if today is not None:
        close = dt.datetime.fromtimestamp(cal.closes[today], dt.UTC)
        open_ = dt.datetime.fromtimestamp(cal.opens[today], dt.UTC)
        early = " (early close)" if close.astimezone(NEW_YORK).hour < 16 else ""
        if open_ - dt.timedelta(minutes=r.before_open_minutes) <= now < close + dt.timedelta(minutes=r.after_close_minutes):
            if now < open_:
                return Decision(
                    False, f"{local:%H:%M} New York is within {r.before_open_minutes} min of the open ({open_.astimezone(NEW_YORK):%H:%M})"
                )
            return Decision(
                False,
                f"the market is open or just closed: the window starts {r.after_close_minutes} min after the close "
                f"({close.astimezone(NEW_YORK):%H:%M} New York{early})",
            )
    if now > next_open - dt.timedelta(minutes=r.before_open_minutes):
        return Decision(
            False,
            f"{local:%H:%M} New York is within {r.before_open_minutes} min of the next open ({next_open.astimezone(NEW_YORK):%a %H:%M})",
        )
    return Decision(
        True, f"{local:%Y-%m-%d %H:%M} New York, {day}: market closed, next open {next_open.astimezone(NEW_YORK):%a %Y-%m-%d %H:%M}"
    )
