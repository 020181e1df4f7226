"""The strategy interface, the default moving-average crossover, and fractional-Kelly sizing.

The same Strategy object runs unchanged in paper, shadow, canary and live: only what the engine
does with its signals differs by mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.models import Bar, Position, Signal


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


@dataclass(frozen=True)
class MovingAverageCross:
    """Long when the fast SMA crosses above the slow one; out on the cross back, the stop or the target."""

    fast: int = 5
    slow: int = 20
    stop_loss: float = 0.02  # fraction below entry
    take_profit: float = 0.04  # fraction above entry

    @classmethod
    def from_params(cls, params: dict[str, float]) -> MovingAverageCross:
        unknown = set(params) - {"fast", "slow", "stop_loss", "take_profit"}
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))} for ma_cross (fast, slow, stop_loss, take_profit)")
        s = cls(
            fast=int(params.get("fast", cls.fast)),
            slow=int(params.get("slow", cls.slow)),
            stop_loss=params.get("stop_loss", cls.stop_loss),
            take_profit=params.get("take_profit", cls.take_profit),
        )
        if not 1 <= s.fast < s.slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={s.fast} slow={s.slow}")
        if not (0 < s.stop_loss < 1 and 0 < s.take_profit < 10):
            raise ValueError("stop_loss must be in (0, 1) and take_profit in (0, 10)")
        return s

    @property
    def warmup(self) -> int:
        return self.slow + 1

    def protection(self, entry: float) -> tuple[float | None, float | None]:
        return round(entry * (1 - self.stop_loss), 6), round(entry * (1 + self.take_profit), 6)

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        if len(bars) < self.warmup:
            return None
        last = bars[-1]
        price = last.c
        if position is not None and position.qty > 0:
            if position.stop_loss is not None and price <= position.stop_loss:
                return Signal(symbol, "sell", price, f"stop loss {position.stop_loss:.4f} hit", last.t)
            if position.take_profit is not None and price >= position.take_profit:
                return Signal(symbol, "sell", price, f"take profit {position.take_profit:.4f} hit", last.t)
        closes = [b.c for b in bars]
        fast_now, slow_now = _sma(closes, self.fast), _sma(closes, self.slow)
        fast_prev, slow_prev = _sma(closes[:-1], self.fast), _sma(closes[:-1], self.slow)
        if fast_prev <= slow_prev and fast_now > slow_now and (position is None or position.qty <= 0):
            return Signal(
                symbol,
                "buy",
                price,
                f"SMA{self.fast} crossed above SMA{self.slow}",
                last.t,
                *self.protection(price),
            )
        if fast_prev >= slow_prev and fast_now < slow_now and position is not None and position.qty > 0:
            return Signal(symbol, "sell", price, f"SMA{self.fast} crossed below SMA{self.slow}", last.t)
        return None


STRATEGIES = {"ma_cross": MovingAverageCross}  # QS_STRATEGY names


def build(name: str, params: dict[str, float]) -> Strategy:
    """The strategy a bot's settings name, with its parameters (ValueError: unknown name or parameters)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return STRATEGIES[name].from_params(params)


def _sma(values: Sequence[float], n: int) -> float:
    return sum(values[-n:]) / n


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
) -> float:
    """Quantity to buy: fractional Kelly of equity, capped by the per-symbol limit and the room left
    under the exposure limit, then scaled (canary). Whole shares unless the market trades fractions."""
    if price <= 0 or equity <= 0:
        return 0.0
    notional = min(equity * kelly_fraction * kelly(win_rate, payoff), max_position, max(room, 0.0)) * size_factor
    qty = notional / price
    return math.floor(qty * 1e6) / 1e6 if fractional else float(math.floor(qty))
