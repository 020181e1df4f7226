"""The bot's state in Redis, per account: positions, orders (written before they are sent), journal.

Keys (ACCOUNT is `id`, or `id:shadow` for a shadow's would-be book):
  qs:ACCOUNT:positions   hash symbol -> Position JSON
  qs:ACCOUNT:orders      hash client_order_id -> order JSON (status intent|open|filled|canceled|rejected|abandoned)
  qs:ACCOUNT:journal     stream of closed trades
  qs:ACCOUNT:wouldbe     stream of a shadow's would-be orders
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import redis

from bot.models import OrderRequest, Position, Trade

FINAL = {"filled", "canceled", "rejected", "abandoned", "expired"}


class State:
    def __init__(self, client: redis.Redis, account: str) -> None:
        self.r = client
        self.prefix = f"qs:{account}"

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # --- positions --------------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        raw = self.r.hgetall(self._k("positions"))
        return {_s(k): Position(**json.loads(v)) for k, v in raw.items()}

    def save_position(self, pos: Position) -> None:
        self.r.hset(self._k("positions"), pos.symbol, json.dumps(pos.to_dict()))

    def drop_position(self, symbol: str) -> None:
        self.r.hdel(self._k("positions"), symbol)

    # --- orders -----------------------------------------------------------------------------------
    def record_intent(self, req: OrderRequest, mode: str, release: str) -> None:
        """Written before the order is sent: after a crash, reconcile asks the broker about it."""
        doc = asdict(req) | {"status": "intent", "broker_id": None, "mode": mode, "release": release, "created": time.time()}
        self.r.hset(self._k("orders"), req.client_order_id, json.dumps(doc))

    def update_order(self, cid: str, **fields: Any) -> None:
        raw = self.r.hget(self._k("orders"), cid)
        doc = json.loads(raw) if raw else {"client_order_id": cid}
        doc.update(fields, updated=time.time())
        self.r.hset(self._k("orders"), cid, json.dumps(doc))

    def orders(self) -> dict[str, dict[str, Any]]:
        return {_s(k): json.loads(v) for k, v in self.r.hgetall(self._k("orders")).items()}

    def open_orders(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.orders().items() if v.get("status") not in FINAL}

    # --- journal ----------------------------------------------------------------------------------
    def journal(self, trade: Trade) -> None:
        doc = asdict(trade) | {"pnl": trade.pnl, "ret": trade.ret}
        self.r.xadd(self._k("journal"), {"trade": json.dumps(doc)}, maxlen=100_000, approximate=True)

    def trades(self, count: int = 10_000) -> list[dict[str, Any]]:
        return self._stream("journal", "trade", count)

    def would_be(self, doc: dict[str, Any]) -> None:
        self.r.xadd(self._k("wouldbe"), {"order": json.dumps(doc)}, maxlen=100_000, approximate=True)

    def would_be_orders(self, count: int = 10_000) -> list[dict[str, Any]]:
        return self._stream("wouldbe", "order", count)

    def _stream(self, name: str, field: str, count: int) -> list[dict[str, Any]]:
        """The newest `count` entries of a stream, oldest first."""
        entries: Any = self.r.xrevrange(self._k(name), count=count)
        out = []
        for _, fields in reversed(entries):
            raw = fields.get(field.encode(), fields.get(field))
            out.append(json.loads(raw))
        return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
