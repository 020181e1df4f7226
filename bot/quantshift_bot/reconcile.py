"""Reconciliation with the broker, the truth for quantities: on taking a symbol and every
`reconcile_every` ticks. Orders of ours still unfinished are adopted as the broker has them; an intent
the broker has never seen is fenced there (`Broker.burn`) before this bot trades, so a paused holder
that wrote it can never get it accepted; positions are set to the broker's, and a difference found
while trading is a divergence (logged, counted, repaired).

Mixed into the Engine, whose broker, state, strategy, counters and bounded broker calls it uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from quantshift_bot import metrics
from quantshift_bot.brokers.base import Broker, BrokerError, is_fence_order
from quantshift_bot.config import BotConfig
from quantshift_bot.events import event
from quantshift_bot.lease import LeaseSet
from quantshift_bot.models import FINAL, BrokerOrder, OrderStatus, Position, order_id_prefix
from quantshift_bot.state import State
from quantshift_bot.strategy import Strategy

T = TypeVar("T")


class Reconciliation:
    cfg: BotConfig
    broker: Broker
    state: State
    strategy: Strategy
    counters: metrics.Counters
    leases: LeaseSet | None
    prices: dict[str, float]
    _reconciled: dict[str, int]

    def _call(self, fn: Callable[[], T], what: str) -> T:
        raise NotImplementedError  # the Engine's bounded broker call

    def reconcile(self, symbol: str) -> None:
        """Make the state of `symbol` agree with the broker, which is the truth for quantities (on taking it)."""
        self._sync_orders({symbol})
        self._reconcile_position(symbol, self._call(self.broker.positions, "positions"))
        known = self.state.orders()
        prefix = order_id_prefix(self.cfg.account_id, symbol)
        for order in self._call(self.broker.open_orders, "orders"):
            if order.client_order_id.startswith(prefix) and order.client_order_id not in known:
                self.state.update_order(
                    order.client_order_id,
                    status=order.status,
                    broker_id=order.id,
                    symbol=symbol,
                    side=order.side,
                    qty=order.qty,
                    protective=order.protective,
                )
                event("reconciled", symbol=symbol, action="adopted an open order", client_order_id=order.client_order_id)
        self._reconciled[symbol] = self.leases.leases[symbol].token if self.leases is not None else 0

    def _reconcile_position(self, symbol: str, broker_positions: dict[str, Any], periodic: bool = False) -> None:
        """Set Redis's position in `symbol` to the broker's; a difference found while trading is a divergence."""
        broker_pos = broker_positions.get(symbol)
        mine = self.state.positions().get(symbol)
        booked = mine.qty if mine else 0.0
        if broker_pos is not None and mine is None:
            sl, tp = self.strategy.protection(broker_pos.avg_entry_price)
            self.state.save_position(Position(symbol, broker_pos.qty, broker_pos.avg_entry_price, sl, tp, time.time(), "adopted"))
            action, qty = "adopted the broker's position", broker_pos.qty
        elif broker_pos is None and mine is not None:
            self.state.drop_position(symbol)
            action, qty = "dropped a position the broker no longer has", 0.0
        elif broker_pos is not None and mine is not None and abs(broker_pos.qty - mine.qty) > 1e-9:
            mine.qty = broker_pos.qty
            self.state.save_position(mine)
            action, qty = "quantity set to the broker's", broker_pos.qty
        else:
            return
        if periodic:
            self.counters.divergences += 1
            event("divergence", symbol=symbol, redis_qty=booked, broker_qty=qty, action=action)
        else:
            event("reconciled", symbol=symbol, action=action, qty=qty)

    def _sync_orders(self, symbols: set[str]) -> None:
        """Ask the broker about every unfinished order of ours: adopt its fate, never resend it."""
        for cid, doc in self.state.open_orders().items():
            if doc.get("symbol") not in symbols:
                continue
            found = self._find(cid)
            if found is None and doc.get("status") == OrderStatus.INTENT:
                # The broker has never seen it. Whoever wrote the intent may be paused right before sending
                # it: make the id unusable at the broker before this bot trades (its bar has passed anyway).
                found = self._burn(cid, str(doc["symbol"]))
                if is_fence_order(found):
                    self.counters.burned_ids += 1
                    self.state.update_order(cid, status=OrderStatus.FENCED, broker_id=found.id)
                    event("reconciled", client_order_id=cid, action="fenced at the broker an order that never reached it")
                    continue
            if found is None:
                continue
            self.state.update_order(cid, status=found.status, broker_id=found.id)
            if found.status in FINAL and doc.get("status") not in FINAL:
                event("reconciled", client_order_id=cid, action=f"order is {found.status} at the broker")

    def _burn(self, cid: str, symbol: str) -> BrokerOrder:
        price = self._last_price(symbol)
        return self._call(lambda: self.broker.burn(cid, symbol, price), f"fence {cid}")

    def _last_price(self, symbol: str) -> float:
        if symbol not in self.prices:
            series = self._call(lambda: self.broker.bars((symbol,), 2), "bars").get(symbol) or []
            if not series:
                raise BrokerError(f"no price for {symbol}: cannot fence its order ids")
            self.prices[symbol] = series[-1].c
        return self.prices[symbol]

    def _reached_broker(self, cid: str) -> BrokerOrder | None:
        """After a refusal: did an earlier attempt of this order reach the broker? (Unknown: say no.)"""
        try:
            return self._find(cid)
        except BrokerError:
            return None

    def _find(self, cid: str) -> BrokerOrder | None:
        return self._call(lambda: self.broker.find(cid), "order lookup")
