"""The broker interface the engine uses, whatever the exchange."""

from __future__ import annotations

from typing import Protocol

from bot.models import Bar, BrokerOrder, BrokerPosition, OrderRequest


class BrokerError(RuntimeError):
    """A call failed in a way a retry may fix (5xx, timeout, connection)."""


class OrderRejected(RuntimeError):
    """The broker refused the order; retrying the same order will not help."""


class Broker(Protocol):
    name: str
    fractional: bool  # whether quantities may be fractional (crypto) or whole (equities)

    def equity(self) -> float: ...
    def bars(self, symbols: tuple[str, ...], count: int) -> dict[str, list[Bar]]: ...
    def positions(self) -> dict[str, BrokerPosition]: ...
    def open_orders(self) -> list[BrokerOrder]: ...
    def submit(self, req: OrderRequest) -> BrokerOrder: ...
    def find(self, client_order_id: str) -> BrokerOrder | None: ...
    def cancel(self, order_id: str) -> None: ...
    def close_position(self, symbol: str) -> BrokerOrder | None: ...
