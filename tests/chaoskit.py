"""Chaos on the lab, watched from outside the bots: two live bots on one account, the exchange's own
record of accepted orders (`/lab/orders`) and an independent poll of the lease keys and positions in Redis.

Used by tests/test_chaos.py and bench/fence.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.botkit import Bot
from tests.labkit import free_port

# Where the leader is paused: a failpoint inside the bot (bot.failpoints), an answer held back by the
# exchange while the order is in flight, a random moment of its trading, or kill -9 and a restart.
FAILPOINT_MOMENTS = ("after_lease_check", "after_intent", "after_tick")
MOMENTS = (*FAILPOINT_MOMENTS, "in_flight", "random", "kill9")

SYMBOLS = {"alpaca": ("AAPL", "MSFT"), "coinbase": ("BTC-USD", "ETH-USD")}
ACCOUNT = {"alpaca": "chaos-alpaca", "coinbase": "chaos-coinbase"}
TTL_MS = 1000


def bot_env(lab: dict[str, Any], redis_url: str, broker: str, key: str, release: str, **over: str) -> dict[str, str]:
    """A live bot on the lab's live account of `broker`, with the account's own key or its `standby` key."""
    common = {
        "QS_MODE": "live",
        "QS_BROKER": broker,
        "QS_SYMBOLS": ",".join(SYMBOLS[broker]),
        "QS_ACCOUNT_ID": ACCOUNT[broker],
        "QS_REDIS_URL": redis_url,
        "QS_METRICS_PORT": str(free_port()),
        "QS_TICK_SECONDS": "0.1",
        "QS_RELEASE": release,
        "QS_STRATEGY_PARAMS": '{"fast": 2, "slow": 5}',
        "QS_LEASE_TTL_MS": str(TTL_MS),
        "QS_RECONCILE_EVERY": "10",
    }
    account = lab[broker]["live"]
    creds = account if key == "primary" else account["standby"]
    if broker == "alpaca":
        return (
            common
            | {
                "ALPACA_API_KEY": creds["key_id"],
                "ALPACA_SECRET_KEY": creds["secret_key"],
                "ALPACA_TRADING_URL": lab["alpaca_url"],
                "ALPACA_DATA_URL": lab["alpaca_url"],
            }
            | over
        )
    return (
        common
        | {
            "QS_MAX_POSITION": "2000",
            "COINBASE_API_KEY": creds["key_name"],
            "COINBASE_API_SECRET": creds["private_key"],
            "COINBASE_BASE_URL": lab["coinbase_base_url"],
            "COINBASE_CA_BUNDLE": lab["exchange_ca_cert"],
        }
        | over
    )


def key_of(lab: dict[str, Any], broker: str, key: str) -> str:
    """The credential id the exchange records as an order's sender."""
    account = lab[broker]["live"]
    creds = account if key == "primary" else account["standby"]
    return str(creds["key_id"] if broker == "alpaca" else creds["key_name"])


def exchange_url(lab: dict[str, Any], broker: str) -> str:
    return str(lab["alpaca_url"] if broker == "alpaca" else "https://" + lab["coinbase_base_url"])


