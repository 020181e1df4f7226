"""The trading loop: market data -> strategy -> sizing -> (by mode) an order or a would-be order.

Safety, in the order it is checked: a live order needs the symbol's lease; its client id is derived
from the decision (account, symbol, bar, side) and written to Redis as an intent before it is sent,
by a script that checks the lease's tenure and renews it in the same step (fail closed), so a retry
or a restart finds the id instead of doubling it. Every later write (order status, position,
journal) is checked by Redis against the tenure too: a bot paused past its TTL books nothing.

On taking a symbol (and every `reconcile_every` ticks) the bot reconciles with the broker
(bot/quantshift_bot/reconcile.py), the truth for quantities: orders of ours still unfinished are adopted as the broker has them, and an intent the
broker has never seen is fenced there (`Broker.burn`) before this bot trades, so the paused holder
that wrote it can never get it accepted; positions are set to the broker's and a divergence counted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis

from quantshift_bot import marketdata, metrics
from quantshift_bot.brokers.base import Broker, BrokerError, BrokerFailure, OrderRejected, is_fence_order
from quantshift_bot.config import BotConfig
from quantshift_bot.events import event
from quantshift_bot.failpoints import Failpoints
from quantshift_bot.lease import LeaseSet
from quantshift_bot.models import (
    Bar,
    BrokerOrder,
    Mode,
    OrderRequest,
    OrderStatus,
    Position,
    Signal,
    Trade,
    client_order_id,
    order_id_prefix,
)
from quantshift_bot.notify import Notifier
from quantshift_bot.reconcile import Reconciliation
from quantshift_bot.state import Fenced, State
from quantshift_bot.strategy import Strategy, position_size
from quantshift_bot.strategy import load as load_strategy

T = TypeVar("T")
PRIOR_WIN_RATE, PRIOR_PAYOFF, PRIOR_TRADES = 0.55, 2.0, 10  # the odds sizing assumes, weighted as this many trades
MIN_KELLY = 0.01  # the probe size when the odds show no edge: trading on, small, so the odds can recover
SIZING_TRADES = 500  # the journal's latest closed trades that sizing learns equity, win rate and payoff from


def sizing_odds(pnls: Sequence[float]) -> tuple[float, float]:
    """The win rate and payoff Kelly sizes with: the journal's, shrunk toward the prior as if the prior were
    PRIOR_TRADES more trades, so a strategy's first losses lower its size gradually. Where the odds show no
    edge at all, buy_quantity still buys a probe size (MIN_KELLY): at zero no trade would ever close again
    to correct the odds, and the strategy would stop for good after an unlucky start."""
    n = len(pnls)
    if n == 0:
        return PRIOR_WIN_RATE, PRIOR_PAYOFF
    observed_payoff = metrics.payoff(pnls) or PRIOR_PAYOFF  # no win or no loss yet: the prior's
    win_rate = (metrics.win_rate(pnls) * n + PRIOR_WIN_RATE * PRIOR_TRADES) / (n + PRIOR_TRADES)
    payoff = (observed_payoff * n + PRIOR_PAYOFF * PRIOR_TRADES) / (n + PRIOR_TRADES)
    return win_rate, payoff


def buy_quantity(
    price: float,
    pnls: Sequence[float],
    positions: Mapping[str, Position],
    prices: Mapping[str, float],
    *,
    start_equity: float,
    kelly_fraction: float,
    max_position: float,
    max_exposure: float,
    size_factor: float,
    fractional: bool,
) -> float:
    """How much a buy signal at `price` buys (0: skip it): fractional Kelly of `start_equity` plus the pnl of
    `pnls` (the latest SIZING_TRADES closed trades, oldest first), with their win rate and payoff shrunk toward
    the prior (sizing_odds), within the room `positions` (valued at `prices`, else at entry) leave under
    `max_exposure`. Engine.act and the replay (bot.replay) both size with it, so they cannot drift apart."""
    win_rate, payoff = sizing_odds(pnls)
    exposure = sum(p.qty * prices.get(s, p.entry_price) for s, p in positions.items())
    return position_size(
        equity=start_equity + sum(pnls),
        price=price,
        win_rate=win_rate,
        payoff=payoff,
        kelly_fraction=kelly_fraction,
        max_position=max_position,
        room=max_exposure - exposure,
        size_factor=size_factor,
        fractional=fractional,
        min_kelly=MIN_KELLY,
    )


class Engine(Reconciliation):
    def __init__(self, cfg: BotConfig, broker: Broker, client: redis.Redis, strategy: Strategy | None = None) -> None:
        self.cfg, self.broker, self.redis = cfg, broker, client
        self.strategy: Strategy = strategy or load_strategy(cfg.strategy, cfg.strategy_params)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{cfg.release}"
        self.leases = (
            LeaseSet(client, cfg.account_id, cfg.lease_symbols, self.owner, cfg.lease_ttl_ms, yields=cfg.mode in (Mode.LIVE, Mode.PAPER))
            if cfg.needs_lease
            else None
        )
        self.state = State(client, cfg.state_account, self.leases.fence if self.leases else None, cfg.lease_ttl_ms)
        self.failpoints = Failpoints(cfg.failpoints, lambda name: event("failpoint", name=name, action="SIGSTOP"))
        self.counters = metrics.Counters()
        self.recorder = marketdata.Recorder(client, "crypto" if cfg.broker == "coinbase" else "equity")
        self._recording_failed = False
        self.stop = threading.Event()
        # Set by SIGTERM and by the lease heartbeat when it takes a lease: the loop ticks at once, so a
        # standby that receives the lease decides within milliseconds instead of at its next tick.
        self.wake = threading.Event()
        if self.leases is not None:
            self.leases.on_acquire = self.wake.set
            self.leases.alive = self.loop_alive
            self.leases.on_stall = self._stalled
            self.leases.check_s = min(cfg.lease_ttl_ms / 3000, cfg.stall_after_s / 10)
        self.notifier = Notifier()
        self.loop_started: float | None = None  # monotonic: the loop's first tick began
        self.last_tick_done: float | None = None  # monotonic: the loop last completed a tick
        # Liveness: the loop made progress (a tick or a broker call completed), or it is inside a broker
        # call still within its timeout. Time spent anywhere else (a decision) counts against it.
        self.last_progress: float | None = None
        self._in_call_since: float | None = None
        self._stall_reported = False
        self._stop_timer: threading.Timer | None = None
        self.status, self.reason = "starting", ""
        self.started = time.time()
        self.start_equity = 0.0
        self.prices: dict[str, float] = {}
        self.last_bars: dict[str, tuple[int, float]] = {}  # symbol -> (bar time, close) last seen: /healthz shows it
        self._reconciled: dict[str, int] = {}  # symbol -> the lease tenure (fencing token) it was reconciled under
        self._first_decision_logged = False
        self.last_decision_at: float | None = None
        self.session_pnls: list[float] = []  # trades closed by this process: what the host's guard judges a release by

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        event("starting", **self.cfg.public())
        self.start_equity = self._call(self.broker.equity, "account")
        self._call(lambda: self.broker.bars(self.cfg.symbols, self.cfg.bars_lookback), "bars")  # warm up connections
        self.loop_started = time.monotonic()
        if self.leases is not None:
            self.leases.refresh()
            self.leases.start()
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Fenced as err:
                self._fenced(err)
            except (BrokerFailure, redis.RedisError) as err:
                self._degrade(f"{err.__class__.__name__}: {err}")
            except Exception as err:
                # A bug: hand the leases back at once (a release taking over must not wait out the TTL), then crash.
                event("crashed", release=self.cfg.release, error=f"{err.__class__.__name__}: {err}")
                self.shutdown()
                raise
            self._tick_done()
            self.failpoints.hit("after_tick")
            self.wake.wait(max(0.0, self.cfg.tick_seconds - (time.monotonic() - began)))
            self.wake.clear()
        return self.shutdown()

    def request_stop(self) -> None:
        """From the SIGTERM handler: finish the current tick, then shut down; a loop stuck in a tick (or a
        shutdown stuck at the broker) is ended after `stop_timeout_s` by a hard exit."""
        if self.stop.is_set():
            return
        self.stop.set()
        self.wake.set()
        self.notifier.stopping("stopping: SIGTERM")
        self._stop_timer = threading.Timer(self.cfg.stop_timeout_s, self._hard_exit)
        self._stop_timer.daemon = True
        self._stop_timer.start()

    def _hard_exit(self) -> None:
        """The loop did not finish within the stop timeout: hand the leases back and exit now. Safe from
        this thread: if the stuck loop wakes up later, every write and intent it tries is fenced."""
        event(
            "hard_exit", release=self.cfg.release, reason=f"not stopped {self.cfg.stop_timeout_s:g} s after SIGTERM", loop=self._loop_age()
        )
        if self.leases is not None:
            self.leases.release_all()
        logging.shutdown()
        os._exit(0)

    # --- liveness: proven by the loop completing ticks ------------------------------------------------
    def _tick_done(self) -> None:
        first = self.last_tick_done is None
        self.last_tick_done = self.last_progress = time.monotonic()
        if self._stall_reported:
            self._stall_reported = False
            event("unstalled", release=self.cfg.release)
        status = f"{self.status}: {self.reason}" if self.reason else self.status
        if first:
            self.notifier.ready(status, self.cfg.watchdog_s)  # warm: connected, reconciled what it holds, trading or waiting
        self.notifier.watchdog(status)

    def _loop_age(self) -> float | None:
        """Seconds since the loop last completed a tick (or began its first); None before it began."""
        mark = self.last_tick_done or self.loop_started
        return None if mark is None else round(time.monotonic() - mark, 3)

    def _idle_age(self) -> float | None:
        """Seconds since the loop last made progress; None before it began."""
        mark = self.last_progress or self.loop_started
        return None if mark is None else round(time.monotonic() - mark, 3)

    def loop_alive(self) -> bool:
        """False once the loop makes no progress for `stall_after_s`: a hung or far too slow decision. A slow
        exchange is not a stall: each broker call completing is progress, and a call may take its timeout."""
        calling = self._in_call_since
        if calling is not None and time.monotonic() - calling < self.cfg.broker_timeout_s + 1:
            return True
        age = self._idle_age()
        return age is None or age < self.cfg.stall_after_s

    def _stalled(self) -> None:
        """Heartbeat thread: the loop stopped completing ticks and the leases were handed back."""
        if not self._stall_reported:
            self._stall_reported = True
            event("stalled", release=self.cfg.release, idle=self._idle_age(), last_tick=self._loop_age(), limit=self.cfg.stall_after_s)

    def tick(self) -> None:
        bars = self._call(lambda: self.broker.bars(self.cfg.symbols, self.cfg.bars_lookback), "bars")
        got_data = time.perf_counter()
        self.counters.tick()
        for symbol, series in bars.items():
            if series:
                self.prices[symbol] = series[-1].c
                self.last_bars[symbol] = (series[-1].t, series[-1].c)
        held = self._tradeable()
        self._record(bars, held)
        positions = self.state.positions()
        if self.cfg.mode is not Mode.SHADOW:
            for symbol in held - set(self._reconciled):
                self.reconcile(symbol)
                positions = self.state.positions()
            if held and self.counters.ticks % self.cfg.reconcile_every == 0:
                self._sync_orders(held)
                broker_positions = self._call(self.broker.positions, "positions")
                for symbol in sorted(held):
                    self._reconcile_position(symbol, broker_positions, periodic=True)
                positions = self.state.positions()
        decided = False
        for symbol in self.cfg.symbols:
            if symbol not in held:
                continue
            self.failpoints.hit("hang_in_decision")
            signal = self.strategy.decide(symbol, bars.get(symbol, []), positions.get(symbol))
            self.counters.decision(time.perf_counter() - got_data)
            decided = True
            if signal is not None:
                self.act(signal, positions.get(symbol), positions)
        if decided:
            self.last_decision_at = time.time()
            if not self._first_decision_logged:
                self._first_decision_logged = True
                event("first_decision", release=self.cfg.release, mode=self.cfg.mode.value, symbols=sorted(held))
        self._set_status(held)

    def _record(self, bars: dict[str, list[Bar]], held: set[str]) -> None:
        """Record the bars of the symbols this bot decides on (bot/quantshift_bot/marketdata.py); never in the way of trading."""
        try:
            self.recorder.record(bars, held)
            self._recording_failed = False
        except redis.RedisError as err:
            if not self._recording_failed:
                self._recording_failed = True
                event("recording_failed", error=f"{err.__class__.__name__}: {err}")

    def _tradeable(self) -> set[str]:
        if self.leases is None:
            return set(self.cfg.symbols)
        held = set(self.leases.held())
        for symbol in list(self._reconciled):
            if symbol not in held or self._reconciled[symbol] != self.leases.leases[symbol].token:
                del self._reconciled[symbol]  # lost, or lost and taken again (a new tenure): reconcile again
        return held

    def _set_status(self, held: set[str]) -> None:
        if self.leases is not None and not self.leases.redis_ok:
            self._degrade("redis unreachable: no orders until it is back (fail closed)")
        elif self.counters.error_rate > 0.05:
            self._degrade(f"broker error rate {self.counters.error_rate:.0%}")
        elif self.leases is not None and not held:
            holders = {s: h for s, h in self.leases.holders().items() if h}
            self.status, self.reason = (
                "standby",
                f"waiting for the lease ({', '.join(f'{s} held by {h}' for s, h in holders.items()) or 'free'})",
            )
        else:
            self.status, self.reason = "ready", ""

    def _fenced(self, err: Fenced) -> None:
        """Redis refused a write: this bot's tenure on the symbol ended (it was paused, or Redis expired
        the lease). Stop treating the symbol as ours at once; the heartbeat takes it again if it is free."""
        self.counters.fenced_writes += 1
        if self.leases is not None:
            self.leases.lost(err.symbol)
        self._reconciled.pop(err.symbol, None)
        event("fenced", symbol=err.symbol, reason=str(err))

    def _degrade(self, reason: str) -> None:
        if (self.status, self.reason) != ("degraded", reason):
            event("degraded", reason=reason)
        self.status, self.reason = "degraded", reason

    # --- decisions --------------------------------------------------------------------------------
    def client_order_id(self, signal: Signal) -> str:
        return client_order_id(self.cfg.account_id, signal.symbol, signal.bar_t, signal.side)

    def act(self, signal: Signal, position: Position | None, positions: dict[str, Position]) -> None:
        if signal.side == "buy":
            qty = buy_quantity(
                signal.price,
                [float(t["pnl"]) for t in self.state.trades(SIZING_TRADES)],
                positions,
                self.prices,
                start_equity=self.start_equity,
                kelly_fraction=self.cfg.kelly_fraction,
                max_position=self.cfg.max_position,
                max_exposure=self.cfg.max_exposure,
                size_factor=self.cfg.size_factor,
                fractional=self.broker.fractional,
            )
        else:
            qty = position.qty if position else 0.0
        if qty <= 0:
            event("skipped", symbol=signal.symbol, side=signal.side, reason="size is zero (limits or Kelly)")
            return
        req = OrderRequest(
            self.client_order_id(signal), signal.symbol, signal.side, qty, signal.price, signal.reason, signal.stop_loss, signal.take_profit
        )
        if self.cfg.mode is Mode.SHADOW:
            self._would_be(req)
            return
        self._send(req)

    def _would_be(self, req: OrderRequest) -> None:
        """Shadow: record what would have been sent, and book it at the decision price. No order endpoint."""
        if req.client_order_id in self.state.orders():
            return
        doc = {
            "time": time.time(),
            "symbol": req.symbol,
            "side": req.side,
            "qty": req.qty,
            "price": req.price,
            "reason": req.reason,
            "client_order_id": req.client_order_id,
            "release": self.cfg.release,
        }
        self.state.record_intent(req, self.cfg.mode.value, self.cfg.release)
        self.state.update_order(req.client_order_id, status=OrderStatus.FILLED, broker_id=None)
        self.state.would_be(doc)
        self.counters.would_be_orders += 1
        event("would_be_order", **doc)
        self._apply_fill(
            req, BrokerOrder("shadow", req.client_order_id, req.symbol, req.side, req.qty, OrderStatus.FILLED, req.qty, req.price)
        )

    def _send(self, req: OrderRequest) -> None:
        if self.leases is None or not self.leases.valid(req.symbol):
            event("no_order", symbol=req.symbol, reason="lease not held or not confirmed within the TTL (fail closed)")
            return
        self.failpoints.hit("after_lease_check")
        try:
            if not self.state.record_intent(req, self.cfg.mode.value, self.cfg.release):
                return  # this decision was already sent (by us before a restart, or by the release before us)
        except redis.RedisError as err:
            event("no_order", symbol=req.symbol, reason=f"redis did not confirm the lease (fail closed): {err.__class__.__name__}")
            raise
        self.leases.confirmed(req.symbol)
        self.failpoints.hit("after_intent")
        began = time.perf_counter()
        try:
            order = self._call(lambda: self.broker.submit(req), f"order {req.client_order_id}")
        except OrderRejected as err:
            found = self._reached_broker(req.client_order_id)
            if found is None:
                self.counters.call(True)  # a refused order is a failed call: the error rate the gate and the guard watch
                self.state.update_order(req.client_order_id, status=OrderStatus.REJECTED, error=str(err))
                event("order_rejected", client_order_id=req.client_order_id, error=str(err))
                return
            # An attempt that timed out reached the broker after all, so the retry was refused as a
            # repeat: the order exists. Adopt it instead of marking it rejected (it would be orphaned).
            event("order_adopted", client_order_id=req.client_order_id, status=found.status, after=str(err))
            order = found
        self.failpoints.hit("after_answer")
        if is_fence_order(order):
            # The bot that took over while we were paused fenced this id: the broker refused our order
            # (Alpaca) or answered with the fence (Coinbase). Nothing was traded; our tenure is over.
            self.counters.fenced_orders += 1
            event("order_fenced", client_order_id=req.client_order_id, symbol=req.symbol, broker_id=order.id)
            raise Fenced(req.symbol, f"order {req.client_order_id}")
        self.counters.order(time.perf_counter() - began)
        self.counters.orders_sent += 1
        self.state.update_order(req.client_order_id, status=order.status, broker_id=order.id)
        event(
            "order",
            client_order_id=req.client_order_id,
            symbol=req.symbol,
            side=req.side,
            qty=req.qty,
            price=req.price,
            status=order.status,
            reason=req.reason,
            mode=self.cfg.mode.value,
            release=self.cfg.release,
        )
        if order.status == OrderStatus.FILLED:
            self._apply_fill(req, order)

    def _apply_fill(self, req: OrderRequest, order: BrokerOrder) -> None:
        price = order.filled_avg_price or req.price
        positions = self.state.positions()
        current = positions.get(req.symbol)
        if req.side == "buy":
            qty = (current.qty if current else 0.0) + order.filled_qty
            entry = ((current.qty * current.entry_price if current else 0.0) + order.filled_qty * price) / qty
            self.state.save_position(Position(req.symbol, qty, entry, req.stop_loss, req.take_profit, time.time(), req.client_order_id))
            return
        if current is None:
            return
        trade = Trade(
            req.symbol,
            min(order.filled_qty, current.qty),
            current.entry_price,
            price,
            current.opened_at,
            time.time(),
            req.reason,
            {"release": self.cfg.release, "mode": self.cfg.mode.value},
        )
        self.state.journal(trade)
        self.session_pnls.append(trade.pnl)
        remaining = current.qty - order.filled_qty
        if remaining > 1e-9:
            current.qty = remaining
            self.state.save_position(current)
        else:
            self.state.drop_position(req.symbol)
        event("trade_closed", symbol=req.symbol, pnl=round(trade.pnl, 4), reason=req.reason)

    # --- shutdown ---------------------------------------------------------------------------------
    def shutdown(self) -> int:
        """SIGTERM: no new signals; cancel our open non-protective orders; keep (or close) positions; hand over."""
        self.status, self.reason = "stopping", "SIGTERM"
        event("last_decision", release=self.cfg.release, at=self.last_decision_at)
        if self.cfg.mode is not Mode.SHADOW and self.leases is not None:
            held = set(self.leases.held())
            for cid, doc in self.state.open_orders().items():
                if doc.get("symbol") in held and not doc.get("protective") and doc.get("broker_id"):
                    try:
                        self.broker.cancel(str(doc["broker_id"]))
                        self.state.update_order(cid, status=OrderStatus.CANCELED)
                        event("canceled", client_order_id=cid)
                    except (BrokerFailure, Fenced, redis.RedisError) as err:
                        event("cancel_failed", client_order_id=cid, error=str(err))
            if self.cfg.close_on_shutdown:
                for symbol, pos in self.state.positions().items():
                    if symbol not in held:
                        continue
                    # The same fenced path as any order: intent, then send, then book.
                    req = OrderRequest(
                        order_id_prefix(self.cfg.account_id, symbol) + f"shutdown-{int(time.time())}",
                        symbol,
                        "sell",
                        pos.qty,
                        self.prices.get(symbol, pos.entry_price),
                        "close on shutdown",
                    )
                    try:
                        self._send(req)
                    except (BrokerFailure, Fenced, redis.RedisError) as err:
                        event("close_failed", symbol=symbol, error=str(err))
            self.leases.release_all()
        event("stopped", release=self.cfg.release, positions=len(self.state.positions()))
        if self._stop_timer is not None:
            self._stop_timer.cancel()  # stopped in time: no hard exit
        return 0

    def health(self) -> dict[str, Any]:
        """What /healthz answers now (bot.health.document)."""
        from quantshift_bot.health import document

        return document(self)

    # --- broker calls with bounded retries ------------------------------------------------------------
    def _call(self, fn: Callable[[], T], what: str) -> T:
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            self._in_call_since = time.monotonic()
            try:
                result = fn()
                self.counters.call(False)
                return result
            except BrokerError as err:
                self.counters.call(True)
                if attempt == attempts - 1 or self.stop.is_set():
                    raise
                event("retry", what=what, attempt=attempt + 1, error=str(err))
                time.sleep(min(0.05 * 2**attempt, 1.0))
            finally:
                self._in_call_since, self.last_progress = None, time.monotonic()
        raise AssertionError("unreachable")
