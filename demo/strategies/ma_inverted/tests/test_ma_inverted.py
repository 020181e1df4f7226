"""ma_inverted keeps the strategy contract, so only its results can refuse it: it buys the cross down and
sells the cross up, the other way round from ma_cross."""

from __future__ import annotations

import pytest
from quantshift_demo_ma_inverted import InvertedCross

from quantshift_bot.models import Bar, Position, Signal
from quantshift_bot.strategy import check, load

LOOKBACK = 60  # QS_BARS_LOOKBACK's default


def bars(closes: list[float]) -> list[Bar]:
    return [Bar(1_790_812_800 + 60 * i, c, c * 1.001, c * 0.999, c, 1000.0) for i, c in enumerate(closes)]


def signals(s: InvertedCross, closes: list[float], position: Position | None) -> list[Signal]:
    window = bars(closes)
    found = (s.decide("AAPL", window[: n + 1], position) for n in range(len(window)))
    return [x for x in found if x is not None]


def test_the_entry_point_makes_a_strategy_that_keeps_the_contract() -> None:
    strategy = check(load("ma_inverted", {}), "ma_inverted", LOOKBACK)
    assert isinstance(strategy, InvertedCross)
    assert strategy.warmup <= LOOKBACK


@pytest.mark.parametrize("params", [{"fast": 20, "slow": 5}, {"take_profit": 0}, {"trend": 50}])
def test_bad_parameters_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InvertedCross.from_params(params)


def test_it_buys_the_cross_down_and_never_the_cross_up() -> None:
    s = InvertedCross()
    up_then_down = [100 + 0.2 * i for i in range(30)] + [105.8 - 0.3 * i for i in range(1, 15)]
    down_then_up = [110 - 0.2 * i for i in range(30)] + [104.2 + 0.3 * i for i in range(1, 15)]
    buys = signals(s, up_then_down, None)
    assert [x.side for x in buys] == ["buy"]
    assert buys[0].stop_loss is not None and buys[0].stop_loss < buys[0].price
    assert signals(s, down_then_up, None) == []


def test_it_sells_the_cross_up_when_holding() -> None:
    s = InvertedCross()
    down_then_up = [110 - 0.2 * i for i in range(30)] + [104.2 + 0.3 * i for i in range(1, 15)]
    # A wide stop and target, so only the cross can sell.
    sells = signals(s, down_then_up, Position("AAPL", 10.0, 105.0, 50.0, 500.0))
    assert [x.side for x in sells] == ["sell"]
