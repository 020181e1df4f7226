"""The strategy contract, how the bot finds a strategy, and fractional-Kelly sizing.

A strategy is a Python package of its own (the user's), found through an entry point in the group
`quantshift.strategies`: the entry point's name is what a release names (QS_STRATEGY), its object a
factory `make(params: Mapping[str, float]) -> Strategy` that raises ValueError for bad parameters.
The example is `ma_cross` (strategies/ma_cross); `quantshift strategy new NAME` scaffolds another.

The contract, checked by `check` when the bot starts and on the controller before a release is copied
anywhere (STRATEGY.md in the repository says the same for authors):
- inputs: `decide(symbol, bars, position)` gets the symbol's latest completed 1-minute bars, oldest
  first (at most the bot's lookback), and the bot's position in it (None when flat); it returns a
  Signal for the latest bar (`bar_t` = that bar's `t`, a positive price, side buy or sell) or None;
- determinism: the same inputs give the same signal, whatever came before (no clock, no randomness,
  no state carried between calls that changes a decision);
- warm-up: `warmup` bars (an int >= 1, within the lookback) before the first signal: with fewer bars
  `decide` returns None;
- protection: `protection(entry)` gives the protective stop (below entry) and target (above entry) of
  a long position entered at `entry`, or None for either; the engine applies them to positions it
  adopts from the broker, and a buy signal carries its own.
The same Strategy object runs unchanged in paper, shadow, canary, live and replay: only what the
engine does with its signals differs by mode. The engine knows no concrete strategy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from quantshift_bot.errors import InputError
from quantshift_bot.models import Bar, Position, Signal

GROUP = "quantshift.strategies"
DEFAULT = "ma_cross"


class Strategy(Protocol):
    @property
    def warmup(self) -> int:
        """Bars needed before the first signal."""
        ...

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        """A signal for the latest bar, or None. Must be deterministic in its inputs."""
        ...

    def protection(self, entry: float) -> tuple[float | None, float | None]:
        """The protective stop and target for a long position entered at `entry` (None: none wanted).
        The engine applies them to positions it adopts from the broker."""
        ...


class StrategyError(InputError):
    """The strategy cannot be loaded or breaks the contract: one line naming the strategy and what is wrong."""


class ParamsError(StrategyError):
    """The strategy refuses the parameters it was given."""


def available() -> dict[str, Any]:
    """The installed strategies: entry point name -> entry point."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load(name: str, params: Mapping[str, float]) -> Strategy:
    """The strategy the release names, made with its parameters (StrategyError: missing, fails to import,
    or refuses the parameters)."""
    found = available()
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise StrategyError(f"strategy {name!r} is not installed (no entry point {name!r} in group {GROUP}; installed: {known})")
    try:
        factory: Callable[[Mapping[str, float]], Strategy] = found[name].load()
    except Exception as err:  # the user's package: any import-time failure is theirs to see, in one line
        raise StrategyError(f"strategy {name!r} ({found[name].value}) cannot be imported: {err.__class__.__name__}: {err}") from None
    try:
        strategy = factory(dict(params))
    except ValueError as err:
        raise ParamsError(f"strategy {name!r} refuses its parameters {dict(params)}: {err}") from None
    except Exception as err:
        raise StrategyError(f"strategy {name!r} failed to start: {err.__class__.__name__}: {err}") from None
    return strategy


def probe_bars(n: int, seed: int = 7, start: int = 1_767_623_400) -> list[Bar]:
    """`n` 1-minute bars of a seeded walk with trends both ways: what `check` feeds a strategy."""
    rng, price, bars = random.Random(seed), 100.0, []
    for i in range(n):
        drift = 0.002 * math.sin(i / 15)
        close = round(price * math.exp(drift + rng.gauss(0, 0.003)), 4)
        bars.append(Bar(start + 60 * i, price, max(price, close) * 1.001, min(price, close) * 0.999, close, 1000.0))
        price = close
    return bars


