"""The example strategy: its contract, its parameters, and a crossover it must see."""

import pytest

from quantshift_bot.models import Bar, Position
from quantshift_bot.strategy import check
from quantshift_ma_cross import MovingAverageCross


def bars(closes: list[float]) -> list[Bar]:
    return [Bar(60 * i, c, c, c, c, 1.0) for i, c in enumerate(closes)]


def test_the_contract_holds() -> None:
    assert check(MovingAverageCross.from_params({}), "ma_cross", 60).warmup == 21


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="fast < slow"):
        MovingAverageCross.from_params({"fast": 5, "slow": 5})
    with pytest.raises(ValueError, match="unknown parameter"):
        MovingAverageCross.from_params({"speed": 1})


def test_buys_the_cross_up_and_sells_the_cross_down() -> None:
    s = MovingAverageCross(fast=2, slow=4)
    rising = bars([10, 10, 10, 10, 10, 12])
    buy = s.decide("X", rising, None)
    assert buy is not None and buy.side == "buy" and buy.bar_t == 300 and buy.stop_loss == pytest.approx(12 * 0.98)
    falling = bars([12, 12, 12, 12, 12, 10])
    sell = s.decide("X", falling, Position("X", 1.0, 12.0))
    assert sell is not None and sell.side == "sell"
    assert s.decide("X", rising[:4], None) is None  # before the warm-up
