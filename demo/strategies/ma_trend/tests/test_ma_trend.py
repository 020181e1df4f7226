"""ma_trend keeps the strategy contract and trades with the long trend: it buys a cross up above the long
SMA, not one below it, holds through a dip while the trend holds and sells once the trend breaks."""

from __future__ import annotations

import pytest
from quantshift_demo_ma_trend import TrendFollowingCross

from quantshift_bot.models import Bar, Position
from quantshift_bot.strategy import check, load

LOOKBACK = 60  # QS_BARS_LOOKBACK's default


def bars(closes: list[float]) -> list[Bar]:
    return [Bar(1_790_812_800 + 60 * i, c, c * 1.001, c * 0.999, c, 1000.0) for i, c in enumerate(closes)]


def holding(price: float) -> Position:
    return Position("AAPL", 10.0, price, price * 0.98, price * 1.04)


def test_the_entry_point_makes_a_strategy_that_keeps_the_contract() -> None:
    strategy = check(load("ma_trend", {}), "ma_trend", LOOKBACK)
    assert isinstance(strategy, TrendFollowingCross)
    assert strategy.warmup <= LOOKBACK
    assert check(load("ma_trend", {"fast": 3, "slow": 10, "trend": 30}), "ma_trend", LOOKBACK).warmup == 30


@pytest.mark.parametrize("params", [{"fast": 20, "slow": 5}, {"slow": 20, "trend": 20}, {"stop_loss": 1.5}, {"window": 3}])
def test_bad_parameters_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TrendFollowingCross.from_params(params)


def test_a_cross_up_above_the_long_sma_is_bought() -> None:
    s = TrendFollowingCross()
    # A long rise, a short dip (fast below slow), then the rise resumes: the cross up is above SMA50.
    closes = [100 + 0.1 * i for i in range(45)] + [104.4 - 0.2 * i for i in range(8)] + [103.0 + 0.3 * i for i in range(1, 10)]
    signals = [s.decide("AAPL", bars(closes[:n]), None) for n in range(s.warmup, len(closes) + 1)]
    buys = [x for x in signals if x is not None]
    assert len(buys) == 1 and buys[0].side == "buy"
    assert buys[0].stop_loss is not None and buys[0].take_profit is not None
    assert buys[0].stop_loss < buys[0].price < buys[0].take_profit


def test_a_rally_inside_a_fall_is_not_bought() -> None:
    s = TrendFollowingCross()
    # A long fall and a short rally: the fast SMA crosses above the slow one (ma_cross would buy) while
    # the close stays below the long SMA.
    closes = [120 - 0.3 * i for i in range(55)] + [103.8 + 0.35 * i for i in range(1, 10)]
    window = bars(closes)
    fast = [sum(closes[i - 4 : i + 1]) / 5 for i in range(len(closes))]
    slow = [sum(closes[i - 19 : i + 1]) / 20 for i in range(len(closes))]
    crossed = [i for i in range(55, len(closes)) if fast[i - 1] <= slow[i - 1] and fast[i] > slow[i]]
    assert crossed, "the rally must cross the fast SMA above the slow one"
    assert all(s.decide("AAPL", window[: n + 1], None) is None for n in range(s.warmup - 1, len(closes)))


def test_it_holds_through_a_dip_and_sells_when_the_trend_breaks() -> None:
    s = TrendFollowingCross()
    rise = [100 + 0.1 * i for i in range(50)]
    dip = rise + [104.9 - 0.15 * i for i in range(1, 8)]  # fast under slow, the close still above SMA50
    assert sum(dip[-5:]) / 5 < sum(dip[-20:]) / 20 and dip[-1] > sum(dip[-50:]) / 50
    assert s.decide("AAPL", bars(dip), holding(104.0)) is None
    fall = dip + [103.8 - 0.5 * i for i in range(1, 6)]  # the close falls below SMA50
    signal = s.decide("AAPL", bars(fall), holding(104.0))
    assert signal is not None and signal.side == "sell"


def test_the_stop_is_honoured() -> None:
    s = TrendFollowingCross()
    closes = [100 + 0.1 * i for i in range(60)]
    position = Position("AAPL", 10.0, 110.0, closes[-1] + 0.5, 120.0)
    signal = s.decide("AAPL", bars(closes), position)
    assert signal is not None and signal.side == "sell"
