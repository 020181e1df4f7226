"""A Coinbase-Advanced-Trade-compatible HTTPS API that coinbase-advanced-py accepts as it is.

Every private call carries a JWT (ES256 or EdDSA) signed with the account's key: the lab checks the
signature against the public key it issued, the expiry, and that the `uri` claim names this request.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from lab.exchanges.state import Exchange, Order, require_admin
from lab.httpd import ApiError, Request, Router

PREFIX = "/api/v3/brokerage"
_STATUS = {"new": "OPEN", "held": "OPEN", "filled": "FILLED", "canceled": "CANCELLED", "rejected": "FAILED"}


def _s(value: float | None) -> str:
    return "0" if value is None else f"{value:.8f}".rstrip("0").rstrip(".") or "0"


class CoinbaseApi:
    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], admin_token: str) -> None:
        """`keys`: key name -> (public key PEM, book name)."""
        self.ex, self.admin_token = exchange, admin_token
        self.keys = {name: (serialization.load_pem_public_key(pem.encode()), book) for name, (pem, book) in keys.items()}
        self.router = Router()
        self._register()

    @staticmethod
    def error_body(err: ApiError) -> dict[str, Any]:
        return {
            "error": "INVALID_ARGUMENT" if err.status == 400 else "UNAUTHENTICATED" if err.status == 401 else "INTERNAL",
            "code": err.status,
            "message": err.message,
            "details": [],
        }

    def authenticate(self, req: Request) -> None:
        if require_admin(req, self.admin_token):
            return
        if req.path == PREFIX + "/time":
            return
        header = req.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(401, "missing bearer JWT")
        token = header[len("Bearer ") :]
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            public, book = self.keys[kid]
            claims = jwt.decode(token, public, algorithms=["ES256", "EdDSA"], options={"require": ["exp", "nbf", "sub"]}, leeway=5)  # type: ignore[arg-type]
        except (KeyError, jwt.PyJWTError) as err:
            raise ApiError(401, f"invalid JWT: {err.__class__.__name__}") from None
        expected = f"{req.method} {req.headers.get('host', '')}{req.path}"
        if claims.get("sub") != kid or claims.get("uri") != expected:
            raise ApiError(401, "JWT does not match this request (sub/uri)")
        req.user, req.principal = book, kid
        self.ex.faults.apply()

    def order_json(self, o: Order) -> dict[str, Any]:
        config = (
            {"market_market_ioc": {"base_size": _s(o.qty)}}
            if o.type == "market"
            else {"limit_limit_gtc": {"base_size": _s(o.qty), "limit_price": _s(o.limit_price), "post_only": False}}
        )
        filled_value = o.filled_qty * (o.filled_avg_price or 0)
        return {
            "order_id": o.id,
            "product_id": o.symbol,
            "user_id": "lab",
            "order_configuration": config,
            "side": o.side.upper(),
            "client_order_id": o.client_order_id,
            "status": _STATUS.get(o.status, "UNKNOWN_ORDER_STATUS"),
            "time_in_force": "IMMEDIATE_OR_CANCEL" if o.type == "market" else "GOOD_UNTIL_CANCELLED",
            "created_time": self.ex.iso(o.created),
            "completion_percentage": "100" if o.status == "filled" else "0",
            "filled_size": _s(o.filled_qty),
            "average_filled_price": _s(o.filled_avg_price),
            "fee": "",
            "number_of_fills": "1" if o.filled_qty else "0",
            "filled_value": _s(filled_value),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": "0",
            "size_inclusive_of_fees": False,
            "total_value_after_fees": _s(filled_value),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": o.type.upper(),
            "reject_reason": "",
            "settled": o.status == "filled",
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0",
            "is_liquidation": False,
            "last_fill_time": self.ex.iso(o.filled_at),
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
        }

    def _register(self) -> None:
        r, ex = self.router, self.ex

        @r.route("GET", PREFIX + "/time")
        def server_time(req: Request) -> Any:
            now = ex.clock.now()
            return {"iso": ex.iso(now), "epochSeconds": str(int(now)), "epochMillis": str(int(now * 1000))}

        @r.route("GET", PREFIX + "/accounts")
        def accounts(req: Request) -> Any:
            book = ex.matched(req.user)
            rows = [("USD", book.cash)] + [(s.split("-")[0], q) for s, (q, _) in sorted(book.positions.items())]
            out = [
                {
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{book.name}:{cur}")),
                    "name": f"{cur} Wallet",
                    "currency": cur,
                    "available_balance": {"value": _s(v), "currency": cur},
                    "default": True,
                    "active": True,
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": ex.iso(ex.clock.now()),
                    "deleted_at": None,
                    "type": "ACCOUNT_TYPE_FIAT" if cur == "USD" else "ACCOUNT_TYPE_CRYPTO",
                    "ready": True,
                    "hold": {"value": "0", "currency": cur},
                    "retail_portfolio_id": "lab",
                }
                for cur, v in rows
            ]
            return {"accounts": out, "has_next": False, "cursor": "", "size": len(out)}

        @r.route("POST", PREFIX + "/orders")
        def create(req: Request) -> Any:
            import json

            p = req.params
            cid, product, side = p.get("client_order_id", ""), p.get("product_id", ""), p.get("side", "").lower()
            config = json.loads(p.get("order_configuration") or "{}")
            book = ex.books[req.user]
            existing = book.by_client_id.get(cid)
            if existing is not None:  # Coinbase answers a repeated client_order_id with the order it already has
                book.received += 1
                o = book.orders[existing]
                return {
                    "success": True,
                    "success_response": {"order_id": o.id, "product_id": o.symbol, "side": o.side.upper(), "client_order_id": cid},
                    "order_configuration": config,
                }
            kind, raw_body = next(iter(config.items()), ("", {}))
            body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
            try:
                if kind == "market_market_ioc":
                    qty = float(body["base_size"]) if "base_size" in body else round(float(body["quote_size"]) / ex.price(product), 8)
                    order = ex.submit(book, client_order_id=cid, symbol=product, side=side, qty=qty, sender=req.principal)
                elif kind == "limit_limit_gtc":
                    order = ex.submit(
                        book,
                        client_order_id=cid,
                        symbol=product,
                        side=side,
                        qty=float(body["base_size"]),
                        type_="limit",
                        time_in_force="gtc",
                        limit_price=float(body["limit_price"]),
                        sender=req.principal,
                    )
                else:
                    raise ApiError(400, f"unsupported order_configuration {kind!r}")
            except ApiError as err:
                if err.status >= 500 or err.status == 400:
                    raise
                reason = "INSUFFICIENT_FUND" if "insufficient" in err.message else "UNKNOWN_FAILURE_REASON"
                return {
                    "success": False,
                    "failure_reason": "UNKNOWN_FAILURE_REASON",
                    "order_id": "",
                    "error_response": {
                        "error": reason,
                        "message": err.message,
                        "error_details": err.message,
                        "preview_failure_reason": "UNKNOWN_PREVIEW_FAILURE_REASON",
                    },
                }
            ex.faults.hold_answer()
            return {
                "success": True,
                "success_response": {"order_id": order.id, "product_id": product, "side": side.upper(), "client_order_id": cid},
                "order_configuration": config,
            }

        @r.route("GET", PREFIX + "/orders/historical/batch")
        def list_orders(req: Request) -> Any:
            book = ex.matched(req.user)
            rows = [o for o in book.orders.values() if o.parent is None]
            wanted = req.params.get("order_status")
            if wanted:
                rows = [o for o in rows if _STATUS.get(o.status) in wanted.split(",")]
            products = req.params.get("product_ids")
            if products:
                rows = [o for o in rows if o.symbol in products.split(",")]
            rows.sort(key=lambda o: o.created, reverse=True)
            return {"orders": [self.order_json(o) for o in rows], "sequence": "0", "has_next": False, "cursor": ""}

        @r.route("GET", PREFIX + "/orders/historical/{order_id}")
        def get_order(req: Request) -> Any:
            return {"order": self.order_json(ex.order(ex.matched(req.user), req.vars["order_id"]))}

        @r.route("POST", PREFIX + "/orders/batch_cancel")
        def batch_cancel(req: Request) -> Any:
            import json

            raw = req.params.get("order_ids") or "[]"
            ids = json.loads(raw) if raw.startswith("[") else [raw]
            book, results = ex.books[req.user], []
            for oid in ids:
                try:
                    ex.cancel(book, oid)
                    results.append({"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": oid})
                except ApiError as err:
                    results.append(
                        {
                            "success": False,
                            "failure_reason": "UNKNOWN_CANCEL_ORDER" if err.status == 404 else "INVALID_CANCEL_REQUEST",
                            "order_id": oid,
                        }
                    )
            return {"results": results}

        @r.route("GET", PREFIX + "/products/{product_id}/candles")
        def candles(req: Request) -> Any:
            now = int(ex.clock.now())
            start, end = int(req.params.get("start", now - 3600)), min(int(req.params.get("end", now)), now)
            if req.params.get("granularity", "ONE_MINUTE") != "ONE_MINUTE":
                raise ApiError(400, "the lab serves ONE_MINUTE candles only")
            rows = ex.market.bars(req.vars["product_id"], start, end)[-int(req.params.get("limit") or 350) :]
            return {
                "candles": [
                    {"start": str(b.t), "low": _s(b.l), "high": _s(b.h), "open": _s(b.o), "close": _s(b.c), "volume": _s(b.v)}
                    for b in reversed(rows)
                ]
            }

        @r.route("GET", PREFIX + "/products/{product_id}")
        def product(req: Request) -> Any:
            pid = req.vars["product_id"]
            base, _, quote = pid.partition("-")
            return {
                "product_id": pid,
                "price": _s(ex.price(pid)),
                "base_currency_id": base,
                "quote_currency_id": quote or "USD",
                "base_increment": "0.00000001",
                "quote_increment": "0.01",
                "status": "online",
                "product_type": "SPOT",
            }

        @r.route("GET", "/lab/stats")
        def stats(req: Request) -> Any:
            return ex.stats() | {"clock": ex.clock.now()}

        @r.route("POST", "/lab/faults")
        def faults(req: Request) -> Any:
            ex.faults.configure(req.params)
            return {"ok": True, "at": time.time()}

        @r.route("GET", "/lab/orders")
        def ledger(req: Request) -> Any:
            return ex.ledger()
