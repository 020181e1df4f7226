"""Exchange accounts shared by the lab's Alpaca and Coinbase servers: cash, positions, orders, matching.

One Book per account (paper and live are separate accounts). Market orders fill at the last price;
limit, stop and bracket legs are matched whenever the account is touched.
"""

from __future__ import annotations

import datetime as dt
import hmac
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lab.exchanges.market import Clock, Market
from lab.httpd import ApiError, Request


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str  # market | limit | stop
    time_in_force: str
    created: float
    limit_price: float | None = None
    stop_price: float | None = None
    order_class: str = "simple"
    status: str = "new"
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    filled_at: float | None = None
    canceled_at: float | None = None
    legs: list[Order] = field(default_factory=list)
    parent: str | None = None
    sender: str = ""  # the API key that placed it
    accepted_at: float = 0.0  # wall-clock time the exchange accepted it (chaos tests compare it with lease history)


@dataclass
class Book:
    name: str
    cash: float
    positions: dict[str, list[float]] = field(default_factory=dict)  # symbol -> [qty, avg entry]
    orders: dict[str, Order] = field(default_factory=dict)
    by_client_id: dict[str, str] = field(default_factory=dict)
    received: int = 0  # order requests that reached the exchange (accepted or not)
    history: list[tuple[float, str, float]] = field(default_factory=list)  # (wall time, symbol, position qty after a fill)


@dataclass
class Faults:
    """Switches for tests: answer 5xx, add latency, hang past the client's timeout, or answer orders late."""

    error_rate: float = 0.0
    status: int = 503
    latency_ms: float = 0.0
    hang_s: float = 0.0
    answer_ms: float = 0.0  # an accepted order's answer is held back this long (the order is in flight for the client)
    remaining: int = -1  # how many requests the faults apply to (-1: until cleared)
    rng: random.Random = field(default_factory=lambda: random.Random(1))

    def configure(self, params: dict[str, str]) -> dict[str, float]:
        """Set the switches from a `/lab/faults` request; what is not given is switched off."""
        self.error_rate = float(params.get("error_rate", 0))
        self.status = int(params.get("status", 503))
        self.latency_ms = float(params.get("latency_ms", 0))
        self.hang_s = float(params.get("hang_s", 0))
        self.answer_ms = float(params.get("answer_ms", 0))
        self.remaining = int(params.get("count", -1))
        return {
            "error_rate": self.error_rate,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "hang_s": self.hang_s,
            "answer_ms": self.answer_ms,
            "count": self.remaining,
        }

    def apply(self) -> None:
        if self.remaining == 0:
            return
        if self.remaining > 0:
            self.remaining -= 1
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if self.hang_s:
            time.sleep(self.hang_s)
        if self.error_rate and self.rng.random() < self.error_rate:
            raise ApiError(self.status, "injected fault (lab switch)")

    def hold_answer(self) -> None:
        """After an order is accepted: keep its answer back (outside the exchange's lock)."""
        if self.answer_ms:
            time.sleep(self.answer_ms / 1000)


def require_admin(req: Request, token: str) -> bool:
    """For `/lab/...` paths: check the lab admin token and say so (True); other paths: False."""
    if not req.path.startswith("/lab/"):
        return False
    if not hmac.compare_digest(req.headers.get("x-lab-admin", ""), token):
        raise ApiError(401, "lab admin token required")
    return True


