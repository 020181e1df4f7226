"""A deliberately worse candidate: ma_cross with its signals inverted, buying when the fast SMA crosses
below the slow one and selling on the cross back up, so it is long against the trend. It exists to be
refused by the replay gate: the demo ships it to show a release that loses being stopped before it
reaches a host. It keeps the contract (warm-up, determinism, protective stop and target), so only its
results give it away. Entry point `ma_inverted` in the `quantshift.strategies` group; parameters as
ma_cross: fast, slow, stop_loss and take_profit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from quantshift_bot.models import Bar, Position, Signal

PARAMETERS = ("fast", "slow", "stop_loss", "take_profit")


@dataclass(frozen=True)
class InvertedCross:
    fast: int = 5
    slow: int = 20
    stop_loss: float = 0.02  # fraction below entry
    take_profit: float = 0.04  # fraction above entry

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> InvertedCross:
        """The strategy with these parameters (ValueError names what is wrong)."""
        unknown = set(params) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))} for ma_inverted ({', '.join(PARAMETERS)})")
        s = cls(
            fast=int(params.get("fast", cls.fast)),
            slow=int(params.get("slow", cls.slow)),
            stop_loss=float(params.get("stop_loss", cls.stop_loss)),
            take_profit=float(params.get("take_profit", cls.take_profit)),
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
        holding = position is not None and position.qty > 0
        if position is not None and holding:
            if position.stop_loss is not None and price <= position.stop_loss:
                return Signal(symbol, "sell", price, f"stop loss {position.stop_loss:.4f} hit", last.t)
            if position.take_profit is not None and price >= position.take_profit:
                return Signal(symbol, "sell", price, f"take profit {position.take_profit:.4f} hit", last.t)
        closes = [b.c for b in bars[-(self.slow + 1) :]]
        fast_now, slow_now = _sma(closes, self.fast), _sma(closes, self.slow)
        fast_prev, slow_prev = _sma(closes[:-1], self.fast), _sma(closes[:-1], self.slow)
        # The inversion: ma_cross's sell is this one's buy, and its buy this one's sell.
        if fast_prev >= slow_prev and fast_now < slow_now and not holding:
            return Signal(symbol, "buy", price, f"SMA{self.fast} crossed below SMA{self.slow} (inverted)", last.t, *self.protection(price))
        if fast_prev <= slow_prev and fast_now > slow_now and holding:
            return Signal(symbol, "sell", price, f"SMA{self.fast} crossed above SMA{self.slow} (inverted)", last.t)
        return None


def _sma(values: Sequence[float], n: int) -> float:
    return sum(values[-n:]) / n
