"""Coinbase Advanced Trade through coinbase-advanced-py: RESTClient on `base_url`, JWT-signed calls.

Spot has no positions: a position is the balance of a product's base currency. Coinbase does not
keep an entry price, so a position adopted from the broker takes the current price as its entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from coinbase.rest import RESTClient

from quantshift_bot.brokers.base import BURN_PRICE_FRACTION, BrokerError, OrderRejected, is_fence_order
from quantshift_bot.config import CoinbaseSettings
from quantshift_bot.models import Bar, BrokerOrder, BrokerPosition, OrderRequest, OrderStatus

T = TypeVar("T")
_STATUS = {
    "OPEN": OrderStatus.NEW,
    "PENDING": OrderStatus.NEW,
    "QUEUED": OrderStatus.NEW,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "FAILED": OrderStatus.REJECTED,
    "CANCEL_QUEUED": OrderStatus.NEW,
}


def _guard(fn: Callable[[], T], what: str) -> T:
    try:
        return fn()
    except requests.HTTPError as err:
        code = err.response.status_code if err.response is not None else 0
        if code >= 500 or code == 429:
            raise BrokerError(f"{what}: HTTP {code}") from None
        raise OrderRejected(f"{what}: HTTP {code}") from None
    except (requests.ConnectionError, requests.Timeout) as err:
        raise BrokerError(f"{what}: {err.__class__.__name__}") from None


def _d(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class CoinbaseBroker:
    name = "coinbase"
    fractional = True

    def __init__(self, cfg: CoinbaseSettings, timeout_s: float = 10.0) -> None:
        self.client = RESTClient(api_key=cfg.api_key, api_secret=cfg.private_key, base_url=cfg.base_url, timeout=max(1, round(timeout_s)))
        if cfg.ca_bundle:
            # Trust this CA (the lab's), still verifying. REQUESTS_CA_BUNDLE in the environment would
            # silently override a session's CA, so the session stops reading the environment.
            self.client.session.verify = cfg.ca_bundle
            self.client.session.trust_env = False
        self._last: dict[str, float] = {}

    def _price(self, symbol: str) -> float:
        if symbol not in self._last:
            product = _d(_guard(lambda: self.client.get_product(symbol), f"product {symbol}"))
            self._last[symbol] = float(product["price"])
        return self._last[symbol]

    def equity(self) -> float:
        total = 0.0
        for acct in _d(_guard(self.client.get_accounts, "accounts"))["accounts"]:
            value = float(acct["available_balance"]["value"])
            total += value if acct["currency"] == "USD" else value * self._price(f"{acct['currency']}-USD")
        return total

    def bars(self, symbols: tuple[str, ...], count: int) -> dict[str, list[Bar]]:
        clock: Any = _guard(self.client.get_unix_time, "time")
        now = int(clock.epoch_seconds)
        out: dict[str, list[Bar]] = {}
        for symbol in symbols:
            doc = self._candles(symbol, now - (count + 5) * 60, now)
            rows = sorted(doc["candles"], key=lambda c: int(c["start"]))[-count:]
            out[symbol] = [
                Bar(int(c["start"]), float(c["open"]), float(c["high"]), float(c["low"]), float(c["close"]), float(c["volume"]))
                for c in rows
            ]
            if out[symbol]:
                self._last[symbol] = out[symbol][-1].c
        return out

    def _candles(self, symbol: str, start: int, end: int) -> dict[str, Any]:
        return _d(_guard(lambda: self.client.get_candles(symbol, str(start), str(end), "ONE_MINUTE"), f"candles {symbol}"))

    def positions(self) -> dict[str, BrokerPosition]:
        out = {}
        for acct in _d(_guard(self.client.get_accounts, "accounts"))["accounts"]:
            qty = float(acct["available_balance"]["value"])
            if acct["currency"] != "USD" and qty > 0:
                symbol = f"{acct['currency']}-USD"
                out[symbol] = BrokerPosition(symbol, qty, self._price(symbol))
        return out

    def _orders(self, **filters: Any) -> list[dict[str, Any]]:
        return list(_d(_guard(lambda: self.client.list_orders(**filters), "orders"))["orders"])

    def open_orders(self) -> list[BrokerOrder]:
        return [_order(o) for o in self._orders(order_status=["OPEN"])]

    def submit(self, req: OrderRequest) -> BrokerOrder:
        size = f"{req.qty:.8f}".rstrip("0").rstrip(".")
        place = self.client.market_order_buy if req.side == "buy" else self.client.market_order_sell
        doc = _d(
            _guard(
                lambda: place(client_order_id=req.client_order_id, product_id=req.symbol, base_size=size), f"order {req.client_order_id}"
            )
        )
        return self._placed(doc, f"order {req.client_order_id}")

    def _placed(self, doc: dict[str, Any], what: str) -> BrokerOrder:
        """The order a create-order answer names (for a repeated id: the order that already has it)."""
        if not doc.get("success"):
            err = doc.get("error_response") or {}
            raise OrderRejected(f"{what}: {err.get('error')}: {err.get('message')}")
        order_id = doc["success_response"]["order_id"]
        return _order(_d(_guard(lambda: self.client.get_order(order_id), "order lookup"))["order"])

    def find(self, client_order_id: str) -> BrokerOrder | None:
        for o in self._orders():
            if o["client_order_id"] == client_order_id:
                return _order(o)
        return None

    def cancel(self, order_id: str) -> None:
        _guard(lambda: self.client.cancel_orders([order_id]), f"cancel {order_id}")

    def burn(self, client_order_id: str, symbol: str, price: float) -> BrokerOrder:
        """About $2 bid at half the last price, canceled at once. Coinbase does not refuse a repeated id:
        it answers with the order that already has it, so a later order with the id is never created."""
        limit = price * BURN_PRICE_FRACTION
        product = _d(_guard(lambda: self.client.get_product(symbol), f"product {symbol}"))
        step = float(product.get("base_increment") or "0.00000001")
        size = max(float(product.get("base_min_size") or 0), math.ceil(2.0 / limit / step) * step)
        quote_step = float(product.get("quote_increment") or "0.01")
        doc = _d(
            _guard(
                lambda: self.client.limit_order_gtc_buy(
                    client_order_id=client_order_id,
                    product_id=symbol,
                    base_size=_decimal(size, step),
                    limit_price=_decimal(math.floor(limit / quote_step) * quote_step, quote_step),
                ),
                f"fence {client_order_id}",
            )
        )
        order = self._placed(doc, f"fence {client_order_id}")
        if is_fence_order(order) and order.status == OrderStatus.NEW:
            self.cancel(order.id)
            order.status = OrderStatus.CANCELED
        return order


def _decimal(value: float, step: float) -> str:
    """`value` written with as many decimals as `step` has (the product's increments)."""
    places = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{places}f}"


def _order(o: dict[str, Any]) -> BrokerOrder:
    config = o.get("order_configuration") or {}
    body: dict[str, Any] = next(iter(config.values()), {}) if config else {}
    kind = next(iter(config), "market_market_ioc") if config else "market_market_ioc"
    avg = o.get("average_filled_price")
    return BrokerOrder(
        id=o["order_id"],
        client_order_id=o["client_order_id"],
        symbol=o["product_id"],
        side=o["side"].lower(),
        qty=float(body.get("base_size") or 0),
        status=_STATUS.get(o["status"], o["status"].lower()),
        filled_qty=float(o.get("filled_size") or 0),
        filled_avg_price=float(avg) if avg and float(avg) > 0 else None,
        type=kind.split("_", 1)[0],  # market_market_ioc -> market, limit_limit_gtc -> limit
    )