def _admin(lab: dict[str, Any], broker: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    """A lab admin call to `broker`'s exchange (GET, or POST with `params`), trusting this lab's CA."""
    import ssl
    import urllib.request
    from urllib.parse import urlencode

    url = exchange_url(lab, broker) + path
    data = urlencode(params).encode() if params is not None else None
    req = urllib.request.Request(url, data=data, headers={"X-Lab-Admin": lab["exchange_admin_token"]}, method="POST" if data else "GET")
    ctx = ssl.create_default_context(cafile=lab["exchange_ca_cert"]) if url.startswith("https") else None
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        doc: dict[str, Any] = json.load(resp)
        return doc


def ledger(lab: dict[str, Any], broker: str) -> dict[str, Any]:
    """The live account's accepted orders (sender, time) and position history, as the exchange recorded them."""
    doc: dict[str, Any] = _admin(lab, broker, "/lab/orders")["live"]
    return doc


def set_faults(lab: dict[str, Any], broker: str, **faults: str) -> None:
    """Switch the exchange's faults (none given: all off)."""
    _admin(lab, broker, "/lab/faults", faults or {"error_rate": "0"})


def stopped(pid: int) -> bool:
    """True while the process is stopped by a signal (state T)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def pause(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


@dataclass
class Observer:
    """Polls the lease keys and the booked positions of one account every `period_s`, from its own connection."""

    redis_url: str
    account: str
    symbols: tuple[str, ...]
    period_s: float = 0.002
    leases: list[tuple[float, dict[str, str | None]]] = field(default_factory=list)  # (wall time, symbol -> value)
    positions: list[tuple[float, str, float]] = field(default_factory=list)  # (wall time, symbol, qty) on every change
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Observer:
        self._thread = threading.Thread(target=self._poll, name="chaos-observer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _poll(self) -> None:
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        keys = [f"qs:lease:{self.account}:{s}" for s in self.symbols]
        last: dict[str, float] = dict.fromkeys(self.symbols, 0.0)
        while not self._stop.is_set():
            pipe = client.pipeline(transaction=True)
            pipe.mget(keys)
            pipe.hgetall(f"qs:{self.account}:positions")
            values, booked = pipe.execute()
            now = time.time()
            self.leases.append((now, dict(zip(self.symbols, values, strict=True))))
            for symbol in self.symbols:
                qty = float(json.loads(booked[symbol])["qty"]) if symbol in booked else 0.0
                if abs(qty - last[symbol]) > 1e-9:
                    self.positions.append((now, symbol, qty))
                    last[symbol] = qty
            time.sleep(self.period_s)

    def holders(self, symbol: str) -> set[str]:
        """Every owner seen holding `symbol`'s lease (lease values are OWNER#TOKEN)."""
        return {str(v).rsplit("#", 1)[0] for _, held in self.leases for s, v in held.items() if s == symbol and v}

    def holder_pids_around(self, symbol: str, t: float) -> set[int | None]:
        """The pids holding `symbol` at the last poll before `t` and the first after it (None: nobody)."""
        before = [held for at, held in self.leases if at <= t][-1:]
        after = [held for at, held in self.leases if at >= t][:1]
        return {_pid(held.get(symbol)) for held in before + after}


def _pid(value: str | None) -> int | None:
    return None if not value else int(value.split(":")[1])


def violations(ledger_doc: dict[str, Any], observer: Observer, pids_by_sender: dict[str, set[int]]) -> list[str]:
    """What the outside record shows against the single-writer promise (empty: it held).

    - an order accepted while another process held its symbol's lease (or nobody did);
    - a client order id accepted twice;
    - Redis moving to a position the exchange never had, or back to an older one (booked without a fill).
    """
    out = []
    orders = ledger_doc["orders"]
    ids = [o["client_order_id"] for o in orders]
    out += [f"client order id accepted twice: {cid}" for cid in sorted({i for i in ids if ids.count(i) > 1})]
    for o in orders:
        around = observer.holder_pids_around(o["symbol"], o["accepted_at"])
        if not around & pids_by_sender.get(o["sender"], set()):
            out.append(
                f"order {o['client_order_id']} ({o['type']}) from pids {sorted(pids_by_sender.get(o['sender'], set()))} accepted at "
                f"{o['accepted_at']:.3f} while the lease of {o['symbol']} was held by {sorted(map(str, around))}"
            )
    for symbol in observer.symbols:
        history = [(0.0, 0.0)] + [(h["t"], h["qty"]) for h in ledger_doc["history"] if h["symbol"] == symbol]
        at = 0
        for t, qty in [(t, q) for t, s, q in observer.positions if s == symbol]:
            match = next((k for k in range(at, len(history)) if abs(history[k][1] - qty) < 1e-6 and history[k][0] <= t), None)
            if match is None:
                out.append(f"Redis booked {symbol} = {qty:g} at {t:.3f}, which the exchange's history {history[at:]} does not have next")
                break
            at = match
    return out


def final_disagreements(ledger_doc: dict[str, Any], redis_url: str, account: str) -> list[str]:
    """At rest: positions in Redis equal the exchange's, and every open order at the exchange is known in Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    booked = {s: float(json.loads(v)["qty"]) for s, v in client.hgetall(f"qs:{account}:positions").items()}
    held = {s: float(q) for s, q in ledger_doc["positions"].items()}
    out = [
        f"{s}: Redis {booked.get(s, 0):g}, exchange {held.get(s, 0):g}"
        for s in sorted(set(booked) | set(held))
        if abs(booked.get(s, 0) - held.get(s, 0)) > 1e-9
    ]
    known = set(client.hkeys(f"qs:{account}:orders"))
    out += [
        f"open order unknown to Redis: {o['client_order_id']}"
        for o in ledger_doc["orders"]
        if o["status"] in ("new", "held") and o["client_order_id"] not in known
    ]
    return out


@dataclass
class Outcome:
    ledger: dict[str, Any]
    observer: Observer
    pids_by_sender: dict[str, set[int]]
    leader: list[Bot]  # the paused bot (and, after kill -9, its restart)
    other: Bot
    paused_at: float
    took_over_at: float


def _wait(predicate: Callable[[], Any], timeout: float, what: str, bots: list[Bot]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    logs = "\n".join(f"--- {b.log.name}\n{b.log.read_text()[-2500:]}" for b in bots)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def run(lab: dict[str, Any], redis_url: str, tmp: Path, broker: str, moment: str, seed: int = 1) -> Outcome:
    """Two live bots on one account; pause the leader at `moment` past the TTL, let the other take over
    and trade, resume (or restart) the leader, let both run on, stop both. Everything is recorded outside them."""
    account, symbols = ACCOUNT[broker], SYMBOLS[broker]
    key_a, key_b = key_of(lab, broker, "primary"), key_of(lab, broker, "standby")
    armed = {"QS_FAILPOINTS": moment} if moment in FAILPOINT_MOMENTS else {}
    env_a = bot_env(lab, redis_url, broker, "primary", "a", **armed)
    env_b = bot_env(lab, redis_url, broker, "standby", "b")
    observer = Observer(redis_url, account, symbols).start()
    a = Bot(env_a, tmp / f"{broker}-{moment}-a.log")
    started, leaders = [a], [a]

    def holders() -> set[int | None]:
        return {_pid(v) for v in (observer.leases[-1][1].values() if observer.leases else [None])}

    def sent_by(key: str, after: float = 0.0) -> list[dict[str, Any]]:
        return [o for o in ledger(lab, broker)["orders"] if o["sender"] == key and o["accepted_at"] > after]

    try:
        _wait(lambda: holders() == {a.proc.pid}, 30, "the first bot to hold every lease", started)
        b = Bot(env_b, tmp / f"{broker}-{moment}-b.log")
        started.append(b)
        _wait(lambda: (b.health() or {}).get("status") in ("standby", "ready"), 30, "the second bot up", started)
        if moment in FAILPOINT_MOMENTS:
            _wait(lambda: stopped(a.proc.pid), 60, f"the leader stopped at {moment}", started)
        elif moment == "in_flight":
            before = len(sent_by(key_a))
            set_faults(lab, broker, answer_ms=str(3 * TTL_MS))
            _wait(lambda: len(sent_by(key_a)) > before, 60, "an order of the leader accepted", started)
            pause(a.proc.pid)  # its answer is still held back by the exchange
            set_faults(lab, broker)
        else:
            _wait(lambda: a.events("order"), 60, "the leader trading", started)
            if moment == "random":
                time.sleep(random.Random(seed).uniform(0.0, 1.0))
                pause(a.proc.pid)
            else:
                a.kill()
        paused_at = time.time()
        _wait(lambda: holders() == {b.proc.pid}, 10 * TTL_MS / 1000, "the other bot to take every lease", started)
        took_over_at = time.time()
        _wait(lambda: sent_by(key_b, took_over_at), 60, "the other bot trading", started)
        if moment == "kill9":
            a = Bot(env_a | {"QS_METRICS_PORT": str(free_port())}, tmp / f"{broker}-{moment}-a2.log")
            started.insert(1, a)
            leaders.append(a)
            _wait(lambda: (a.health() or {}).get("status") == "standby", 30, "the restarted bot in standby", started)
        else:
            resume(a.proc.pid)
        time.sleep(2.0)  # the resumed bot runs into the fences; the other trades and reconciles on
        for bot in started:
            if bot.proc.poll() is None:
                bot.terminate(timeout=30)
    finally:
        for bot in started:
            if bot.proc.poll() is None:
                resume(bot.proc.pid)
            bot.kill()
        observer.stop()
    pids = {key_a: {x.proc.pid for x in leaders}, key_b: {b.proc.pid}}
    return Outcome(ledger(lab, broker), observer, pids, leaders, b, paused_at, took_over_at)
