"""Alpaca through alpaca-py: TradingClient for the account and orders, the historical client for bars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest

from quantshift_bot.brokers.base import BURN_PRICE_FRACTION, BrokerError, OrderRejected
from quantshift_bot.config import AlpacaSettings
from quantshift_bot.models import Bar, BrokerOrder, BrokerPosition, OrderRequest, OrderStatus

T = TypeVar("T")
_STATUS = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "partially_filled": OrderStatus.NEW,
    "held": OrderStatus.NEW,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "done_for_day": OrderStatus.CANCELED,
}


def _guard(fn: Callable[[], T], what: str) -> T:
    try:
        return fn()
    except APIError as err:
        code = err.status_code or 0
        if code >= 500 or code == 429:
            raise BrokerError(f"{what}: HTTP {code}") from None
        raise OrderRejected(f"{what}: HTTP {code}: {err}") from None
    except (requests.ConnectionError, requests.Timeout) as err:
        raise BrokerError(f"{what}: {err.__class__.__name__}") from None


def _with_timeout(request: Callable[..., Any], timeout_s: float) -> Callable[..., Any]:
    def call(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout_s)
        return request(method, url, **kwargs)

    return call


class AlpacaBroker:
    name = "alpaca"
    fractional = False

    def __init__(self, cfg: AlpacaSettings, paper: bool, timeout_s: float = 10.0) -> None:
        self.trading = TradingClient(cfg.api_key, cfg.secret_key, paper=paper, url_override=cfg.trading_url)
        self.data = StockHistoricalDataClient(cfg.api_key, cfg.secret_key, url_override=cfg.data_url)
        for client in (self.trading, self.data):
            # The SDK sleeps 3 s per retry on 429/504; the engine retries itself, briefly and bounded.
            client._retry = 0
            # The SDK sets no timeout: a hung exchange would hold the trading loop (and SIGTERM) forever.
            client._session.request = _with_timeout(client._session.request, timeout_s)  # type: ignore[method-assign]

    def equity(self) -> float:
        account: Any = _guard(self.trading.get_account, "account")
        return float(account.equity)

    def bars(self, symbols: tuple[str, ...], count: int) -> dict[str, list[Bar]]:
        clock: Any = _guard(self.trading.get_clock, "clock")
        now = clock.timestamp
        req = StockBarsRequest(
            symbol_or_symbols=list(symbols), timeframe=TimeFrame.Minute, start=now - dt.timedelta(minutes=count + 5), end=now
        )
        barset: Any = _guard(lambda: self.data.get_stock_bars(req), "bars")
        out: dict[str, list[Bar]] = {}
        for symbol in symbols:
            rows = barset.data.get(symbol, [])
            out[symbol] = [Bar(int(b.timestamp.timestamp()), b.open, b.high, b.low, b.close, b.volume) for b in rows][-count:]
        return out

    def positions(self) -> dict[str, BrokerPosition]:
        rows: Any = _guard(self.trading.get_all_positions, "positions")
        return {p.symbol: BrokerPosition(p.symbol, float(p.qty), float(p.avg_entry_price)) for p in rows}

    def open_orders(self) -> list[BrokerOrder]:
        rows: Any = _guard(lambda: self.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True)), "orders")
        out = []
        for o in rows:
            parent = _order(o)
            if parent.status == OrderStatus.NEW:
                out.append(parent)
            out += [leg for leg in (_order(raw, protective=True) for raw in (o.legs or [])) if leg.status == OrderStatus.NEW]
        return out

    def submit(self, req: OrderRequest) -> BrokerOrder:
        order = MarketOrderRequest(
            symbol=req.symbol, qty=req.qty, side=OrderSide(req.side), time_in_force=TimeInForce.DAY, client_order_id=req.client_order_id
        )
        try:
            return _order(_guard(lambda: self.trading.submit_order(order), f"order {req.client_order_id}"))
        except OrderRejected as err:
            if "client_order_id" in str(err):  # sent before (a retry or a restart): the broker has it
                found = self.find(req.client_order_id)
                if found is not None:
                    return found
            raise

    def find(self, client_order_id: str) -> BrokerOrder | None:
        try:
            return _order(_guard(lambda: self.trading.get_order_by_client_id(client_order_id), "order lookup"))
        except OrderRejected as err:
            if "404" in str(err):
                return None
            raise

    def cancel(self, order_id: str) -> None:
        _guard(lambda: self.trading.cancel_order_by_id(order_id), f"cancel {order_id}")

    def burn(self, client_order_id: str, symbol: str, price: float) -> BrokerOrder:
        """One share bid at half the last price, canceled at once: Alpaca refuses the id from then on (422)."""
        fence = LimitOrderRequest(
            symbol=symbol,
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=max(0.01, round(price * BURN_PRICE_FRACTION, 2)),
            client_order_id=client_order_id,
        )
        try:
            order = _order(_guard(lambda: self.trading.submit_order(fence), f"fence {client_order_id}"))
        except OrderRejected as err:
            found = self.find(client_order_id) if "client_order_id" in str(err) else None
            if found is None:
                raise
            return found  # the id was used before the fence arrived: that order holds it
        if order.status == OrderStatus.NEW:
            self.cancel(order.id)
            order.status = OrderStatus.CANCELED
        return order


def _order(o: Any, protective: bool = False) -> BrokerOrder:
    status = str(o.status.value if hasattr(o.status, "value") else o.status)
    kind = getattr(o, "order_type", None) or getattr(o, "type", None)
    return BrokerOrder(
        id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=o.symbol,
        side=str(o.side.value if hasattr(o.side, "value") else o.side),
        qty=float(o.qty or 0),
        status=_STATUS.get(status, status),
        filled_qty=float(o.filled_qty or 0),
        filled_avg_price=float(o.filled_avg_price) if o.filled_avg_price else None,
        protective=protective,
        type=str(getattr(kind, "value", kind) or "market"),
    )