class Exchange:
    def __init__(self, market: Market, clock: Clock, accounts: dict[str, float]) -> None:
        self.market, self.clock = market, clock
        self.books = {name: Book(name, cash) for name, cash in accounts.items()}
        self.lock = threading.RLock()
        self.faults = Faults()

    def iso(self, t: float | None) -> str | None:
        if t is None:
            return None
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")

    def price(self, symbol: str) -> float:
        return self.market.price(symbol, self.clock.now())

    # --- orders -------------------------------------------------------------------------------------
    def submit(
        self,
        book: Book,
        *,
        client_order_id: str,
        symbol: str,
        side: str,
        qty: float,
        type_: str = "market",
        time_in_force: str = "day",
        limit_price: float | None = None,
        stop_price: float | None = None,
        take_profit: float | None = None,
        stop_loss: float | None = None,
        sender: str = "",
    ) -> Order:
        with self.lock:
            book.received += 1
            if client_order_id in book.by_client_id:
                raise ApiError(422, "client_order_id must be unique")
            if qty <= 0:
                raise ApiError(422, "qty must be > 0")
            if side not in ("buy", "sell"):
                raise ApiError(422, f"invalid side {side}")
            price = self.price(symbol)
            held = book.positions.get(symbol, [0.0, 0.0])[0] - self._reserved(book, symbol)
            if side == "sell" and qty > held + 1e-9:
                raise ApiError(403, f"insufficient qty available for order (requested: {qty:g}, available: {max(held, 0):g})")
            if side == "buy" and qty * (limit_price or price) > book.cash + 1e-6:
                raise ApiError(403, "insufficient buying power")
            now = self.clock.now()
            order = Order(
                str(uuid.uuid4()),
                client_order_id,
                symbol,
                side,
                qty,
                type_,
                time_in_force,
                now,
                limit_price=limit_price,
                stop_price=stop_price,
                order_class="bracket" if take_profit or stop_loss else "simple",
                sender=sender,
                accepted_at=time.time(),
            )
            exit_side = "sell" if side == "buy" else "buy"
            for suffix, kind, level in (("tp", "limit", take_profit), ("sl", "stop", stop_loss)):
                if level is not None:
                    order.legs.append(
                        Order(
                            str(uuid.uuid4()),
                            f"{client_order_id}-{suffix}",
                            symbol,
                            exit_side,
                            qty,
                            kind,
                            time_in_force,
                            now,
                            limit_price=level if kind == "limit" else None,
                            stop_price=level if kind == "stop" else None,
                            status="held",
                            parent=order.id,
                        )
                    )
            book.orders[order.id] = order
            book.by_client_id[client_order_id] = order.id
            for leg in order.legs:
                book.orders[leg.id] = leg
                book.by_client_id[leg.client_order_id] = leg.id
            self.match(book)
            return order

    def _reserved(self, book: Book, symbol: str) -> float:
        """Quantity already promised to open sell orders that are not protective legs."""
        return sum(
            o.qty - o.filled_qty
            for o in book.orders.values()
            if o.symbol == symbol and o.side == "sell" and o.status == "new" and o.parent is None
        )

    def _fill(self, book: Book, order: Order, price: float) -> None:
        qty, entry = book.positions.get(order.symbol, [0.0, 0.0])
        book.history.append((time.time(), order.symbol, qty + order.qty if order.side == "buy" else max(qty - order.qty, 0.0)))
        if order.side == "buy":
            total = qty + order.qty
            book.positions[order.symbol] = [total, (qty * entry + order.qty * price) / total]
            book.cash -= order.qty * price
        else:
            left = qty - order.qty
            book.cash += order.qty * price
            if left <= 1e-9:
                book.positions.pop(order.symbol, None)
            else:
                book.positions[order.symbol] = [left, entry]
        order.status, order.filled_qty, order.filled_avg_price, order.filled_at = "filled", order.qty, price, self.clock.now()

    def match(self, book: Book) -> None:
        """Fill whatever the current price allows, and activate or cancel bracket legs."""
        with self.lock:
            for order in list(book.orders.values()):
                if order.status not in ("new", "held"):
                    continue
                price = self.price(order.symbol)
                if order.status == "held":
                    parent = book.orders[order.parent] if order.parent else None
                    if parent is not None and parent.status == "filled":
                        order.status = "new"
                    else:
                        continue
                hit = (
                    order.type == "market"
                    or (
                        order.type == "limit"
                        and (
                            (order.side == "buy" and price <= (order.limit_price or 0))
                            or (order.side == "sell" and price >= (order.limit_price or 0))
                        )
                    )
                    or (
                        order.type == "stop"
                        and (
                            (order.side == "sell" and price <= (order.stop_price or 0))
                            or (order.side == "buy" and price >= (order.stop_price or 0))
                        )
                    )
                )
                if not hit:
                    continue
                if order.parent is not None and order.side == "sell" and book.positions.get(order.symbol, [0.0])[0] + 1e-9 < order.qty:
                    order.status, order.canceled_at = "canceled", self.clock.now()
                    continue
                self._fill(book, order, price)
                if order.parent is not None:  # one leg filled: the other is canceled (OCO)
                    for sibling in book.orders[order.parent].legs:
                        if sibling is not order and sibling.status in ("new", "held"):
                            sibling.status, sibling.canceled_at = "canceled", self.clock.now()

    def matched(self, name: str) -> Book:
        """An account's book after filling whatever the current price allows: what every read shows."""
        book = self.books[name]
        self.match(book)
        return book

    def order(self, book: Book, order_id: str) -> Order:
        order = book.orders.get(order_id)
        if order is None:
            raise ApiError(404, "order not found")
        return order

    def cancel(self, book: Book, order_id: str) -> Order:
        with self.lock:
            order = self.order(book, order_id)
            if order.status not in ("new", "held"):
                raise ApiError(422, f"order is not cancelable (status {order.status})")
            order.status, order.canceled_at = "canceled", self.clock.now()
            for leg in order.legs:
                if leg.status in ("new", "held"):
                    leg.status, leg.canceled_at = "canceled", self.clock.now()
            return order

    def close(self, book: Book, symbol: str) -> Order:
        with self.lock:
            qty = book.positions.get(symbol, [0.0])[0]
            if qty <= 0:
                raise ApiError(404, "position not found")
            for order in book.orders.values():  # protective legs would sell what is gone
                if order.symbol == symbol and order.status in ("new", "held"):
                    order.status, order.canceled_at = "canceled", self.clock.now()
            return self.submit(book, client_order_id=f"close-{uuid.uuid4()}", symbol=symbol, side="sell", qty=qty)

    def equity(self, book: Book) -> float:
        return book.cash + sum(q * self.price(s) for s, (q, _) in book.positions.items())

    def ledger(self) -> dict[str, Any]:
        """Every order each account accepted (who sent it, when) and its position history: what chaos tests audit."""
        with self.lock:
            return {
                name: {
                    "orders": [
                        {
                            "id": o.id,
                            "client_order_id": o.client_order_id,
                            "symbol": o.symbol,
                            "side": o.side,
                            "qty": o.qty,
                            "type": o.type,
                            "status": o.status,
                            "sender": o.sender,
                            "accepted_at": o.accepted_at,
                            "filled_qty": o.filled_qty,
                        }
                        for o in b.orders.values()
                        if o.parent is None
                    ],
                    "positions": {s: q for s, (q, _) in b.positions.items()},
                    "history": [{"t": t, "symbol": s, "qty": q} for t, s, q in b.history],
                }
                for name, b in self.books.items()
            }

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                name: {
                    "orders_received": b.received,
                    "orders": len(b.orders),
                    "positions": {s: q for s, (q, _) in b.positions.items()},
                    "cash": round(b.cash, 2),
                }
                for name, b in self.books.items()
            }
