"""An Alpaca-compatible HTTP API (trading v2 and market data v2) that alpaca-py accepts as it is."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from typing import Any

from lab.exchanges.state import Exchange, Order, require_admin
from lab.httpd import ApiError, Reply, Request, Router

ASSET_NS = uuid.UUID("6f1f9d3e-7a52-4a53-9f7e-2a0b4c3d5e6f")


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


class AlpacaApi:
    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], admin_token: str) -> None:
        """`keys`: key id -> (secret, book name)."""
        self.ex, self.keys, self.admin_token = exchange, keys, admin_token
        self.router = Router()
        self._register()

    def authenticate(self, req: Request) -> None:
        if require_admin(req, self.admin_token):
            return
        key, secret = req.headers.get("apca-api-key-id", ""), req.headers.get("apca-api-secret-key", "")
        found = self.keys.get(key)
        if found is None or not hmac.compare_digest(found[0], secret):
            raise ApiError(401, "unauthorized.")
        req.user, req.principal = found[1], key
        self.ex.faults.apply()

    # --- JSON shapes ---------------------------------------------------------------------------------
    def order_json(self, o: Order, nested: bool = True) -> dict[str, Any]:
        iso = self.ex.iso
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "created_at": iso(o.created),
            "updated_at": iso(o.filled_at or o.canceled_at or o.created),
            "submitted_at": iso(o.created),
            "filled_at": iso(o.filled_at),
            "expired_at": None,
            "canceled_at": iso(o.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(ASSET_NS, o.symbol)),
            "symbol": o.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": _num(o.qty),
            "filled_qty": _num(o.filled_qty),
            "filled_avg_price": _num(o.filled_avg_price),
            "order_class": o.order_class if o.parent is None else "bracket",
            "order_type": o.type,
            "type": o.type,
            "side": o.side,
            "time_in_force": o.time_in_force,
            "limit_price": _num(o.limit_price),
            "stop_price": _num(o.stop_price),
            "status": o.status,
            "extended_hours": False,
            "legs": [self.order_json(leg) for leg in o.legs] if (nested and o.legs) else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "position_intent": None,
        }

    def position_json(self, symbol: str, qty: float, entry: float) -> dict[str, Any]:
        price = self.ex.price(symbol)
        return {
            "asset_id": str(uuid.uuid5(ASSET_NS, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": _num(entry),
            "qty": _num(qty),
            "qty_available": _num(qty),
            "side": "long",
            "market_value": _num(qty * price),
            "cost_basis": _num(qty * entry),
            "unrealized_pl": _num(qty * (price - entry)),
            "unrealized_plpc": _num((price - entry) / entry if entry else 0),
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }

    def _register(self) -> None:
        r, ex = self.router, self.ex

        @r.route("GET", "/v2/account")
        def account(req: Request) -> Any:
            book = ex.matched(req.user)
            equity = ex.equity(book)
            return {
                "id": str(uuid.uuid5(ASSET_NS, "account:" + book.name)),
                "account_number": f"LAB-{book.name.upper()}",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "cash": _num(book.cash),
                "buying_power": _num(book.cash),
                "regt_buying_power": _num(book.cash),
                "daytrading_buying_power": _num(book.cash),
                "non_marginable_buying_power": _num(book.cash),
                "portfolio_value": _num(equity),
                "equity": _num(equity),
                "last_equity": _num(equity),
                "long_market_value": _num(equity - book.cash),
                "short_market_value": "0",
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2026-01-01T00:00:00Z",
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": False,
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
            }

        @r.route("GET", "/v2/clock")
        def clock(req: Request) -> Any:
            now = ex.clock.now()
            return {"timestamp": ex.iso(now), "is_open": True, "next_open": ex.iso(now + 86400), "next_close": ex.iso(now + 3600)}

        @r.route("GET", "/v2/calendar")
        def calendar(req: Request) -> Any:
            today = dt.datetime.fromtimestamp(ex.clock.now(), dt.UTC).date()
            start = dt.date.fromisoformat(req.params.get("start", str(today)))
            end = dt.date.fromisoformat(req.params.get("end", str(start + dt.timedelta(days=7))))
            days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
            return [
                {
                    "date": str(d),
                    "open": "09:30",
                    "close": "16:00",
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": str(d + dt.timedelta(days=1)),
                }
                for d in days
                if d.weekday() < 5
            ]

        @r.route("GET", "/v2/positions")
        def positions(req: Request) -> Any:
            book = ex.matched(req.user)
            return [self.position_json(s, q, e) for s, (q, e) in sorted(book.positions.items())]

        @r.route("GET", "/v2/positions/{symbol}")
        def position(req: Request) -> Any:
            book = ex.matched(req.user)
            found = book.positions.get(req.vars["symbol"])
            if found is None:
                raise ApiError(404, "position does not exist")
            return self.position_json(req.vars["symbol"], *found)

        @r.route("DELETE", "/v2/positions/{symbol}")
        def close_position(req: Request) -> Any:
            return self.order_json(ex.close(ex.books[req.user], req.vars["symbol"]))

        @r.route("DELETE", "/v2/positions")
        def close_all(req: Request) -> Any:
            book = ex.books[req.user]
            out = [{"symbol": s, "status": 200, "body": self.order_json(ex.close(book, s))} for s in sorted(book.positions)]
            return Reply(207, out)

        @r.route("POST", "/v2/orders")
        def submit(req: Request) -> Any:
            p = req.params
            try:
                qty = float(p["qty"])
            except (KeyError, ValueError):
                raise ApiError(422, "qty is required") from None
            tp = stop = None
            if p.get("order_class") == "bracket":
                take, loss = _obj(p.get("take_profit")), _obj(p.get("stop_loss"))
                if "limit_price" not in take or "stop_price" not in loss:
                    raise ApiError(422, "bracket orders need take_profit.limit_price and stop_loss.stop_price")
                tp, stop = float(take["limit_price"]), float(loss["stop_price"])
            order = ex.submit(
                ex.books[req.user],
                client_order_id=p.get("client_order_id") or str(uuid.uuid4()),
                symbol=p.get("symbol", "").upper(),
                side=p.get("side", ""),
                qty=qty,
                type_=p.get("type", "market"),
                time_in_force=p.get("time_in_force", "day"),
                limit_price=float(p["limit_price"]) if p.get("limit_price") else None,
                stop_price=float(p["stop_price"]) if p.get("stop_price") else None,
                take_profit=tp,
                stop_loss=stop,
                sender=req.principal,
            )
            ex.faults.hold_answer()
            return self.order_json(order)

        @r.route("GET", "/v2/orders")
        def orders(req: Request) -> Any:
            book = ex.matched(req.user)
            status = req.params.get("status", "open")
            nested = req.params.get("nested", "false").lower() == "true"
            rows = [o for o in book.orders.values() if not (nested and o.parent)]

            def is_open(o: Order) -> bool:  # a filled bracket entry stays listed while a leg is open
                return o.status in ("new", "held") or (nested and any(leg.status in ("new", "held") for leg in o.legs))

            if status == "open":
                rows = [o for o in rows if is_open(o)]
            elif status == "closed":
                rows = [o for o in rows if not is_open(o)]
            rows.sort(key=lambda o: o.created, reverse=True)
            return [self.order_json(o, nested) for o in rows[: int(req.params.get("limit", "500"))]]

        @r.route("GET", "/v2/orders:by_client_order_id")
        def by_client_id(req: Request) -> Any:
            book = ex.matched(req.user)
            return self.order_json(ex.order(book, book.by_client_id.get(req.params.get("client_order_id", ""), "")))

        @r.route("GET", "/v2/orders/{order_id}")
        def get_order(req: Request) -> Any:
            return self.order_json(ex.order(ex.matched(req.user), req.vars["order_id"]))

        @r.route("DELETE", "/v2/orders/{order_id}")
        def cancel(req: Request) -> Any:
            ex.cancel(ex.books[req.user], req.vars["order_id"])
            return Reply(204, empty=True)

        @r.route("DELETE", "/v2/orders")
        def cancel_all(req: Request) -> Any:
            book = ex.books[req.user]
            out = []
            for order in list(book.orders.values()):
                if order.status in ("new", "held") and order.parent is None:
                    ex.cancel(book, order.id)
                    out.append({"id": order.id, "status": 200, "body": self.order_json(order)})
            return Reply(207, out)

        @r.route("GET", "/v2/stocks/bars")
        def bars(req: Request) -> Any:
            symbols = [s for s in req.params.get("symbols", "").upper().split(",") if s]
            if not symbols:
                raise ApiError(400, "symbols is required")
            now = int(ex.clock.now())
            end = min(_ts(req.params.get("end"), now), now)
            start = _ts(req.params.get("start"), end - 3600)
            limit = int(req.params.get("limit") or 1000)
            out: dict[str, list[dict[str, Any]]] = {}
            for symbol in symbols:
                rows = ex.market.bars(symbol, start, end)[-limit:]
                out[symbol] = [{"t": ex.iso(b.t), "o": b.o, "h": b.h, "l": b.l, "c": b.c, "v": b.v, "n": b.n, "vw": b.vw} for b in rows]
            return {"bars": out, "next_page_token": None}

        # --- lab switches (admin token) -------------------------------------------------------------
        @r.route("GET", "/lab/stats")
        def stats(req: Request) -> Any:
            return ex.stats() | {"clock": ex.clock.now(), "speed": ex.clock.speed}

        @r.route("POST", "/lab/faults")
        def faults(req: Request) -> Any:
            return {"faults": ex.faults.configure(req.params)}

        @r.route("GET", "/lab/orders")
        def ledger(req: Request) -> Any:
            return ex.ledger()

        @r.route("POST", "/lab/market")
        def market(req: Request) -> Any:
            try:
                fraction = float(req.params["shock"])
            except (KeyError, ValueError):
                raise ApiError(400, "shock: the price move as a fraction, e.g. -0.5") from None
            if not -0.95 <= fraction <= 10:
                raise ApiError(400, "shock must be within -0.95 and 10")
            return {"shocked_from": ex.iso(ex.market.shock(fraction, ex.clock.now()))}

        @r.route("POST", "/lab/clock")
        def set_clock(req: Request) -> Any:
            if "advance" in req.params:
                ex.clock.advance(float(req.params["advance"]))
            else:
                ex.clock.set(
                    float(req.params["time"]) if "time" in req.params else None,
                    float(req.params["speed"]) if "speed" in req.params else None,
                )
            return {"clock": ex.clock.now(), "speed": ex.clock.speed}


def _obj(raw: str | None) -> dict[str, Any]:
    import json

    if not raw:
        return {}
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def _ts(raw: str | None, default: int) -> int:
    if not raw:
        return default
    return int(dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
