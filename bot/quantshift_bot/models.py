"""The values that cross between strategy, engine, brokers and state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    PAPER = "paper"
    SHADOW = "shadow"
    CANARY = "canary"
    LIVE = "live"


class OrderStatus(StrEnum):
    """An order's state in the bot's books; each broker's own statuses map onto these."""

    INTENT = "intent"  # written before sending (fenced by the lease), not yet seen by the broker
    NEW = "new"  # at the broker, still working
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ABANDONED = "abandoned"  # reconciled away: it never reached the broker
    FENCED = "fenced"  # its id made unusable at the broker by the bot that took over


FINAL = frozenset(
    {  # nothing more will happen to it
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.ABANDONED,
        OrderStatus.EXPIRED,
        OrderStatus.FENCED,
    }
)


@dataclass(frozen=True)
class Bar:
    t: int  # bar open, unix seconds
    o: float
    h: float
    l: float  # noqa: E741 - the market's own name for it
    c: float
    v: float


@dataclass(frozen=True)
class Signal:
    symbol: str
    side: str  # buy | sell
    price: float
    reason: str
    bar_t: int
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float  # the price the decision saw (market orders fill near it)
    reason: str
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass
class BrokerOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    status: str  # an OrderStatus
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    protective: bool = False  # a stop-loss / take-profit leg: it stays when the bot stops
    type: str = "market"  # the bot sends market orders; a limit order under its id is a fence (see Broker.burn)


@dataclass
class BrokerPosition:
    symbol: str
    qty: float
    avg_entry_price: float


@dataclass
class Position:
    """What the bot remembers of a position beyond what the broker knows: why and where it exits."""

    symbol: str
    qty: float
    entry_price: float
    stop_loss: float | None = None
    take_profit: float | None = None
    opened_at: float = 0.0
    client_order_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trade:
    """A closed round trip, as the journal records it."""

    symbol: str
    qty: float
    entry_price: float
    exit_price: float
    opened_at: float
    closed_at: float
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pnl(self) -> float:
        return (self.exit_price - self.entry_price) * self.qty

    @property
    def ret(self) -> float:
        return (self.exit_price - self.entry_price) / self.entry_price if self.entry_price else 0.0

    def doc(self) -> dict[str, Any]:
        """The trade as the journal holds it (and compare reads it): its fields, pnl and return."""
        return asdict(self) | {"pnl": self.pnl, "ret": self.ret}


def client_order_id(account: str, symbol: str, moment: str | int, side: str) -> str:
    """The client order id the bot sends: one per account, symbol, bar (or moment) and side, so the
    same decision is never sent twice (both brokers refuse a repeated id)."""
    return f"{order_id_prefix(account, symbol)}{moment}-{side}"


def order_id_prefix(account: str, symbol: str) -> str:
    """What every client order id of this bot for `symbol` on `account` starts with."""
    return f"qs-{account}-{symbol}-"