def check(strategy: object, name: str, lookback: int) -> Strategy:
    """The contract (module docstring), checked by running the strategy on probe bars, flat and holding,
    twice; returns it typed. StrategyError names the first breach."""

    def breach(what: str) -> StrategyError:
        return StrategyError(f"strategy {name!r} breaks the contract: {what}")

    for attr in ("warmup", "decide", "protection"):
        if not hasattr(strategy, attr):
            raise breach(f"it has no {attr!r} (a strategy has warmup, decide and protection)")
    s: Strategy = strategy  # type: ignore[assignment]  # checked just above, then by running it
    warmup = _call(name, "warmup", lambda: s.warmup)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 1:
        raise breach(f"warmup must be a whole number of bars >= 1, got {warmup!r}")
    if warmup > lookback:
        raise breach(f"warmup is {warmup} bars but the bot looks back only {lookback} (QS_BARS_LOOKBACK): it would never trade")
    _protection(s, name, 100.0, breach)
    bars = probe_bars(lookback + 4 * warmup + 120)
    symbol = "PROBE"

    def run() -> list[tuple[int, Signal | None]]:
        seen, position = [], None
        for i in range(1, len(bars) + 1):
            window = bars[max(0, i - lookback) : i]
            signal = _call(name, f"decide (bar {i})", lambda w=window, p=position: s.decide(symbol, w, p))  # type: ignore[misc]
            if signal is not None and not isinstance(signal, Signal):
                raise breach(f"decide must return a Signal or None, got {type(signal).__name__}")
            if i < warmup and signal is not None:
                raise breach(f"decide gave a signal with {i} bar(s), fewer than its warmup of {warmup}")
            if signal is not None and (
                signal.symbol != symbol or signal.bar_t != window[-1].t or not signal.price > 0 or signal.side not in ("buy", "sell")
            ):
                raise breach(
                    "a signal must be for the symbol and latest bar it was given, with side buy or sell and a positive price, "
                    f"got {signal.symbol!r} {signal.side!r} at {signal.price!r} for bar {signal.bar_t!r} (latest {window[-1].t})"
                )
            again = _call(name, f"decide (bar {i})", lambda w=list(window), p=position: s.decide(symbol, w, p))  # type: ignore[misc]
            if again != signal:
                raise breach(f"decide is not deterministic: bar {i} gave {_said(signal)}, then {_said(again)} for the same inputs")
            seen.append((i, signal))
            if signal is not None and signal.side == "buy" and position is None:
                position = Position(symbol, 1.0, signal.price, signal.stop_loss, signal.take_profit, float(window[-1].t))
            elif signal is not None and signal.side == "sell" and position is not None:
                position = None
        return seen

    first, second = run(), run()
    if first != second:
        at = next(i for (i, a), (_, b) in zip(first, second, strict=True) if a != b)
        raise breach(f"decide is not deterministic: the same {len(bars)} bars gave different signals at bar {at} on a second pass")
    return s


def _said(signal: Signal | None) -> str:
    return "no signal" if signal is None else f"{signal.side} at {signal.price}"


def _protection(s: Strategy, name: str, entry: float, breach: Callable[[str], StrategyError]) -> tuple[float | None, float | None]:
    levels = _call(name, "protection", lambda: s.protection(entry))
    if not (isinstance(levels, tuple) and len(levels) == 2):
        raise breach(f"protection(entry) must return (stop, target), got {levels!r}")
    stop, target = levels
    for what, value in (("stop", stop), ("target", target)):
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)):
            raise breach(f"protection's {what} must be a price or None, got {value!r}")
    if stop is not None and not 0 < stop < entry:
        raise breach(f"protection's stop must be below the entry price and above 0: entry {entry}, stop {stop}")
    if target is not None and not target > entry:
        raise breach(f"protection's target must be above the entry price: entry {entry}, target {target}")
    return stop, target


def _call(name: str, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as err:
        raise StrategyError(f"strategy {name!r} raised in {what}: {err.__class__.__name__}: {err}") from None


def kelly(win_rate: float, payoff: float) -> float:
    """The Kelly fraction f* = W - (1 - W) / R for win rate W and payoff R = average win / average loss."""
    if payoff <= 0:
        return 0.0
    return max(0.0, win_rate - (1 - win_rate) / payoff)


def position_size(
    *,
    equity: float,
    price: float,
    win_rate: float,
    payoff: float,
    kelly_fraction: float,
    max_position: float,
    room: float,
    size_factor: float,
    fractional: bool,
    min_kelly: float = 0.0,
) -> float:
    """Quantity to buy: fractional Kelly of equity, capped by the per-symbol limit and the room left
    under the exposure limit, then scaled (canary). Whole shares unless the market trades fractions. The
    Kelly fraction is at least `min_kelly`: a probe size that keeps a strategy learning its odds."""
    if price <= 0 or equity <= 0:
        return 0.0
    notional = min(equity * kelly_fraction * max(kelly(win_rate, payoff), min_kelly), max_position, max(room, 0.0)) * size_factor
    qty = notional / price
    return math.floor(qty * 1e6) / 1e6 if fractional else float(math.floor(qty))
