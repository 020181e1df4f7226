"""The single-writer lease: one bot per (account, symbol) may place orders, fenced and fail-closed.

A lease key holds `OWNER#TOKEN`: the owner (host:pid:release) and the fencing token of this tenure,
drawn from a per-symbol counter (INCR) in the same atomic step that takes the key. Renew and release
only while the value is still exactly ours. Validity is judged on this process's own clock: when
Redis cannot confirm a renewal within the TTL the lease counts as lost, so no order goes out.

A check in this process can always be overtaken by a pause (SIGSTOP, a VM freeze, swap): every state
write and every order intent is therefore checked again by Redis itself against the tenure's value
(`quantshift_bot.state`), and a bot taking over makes the old tenure's unsent order ids unusable at the broker
(`Engine.reconcile`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# All of a bot's symbols at once or none: two identical bots never split an account between them.
# Each key gets a new tenure: OWNER#TOKEN, the token from the symbol's fence counter. Returns the tokens.
_ACQUIRE_ALL = """
local prefix = ARGV[1] .. '#'
for _, key in ipairs(KEYS) do
  local value = redis.call('get', key)
  if value and string.sub(value, 1, #prefix) ~= prefix then return {} end
end
local tokens = {}
for i, key in ipairs(KEYS) do
  tokens[i] = redis.call('incr', key .. ':fence')
  redis.call('set', key, prefix .. tokens[i], 'PX', ARGV[2])
end
return tokens
"""
SEPARATOR = "#"


@dataclass
class SymbolLease:
    symbol: str
    key: str
    held: bool = False
    token: int = 0  # the fencing token of our current tenure
    confirmed_at: float = 0.0  # monotonic time Redis last confirmed it
    value: str = ""  # OWNER#TOKEN: what the key holds while this tenure lasts


class LeaseSet:
    """Leases on a set of symbols of one account, kept alive by a heartbeat thread."""

    def __init__(self, client: redis.Redis, account: str, symbols: tuple[str, ...], owner: str, ttl_ms: int, yields: bool = False) -> None:
        """`yields`: this bot gives up the symbols listed in the account's yield set (the primary does,
        so a canary can take a slice; `quantshift bot lease yield`)."""
        self.client, self.owner, self.ttl_ms, self.yields = client, owner, ttl_ms, yields
        self.yield_key = yield_key(account)
        self.yielded: set[str] = set()
        self.leases = {s: SymbolLease(s, lease_key(account, s)) for s in symbols}
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._acquire_all = client.register_script(_ACQUIRE_ALL)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.redis_ok = True
        self.on_acquire: Callable[[], None] | None = None  # called (heartbeat thread) after taking leases
        # Liveness from the trading loop: while it says False (no tick completed lately) the heartbeat
        # renews nothing and takes nothing, and hands back what it holds: a stalled bot never sits on
        # the account. Safe from this side thread because every write and intent is fenced in Redis.
        self.alive: Callable[[], bool] = lambda: True
        self.on_stall: Callable[[], None] | None = None
        self.check_s = ttl_ms / 3000

    # --- one round over every symbol --------------------------------------------------------------
    def refresh(self) -> None:
        """Renew what we hold, try to take what we do not; record whether Redis answered.

        Holding nothing, a bot takes all its symbols in one atomic step or none (so a second bot on the
        account waits in standby); holding some (a slice came back from a canary), it takes the rest one by one.
        """
        try:
            if self.yields:
                self.yielded = {m.decode() if isinstance(m, bytes) else str(m) for m in self.client.smembers(self.yield_key)}
            with self._lock:
                wanted = []
                for lease in self.leases.values():
                    if lease.symbol in self.yielded:
                        if lease.held:  # handed to whoever takes the slice (a canary)
                            self._release(keys=[lease.key], args=[lease.value])
                            lease.held = False
                        continue
                    wanted.append(lease)
                    if lease.held:
                        if self._renew(keys=[lease.key], args=[lease.value, self.ttl_ms]):
                            lease.confirmed_at = time.monotonic()
                        else:
                            lease.held = False  # someone else has it now: stop at once
                missing = [lease for lease in wanted if not lease.held]
                if missing and len(missing) == len(wanted):
                    self._take(missing)
                else:
                    for lease in missing:  # a slice came back: take it symbol by symbol
                        self._take([lease])
            self.redis_ok = True
        except redis.RedisError:
            self.redis_ok = False

    def _take(self, leases: list[SymbolLease]) -> None:
        tokens = self._acquire_all(keys=[lease.key for lease in leases], args=[self.owner, self.ttl_ms])
        if not tokens:
            return
        now = time.monotonic()
        for lease, token in zip(leases, tokens, strict=True):
            lease.token, lease.value = int(token), f"{self.owner}{SEPARATOR}{int(token)}"
            lease.held, lease.confirmed_at = True, now
        if self.on_acquire is not None:
            self.on_acquire()

    def fence(self, symbol: str) -> tuple[str, str] | None:
        """(key, OWNER#TOKEN) of our tenure on `symbol`, for writes Redis checks against it; None if not held."""
        lease = self.leases.get(symbol)
        if lease is None or not lease.held:
            return None
        return lease.key, lease.value

    def confirmed(self, symbol: str) -> None:
        """Redis renewed `symbol`'s lease as part of a fenced write (an order intent)."""
        lease = self.leases.get(symbol)
        if lease is not None:
            lease.confirmed_at = time.monotonic()

    def lost(self, symbol: str) -> None:
        """Redis refused a fenced write: the tenure is over, whatever this process believed."""
        lease = self.leases.get(symbol)
        if lease is not None:
            with self._lock:
                lease.held = False

    def valid(self, symbol: str) -> bool:
        """Held and confirmed by Redis within the TTL (with a margin): only then may an order go out."""
        lease = self.leases.get(symbol)
        if lease is None or not lease.held:
            return False
        return (time.monotonic() - lease.confirmed_at) * 1000 < self.ttl_ms * 0.8

    def confirm(self, symbol: str) -> bool:
        """A synchronous renewal just before an order: fail closed if Redis does not answer now."""
        lease = self.leases.get(symbol)
        if lease is None or not lease.held:
            return False
        try:
            with self._lock:
                ok = bool(self._renew(keys=[lease.key], args=[lease.value, self.ttl_ms]))
                if ok:
                    lease.confirmed_at = time.monotonic()
                else:
                    lease.held = False
            self.redis_ok = True
            return ok
        except redis.RedisError:
            self.redis_ok = False
            return False

    def held(self) -> list[str]:
        return [s for s in self.leases if self.valid(s)]

    def holders(self) -> dict[str, str | None]:
        """Symbol -> the owner holding it now (without the tenure's token), or None."""
        try:
            return {
                s: holder_of(v.decode() if isinstance(v, bytes) else v)
                for s, v in zip(self.leases, self.client.mget([lease.key for lease in self.leases.values()]), strict=True)
            }
        except redis.RedisError:
            return {}

    # --- heartbeat --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        due = 0.0  # monotonic time of the next renewal round
        while not self._stop.is_set():
            if not self.alive():
                if any(lease.held for lease in self.leases.values()):
                    self.hand_back()
                    if self.on_stall is not None:
                        self.on_stall()
                due = 0.0
            elif time.monotonic() >= due:
                self.refresh()
                # Waiting for a lease: poll fast so a handover takes milliseconds. Holding: a third of the TTL.
                waiting = any(not lease.held and lease.symbol not in self.yielded for lease in self.leases.values())
                due = time.monotonic() + (0.02 if waiting else self.ttl_ms / 3000)
            # Liveness is looked at every `check_s` even between renewals: a stall hands back within it.
            self._stop.wait(max(0.005, min(self.check_s, due - time.monotonic())))

    def release_all(self) -> None:
        """Stop the heartbeat and hand every lease back (only those still ours)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self.hand_back()

    def hand_back(self) -> None:
        """Release every lease still ours now (the heartbeat may take them again later)."""
        for lease in self.leases.values():
            with self._lock:
                if lease.held:
                    try:
                        self._release(keys=[lease.key], args=[lease.value])
                    except redis.RedisError:
                        pass  # it expires on its own within the TTL
                    lease.held = False


# Key layout, in one place: qs:lease:ACCOUNT:SYMBOL holds OWNER#TOKEN; qs:lease:ACCOUNT:SYMBOL:fence
# counts the symbol's tenures; qs:lease:ACCOUNT:yielded is the set of symbols the primary leaves to a canary.
def lease_key(account: str, symbol: str) -> str:
    """The Redis key of one symbol's single-writer lease on `account`."""
    return f"qs:lease:{account}:{symbol}"


def yield_key(account: str) -> str:
    """The Redis set of symbols the primary of `account` leaves to others (a canary's slice)."""
    return lease_key(account, "yielded")


def leases_of(client: redis.Redis, account: str) -> dict[str, str]:
    """Every symbol of `account` whose lease is held now, with its OWNER#TOKEN value."""
    out = {}
    prefix = lease_key(account, "")
    for raw in client.scan_iter(match=prefix + "*", count=500):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        symbol = name[len(prefix) :]
        if ":" in symbol or name == yield_key(account):
            continue  # a fence counter or the yield set, not a lease
        value = client.get(name)
        if value is not None:
            out[symbol] = value.decode() if isinstance(value, bytes) else str(value)
    return out


def holder_of(value: str | None) -> str | None:
    """The owner part of a lease key's OWNER#TOKEN value."""
    return None if value is None else value.rsplit(SEPARATOR, 1)[0]
