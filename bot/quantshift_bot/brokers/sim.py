"""An in-process broker for unit tests: a seeded random walk, instant market fills, idempotent ids."""

from __future__ import annotations

import random
import threading
import uuid

from quantshift_bot.brokers.base import OrderRejected
from quantshift_bot.models import Bar, BrokerOrder, BrokerPosition, OrderRequest, OrderStatus


class SimBroker:
    name = "sim"
    fractional = True

    def __init__(self, symbols: tuple[str, ...], seed: int = 7, cash: float = 100_000.0, start: int = 1_700_000_000) -> None:
        self.cash = cash
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._t = start
        self._prices = {s: 100.0 + 10 * i for i, s in enumerate(symbols)}
        self._history: dict[str, list[Bar]] = {s: [] for s in symbols}
        self._positions: dict[str, BrokerPosition] = {}
        self.orders: dict[str, BrokerOrder] = {}  # by client order id
        self.submits = 0
        for _ in range(200):
            self.step()

    def step(self) -> None:
        """Advance the market by one bar."""
        with self._lock:
            self._t += 60
            for s, p in self._prices.items():
                o = p
                c = max(1.0, o * (1 + self._rng.gauss(0, 0.004)))
                self._prices[s] = c
                self._history[s].append(Bar(self._t, o, max(o, c), min(o, c), c, 1000.0))

    def equity(self) -> float:
        return self.cash + sum(p.qty * self._prices[s] for s, p in self._positions.items())

    def bars(self, symbols: tuple[str, ...], count: int) -> dict[str, list[Bar]]:
        return {s: self._history[s][-count:] for s in symbols}

    def positions(self) -> dict[str, BrokerPosition]:
        return dict(self._positions)

    def open_orders(self) -> list[BrokerOrder]:
        return [o for o in self.orders.values() if o.status == OrderStatus.NEW]

    def submit(self, req: OrderRequest) -> BrokerOrder:
        with self._lock:
            self.submits += 1
            if req.client_order_id in self.orders:
                raise OrderRejected(f"client_order_id {req.client_order_id} already used")
            price = self._prices[req.symbol]
            pos = self._positions.get(req.symbol)
            if req.side == "sell" and (pos is None or pos.qty + 1e-9 < req.qty):
                raise OrderRejected(f"insufficient qty for {req.symbol}")
            order = BrokerOrder(str(uuid.uuid4()), req.client_order_id, req.symbol, req.side, req.qty, OrderStatus.FILLED, req.qty, price)
            self.orders[req.client_order_id] = order
            self._fill(req.symbol, req.side, req.qty, price)
            return order

    def _fill(self, symbol: str, side: str, qty: float, price: float) -> None:
        pos = self._positions.get(symbol) or BrokerPosition(symbol, 0.0, price)
        if side == "buy":
            total = pos.qty + qty
            pos = BrokerPosition(symbol, total, (pos.avg_entry_price * pos.qty + price * qty) / total)
            self.cash -= qty * price
        else:
            pos = BrokerPosition(symbol, pos.qty - qty, pos.avg_entry_price)
            self.cash += qty * price
        if pos.qty <= 1e-9:
            self._positions.pop(symbol, None)
        else:
            self._positions[symbol] = pos

    def find(self, client_order_id: str) -> BrokerOrder | None:
        return self.orders.get(client_order_id)

    def cancel(self, order_id: str) -> None:
        for order in self.orders.values():
            if order.id == order_id and order.status == OrderStatus.NEW:
                order.status = OrderStatus.CANCELED

    def burn(self, client_order_id: str, symbol: str, price: float) -> BrokerOrder:
        with self._lock:
            existing = self.orders.get(client_order_id)
            if existing is not None:
                return existing
            fence = BrokerOrder(str(uuid.uuid4()), client_order_id, symbol, "buy", 1.0, "canceled", type="limit")
            self.orders[client_order_id] = fence
            return fence
