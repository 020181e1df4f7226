"""The bot's state in Redis, per account: positions, orders (written before they are sent), journal.

Keys (ACCOUNT is `id`, or `id:shadow` for a shadow's would-be book):
  qs:ACCOUNT:positions   hash symbol -> Position JSON
  qs:ACCOUNT:orders      hash client_order_id -> order JSON (status intent|new|filled|canceled|rejected|abandoned|fenced)
  qs:ACCOUNT:journal     stream of closed trades
  qs:ACCOUNT:wouldbe     stream of a shadow's would-be orders

Fencing: a bot that trades under leases writes a symbol's positions, orders and journal only through
a Lua script that first checks, inside Redis, that the symbol's lease key still holds this bot's
tenure (OWNER#TOKEN). A bot paused past its TTL can resume mid-write: Redis refuses the write
(`Fenced`) because the key now names another tenure, so it never books what it read before. The
order intent also renews the lease in the same step, so the check before an order costs one round
trip. A shadow, which holds no lease, writes unfenced into its own would-be book.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import redis

from quantshift_bot.models import FINAL, OrderRequest, OrderStatus, Position, Trade

# KEYS[1] the lease key (or '' unfenced), KEYS[2] the hash or stream; ARGV: expected lease value, op, field, value[, ttl].
_FENCED_WRITE = """
if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then return -1 end
local op = ARGV[2]
if op == 'intent' then
  if redis.call('hexists', KEYS[2], ARGV[3]) == 1 then return 0 end
  redis.call('hset', KEYS[2], ARGV[3], ARGV[4])
  if ARGV[1] ~= '' then redis.call('pexpire', KEYS[1], ARGV[5]) end
elseif op == 'hset' then redis.call('hset', KEYS[2], ARGV[3], ARGV[4])
elseif op == 'hdel' then redis.call('hdel', KEYS[2], ARGV[3])
elseif op == 'xadd' then redis.call('xadd', KEYS[2], 'MAXLEN', '~', '100000', '*', ARGV[3], ARGV[4])
end
return 1
"""

Fence = Callable[[str], tuple[str, str] | None]  # symbol -> (lease key, OWNER#TOKEN), None when not held


class Fenced(RuntimeError):
    """Redis refused a state write: the symbol's lease no longer names this bot's tenure."""

    def __init__(self, symbol: str, what: str) -> None:
        super().__init__(f"{what} for {symbol} refused: the lease is no longer ours (another tenure holds it)")
        self.symbol = symbol


class State:
    def __init__(self, client: redis.Redis, account: str, fence: Fence | None = None, lease_ttl_ms: int = 0) -> None:
        """`fence`: give it for a bot that trades under leases; every write is then checked by Redis."""
        self.r = client
        self.prefix = f"qs:{account}"
        self.fence, self.lease_ttl_ms = fence, lease_ttl_ms
        self._write = client.register_script(_FENCED_WRITE)

    def _fenced(self, symbol: str, name: str, op: str, field: str, value: str, what: str) -> bool:
        lease_key, expected = "", ""
        if self.fence is not None:
            found = self.fence(symbol)
            if found is None:
                raise Fenced(symbol, what)
            lease_key, expected = found
        result = int(
            self._write(keys=[lease_key or self._k("nolease"), self._k(name)], args=[expected, op, field, value, self.lease_ttl_ms])
        )
        if result < 0:
            raise Fenced(symbol, what)
        return result == 1

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # --- positions --------------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        raw = self.r.hgetall(self._k("positions"))
        return {_s(k): Position(**json.loads(v)) for k, v in raw.items()}

    def save_position(self, pos: Position) -> None:
        self._fenced(pos.symbol, "positions", "hset", pos.symbol, json.dumps(pos.to_dict()), "position update")

    def drop_position(self, symbol: str) -> None:
        self._fenced(symbol, "positions", "hdel", symbol, "", "position removal")

    # --- orders -----------------------------------------------------------------------------------
    def record_intent(self, req: OrderRequest, mode: str, release: str) -> bool:
        """Written before the order is sent (after a crash, reconcile asks the broker about it); renews the
        lease in the same step. False: this decision was recorded before (by us, or the release before us)."""
        doc = asdict(req) | {"status": OrderStatus.INTENT, "broker_id": None, "mode": mode, "release": release, "created": time.time()}
        return self._fenced(req.symbol, "orders", OrderStatus.INTENT.value, req.client_order_id, json.dumps(doc), "order intent")

    def update_order(self, cid: str, **fields: Any) -> None:
        raw = self.r.hget(self._k("orders"), cid)
        doc = json.loads(raw) if raw else {"client_order_id": cid}
        doc.update(fields, updated=time.time())
        self._fenced(str(doc.get("symbol", "")), "orders", "hset", cid, json.dumps(doc), f"order {cid}")

    def orders(self) -> dict[str, dict[str, Any]]:
        return {_s(k): json.loads(v) for k, v in self.r.hgetall(self._k("orders")).items()}

    def open_orders(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.orders().items() if v.get("status") not in FINAL}

    # --- journal ----------------------------------------------------------------------------------
    def journal(self, trade: Trade) -> None:
        doc = trade.doc()
        self._fenced(trade.symbol, "journal", "xadd", "trade", json.dumps(doc), "trade journal")

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
