"""The demo's improvement on ma_cross: the same fast/slow crossover, but it trades with the longer trend.
It buys on the cross up only when the close is above a long SMA (so it sits out the rallies inside a
fall that ma_cross buys into), and it sells only when the cross down comes with the close below the
long SMA, the trend broken (so it holds through the dips inside a rise that shake ma_cross out), or
at the protective stop or target. Entry point `ma_trend` in the `quantshift.strategies` group;
parameters fast, slow, trend, stop_loss and take_profit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from quantshift_bot.models import Bar, Position, Signal

PARAMETERS = ("fast", "slow", "trend", "stop_loss", "take_profit")


@dataclass(frozen=True)
class TrendFollowingCross:
    fast: int = 5
    slow: int = 20
    trend: int = 50  # the long SMA: a buy needs the close above it, a sell the close below it
    stop_loss: float = 0.02  # fraction below entry
    take_profit: float = 0.04  # fraction above entry

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> TrendFollowingCross:
        """The strategy with these parameters (ValueError names what is wrong)."""
        unknown = set(params) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))} for ma_trend ({', '.join(PARAMETERS)})")
        s = cls(
            fast=int(params.get("fast", cls.fast)),
            slow=int(params.get("slow", cls.slow)),
            trend=int(params.get("trend", cls.trend)),
            stop_loss=float(params.get("stop_loss", cls.stop_loss)),
            take_profit=float(params.get("take_profit", cls.take_profit)),
        )
        if not 1 <= s.fast < s.slow < s.trend:
            raise ValueError(f"need 1 <= fast < slow < trend, got fast={s.fast} slow={s.slow} trend={s.trend}")
        if not (0 < s.stop_loss < 1 and 0 < s.take_profit < 10):
            raise ValueError("stop_loss must be in (0, 1) and take_profit in (0, 10)")
        return s

    @property
    def warmup(self) -> int:
        return self.trend

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
        closes = [b.c for b in bars[-self.trend :]]
        fast_now, slow_now, trend_now = _sma(closes, self.fast), _sma(closes, self.slow), _sma(closes, self.trend)
        if holding:
            # Not on the cross itself: a dip that crosses while the trend holds is sat through, and a cross
            # that came first is acted on once the close falls below the trend too.
            if fast_now < slow_now and price < trend_now:
                return Signal(symbol, "sell", price, f"SMA{self.fast} below SMA{self.slow} and the close below SMA{self.trend}", last.t)
            return None
        fast_prev, slow_prev = _sma(closes[:-1], self.fast), _sma(closes[:-1], self.slow)
        if fast_prev <= slow_prev and fast_now > slow_now and price > trend_now:
            reason = f"SMA{self.fast} crossed above SMA{self.slow}, the close above SMA{self.trend}"
            return Signal(symbol, "buy", price, reason, last.t, *self.protection(price))
        return None


def _sma(values: Sequence[float], n: int) -> float:
    return sum(values[-n:]) / n
