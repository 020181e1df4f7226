"""The gate every rollout playbook uses: a bot's health and metrics against the environment's thresholds.

Checks (defaults; each configurable per environment): service healthy and not restarting; error rate
<= 5 %; win rate not more than 10 % below production's; max drawdown <= 15 %. The same numbers are
the automatic rollback triggers. A failed gate prints a table of each check and its value.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantshift_bot import monitor

PROGRESS_EVERY_S = 5.0  # a waiting command says how it goes at most this often


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """A long wait's progress on stderr: one line at the start (what it waits for, and the bound), then at
    most one line every PROGRESS_EVERY_S seconds (elapsed, left, the latest look). Plain lines whether or
    not stderr is a terminal: Ansible captures them, and a log reads them the same way."""

    def __init__(self, what: str, bound_s: float, clock: Callable[[], float], write: Callable[[str], None] = to_stderr) -> None:
        self.what, self.bound_s, self.clock, self.write = what, bound_s, clock, write
        self.start = clock()
        self.next = self.start + PROGRESS_EVERY_S
        write(f"{what}: up to {bound_s:g} s")

    def look(self, latest: str) -> None:
        """Report the latest look, unless the last line is less than PROGRESS_EVERY_S old."""
        now = self.clock()
        if now < self.next:
            return
        elapsed = now - self.start
        self.write(f"  {elapsed:.0f} s of {self.bound_s:g} s, {max(0.0, self.bound_s - elapsed):.0f} s left: {latest}")
        self.next = now + PROGRESS_EVERY_S


@dataclass(frozen=True)
class GateThresholds:
    """A new release passes its gate within these (the defaults; each environment's quantshift_gate may
    set its own). The release guard's triggers use the same numbers (quantshift_bot_guard)."""

    max_error_rate: float = 0.05
    max_win_rate_drop: float = 0.10  # absolute: candidate win rate >= production's - 0.10
    max_drawdown: float = 0.15
    min_trades: int = 10  # win rates are compared only when both sides have this many trades
    healthy: tuple[str, ...] = ("ready", "standby")


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    limit: str
    ok: bool


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{'check':<{width}}  {'value':>14}  {'limit':>18}  result"]
        lines += [f"{c.name:<{width}}  {c.value:>14}  {c.limit:>18}  {'ok' if c.ok else 'FAILED'}" for c in self.checks]
        lines.append(f"gate {'PASSED' if self.passed else 'FAILED'}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks]}


def evaluate(candidate: dict[str, Any], production: dict[str, Any] | None, t: GateThresholds, restarts: int | None = None) -> GateResult:
    """`candidate`/`production`: reports from quantshift_bot.monitor.check (health + metrics)."""
    health = candidate.get("health") or {}
    m = candidate.get("metrics") or {}
    status = health.get("status", "unreachable")
    checks = [Check("service healthy", status, " or ".join(t.healthy), status in t.healthy)]
    if restarts is not None:
        checks.append(Check("not restarting", str(restarts), "0 restarts", restarts == 0))
    err = m.get("quantshift_broker_error_ratio", 0.0)
    checks.append(Check("error rate", f"{err:.2%}", f"<= {t.max_error_rate:.0%}", err <= t.max_error_rate))
    # The candidate answers for its own trades (/healthz session, the guard's figure too); the account's
    # journal would blame it for a drawdown an earlier release made. Older releases: the journal's figure.
    session = health.get("session")
    dd = float(session["drawdown"]) if isinstance(session, dict) and "drawdown" in session else m.get("quantshift_max_drawdown_ratio", 0.0)
    checks.append(Check("max drawdown", f"{dd:.2%}", f"<= {t.max_drawdown:.0%}", dd <= t.max_drawdown))
    trades, win = m.get("quantshift_closed_trades", 0.0), m.get("quantshift_win_ratio", 0.0)
    if production is not None:
        pm = production.get("metrics") or {}
        p_trades, p_win = pm.get("quantshift_closed_trades", 0.0), pm.get("quantshift_win_ratio", 0.0)
        if trades >= t.min_trades and p_trades >= t.min_trades:
            checks.append(
                Check(
                    "win rate vs production",
                    f"{win:.1%} vs {p_win:.1%}",
                    f">= {p_win - t.max_win_rate_drop:.1%}",
                    win >= p_win - t.max_win_rate_drop,
                )
            )
        else:
            checks.append(Check("win rate vs production", f"{int(trades)}/{int(p_trades)} trades", f">= {t.min_trades} each", True))
    return GateResult(all(c.ok for c in checks), tuple(checks))


def run(
    url: str,
    production_url: str | None,
    t: GateThresholds,
    restarts: int | None = None,
    observe_s: float = 0.0,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    write: Callable[[str], None] = to_stderr,
) -> GateResult:
    """Judge once, or watch for `observe_s` seconds: the first failing look fails the gate at once
    (the rollback starts without waiting out the window); passing needs every look to pass. A watch
    says how it goes through `write` (stderr): see Progress."""
    deadline = clock() + observe_s
    progress = Progress(f"gate: watching {url} (every look must pass)", observe_s, clock, write) if observe_s > 0 else None
    while True:
        candidate = monitor.check(url, monitor.AlertThresholds())
        production = monitor.check(production_url, monitor.AlertThresholds()) if production_url else None
        result = evaluate(candidate, production, t, restarts)
        if not result.passed or clock() >= deadline:
            return result
        if progress is not None:
            progress.look("every check passes (" + ", ".join(f"{c.name} {c.value}" for c in result.checks) + ")")
        sleep(min(poll_s, max(0.0, deadline - clock())))
