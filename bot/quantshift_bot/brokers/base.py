"""The broker interface the engine uses, whatever the exchange."""

from __future__ import annotations

from typing import Protocol

from quantshift_bot.models import Bar, BrokerOrder, BrokerPosition, OrderRequest


class BrokerFailure(RuntimeError):
    """Any broker call that did not do what was asked: the engine counts it and decides what follows."""


class BrokerError(BrokerFailure):
    """A call failed in a way a retry may fix (5xx, timeout, connection)."""


class OrderRejected(BrokerFailure):
    """The broker refused the order; retrying the same order will not help."""


class Broker(Protocol):
    """What the engine needs of an exchange.

    `burn(cid, symbol, price)` makes a client order id unusable: it places a small limit buy far below
    `price` under that id and cancels it at once, so the broker refuses (Alpaca: 422) or answers with
    that order (Coinbase) any later order sent with the id. It returns the order that holds the id at
    the broker: the fence order, or an order sent with the id before the burn arrived.
    """

    name: str
    fractional: bool  # whether quantities may be fractional (crypto) or whole (equities)

    def equity(self) -> float: ...
    def bars(self, symbols: tuple[str, ...], count: int) -> dict[str, list[Bar]]: ...
    def positions(self) -> dict[str, BrokerPosition]: ...
    def open_orders(self) -> list[BrokerOrder]: ...
    def submit(self, req: OrderRequest) -> BrokerOrder: ...
    def find(self, client_order_id: str) -> BrokerOrder | None: ...
    def cancel(self, order_id: str) -> None: ...
    def burn(self, client_order_id: str, symbol: str, price: float) -> BrokerOrder: ...


BURN_PRICE_FRACTION = 0.5  # a fence order bids half the last price: it cannot fill in the moment it rests


def is_fence_order(order: BrokerOrder) -> bool:
    """A limit order under one of the bot's ids: placed by `Broker.burn`, never by a decision."""
    return order.type != "market" and not order.protective
