"""The single-writer lease: one bot per (account, symbol) may place orders, fenced and fail-closed.

Acquire with SET NX PX plus a fencing token (INCR), renew on a heartbeat only while the value is
still ours, release only if still ours. Validity is judged on this process's own clock: when Redis
cannot confirm a renewal within the TTL the lease counts as lost, so no order goes out.
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
_ACQUIRE_ALL = """
for _, key in ipairs(KEYS) do
  local owner = redis.call('get', key)
  if owner and owner ~= ARGV[1] then return 0 end
end
for _, key in ipairs(KEYS) do redis.call('set', key, ARGV[1], 'PX', ARGV[2]) end
return 1
"""


@dataclass
class SymbolLease:
    symbol: str
    key: str
    held: bool = False
    token: int = 0  # the fencing token of our current tenure
    confirmed_at: float = 0.0  # monotonic time Redis last confirmed it


class LeaseSet:
    """Leases on a set of symbols of one account, kept alive by a heartbeat thread."""

    def __init__(self, client: redis.Redis, account: str, symbols: tuple[str, ...], owner: str, ttl_ms: int, yields: bool = False) -> None:
        """`yields`: this bot gives up the symbols listed in the account's yield set (the primary does,
        so a canary can take a slice; `quantshift bot lease yield`)."""
        self.client, self.owner, self.ttl_ms, self.yields = client, owner, ttl_ms, yields
        self.yield_key = yield_key(account)
        self.yielded: set[str] = set()
        self.leases = {s: SymbolLease(s, f"qs:lease:{account}:{s}") for s in symbols}
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._acquire_all = client.register_script(_ACQUIRE_ALL)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.redis_ok = True
        self.on_acquire: Callable[[], None] | None = None  # called (heartbeat thread) after taking leases

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
                            self._release(keys=[lease.key], args=[self.owner])
                            lease.held = False
                        continue
                    wanted.append(lease)
                    if lease.held:
                        if self._renew(keys=[lease.key], args=[self.owner, self.ttl_ms]):
                            lease.confirmed_at = time.monotonic()
                        else:
                            lease.held = False  # someone else has it now: stop at once
                missing = [lease for lease in wanted if not lease.held]
                if missing and len(missing) == len(wanted):
                    if self._acquire_all(keys=[lease.key for lease in missing], args=[self.owner, self.ttl_ms]):
                        self._took(missing)
                else:
                    for lease in missing:
                        if self.client.set(lease.key, self.owner, nx=True, px=self.ttl_ms):
                            self._took([lease])
            self.redis_ok = True
        except redis.RedisError:
            self.redis_ok = False

    def _took(self, leases: list[SymbolLease]) -> None:
        now = time.monotonic()
        for lease in leases:
            lease.token = int(self.client.incr(lease.key + ":fence"))
            lease.held, lease.confirmed_at = True, now
        if self.on_acquire is not None:
            self.on_acquire()

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
                ok = bool(self._renew(keys=[lease.key], args=[self.owner, self.ttl_ms]))
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
        try:
            return {
                s: (v.decode() if isinstance(v, bytes) else v)
                for s, v in zip(self.leases, self.client.mget([lease.key for lease in self.leases.values()]), strict=True)
            }
        except redis.RedisError:
            return {}

    # --- heartbeat --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            # Waiting for a lease: poll fast so a handover takes milliseconds. Holding: a third of the TTL.
            waiting = any(not lease.held and lease.symbol not in self.yielded for lease in self.leases.values())
            self._stop.wait(0.02 if waiting else self.ttl_ms / 3000)

    def release_all(self) -> None:
        """Stop the heartbeat and hand every lease back (only those still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for lease in self.leases.values():
            with self._lock:
                if lease.held:
                    try:
                        self._release(keys=[lease.key], args=[self.owner])
                    except redis.RedisError:
                        pass  # it expires on its own within the TTL
                    lease.held = False


def yield_key(account: str) -> str:
    """The Redis set of symbols the primary of `account` leaves to others (a canary's slice)."""
    return f"qs:lease:{account}:yielded"
