#!/usr/bin/python3
"""Wait until a bot's /healthz reports an expected status on an expected release; fail fast on a crash.

Runs on the bot host with the system Python (stdlib only), never with the release under test.
Exit 0 with the last /healthz document on stdout; exit 1 with the reason on stderr when the unit
crashed or restarted, its trading loop stalled (it stopped completing ticks: a hang, or decisions far
slower than the tick), it stayed degraded past the grace period, or the time ran out.
"""

import argparse
import json
import sys
import time

import quantshift_host  # next to this script
from quantshift_host import healthz


def unit_state(unit):
    """(state, restarts): state is `failed` or `auto-restart` (it died and systemd waits to restart it)
    as soon as the process is gone, without waiting out RestartSec for the restart count to move."""
    active, sub, restarts = quantshift_host.unit_state(unit)
    return (sub if sub == "auto-restart" else active), restarts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unit", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--release", required=True)
    p.add_argument("--statuses", required=True, help="comma-separated")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--degraded-grace", type=float, default=5, help="seconds degraded before it counts as failed")
    a = p.parse_args()
    statuses = set(a.statuses.split(","))
    began = time.monotonic()
    _, restarts0 = unit_state(a.unit)
    degraded_since = None
    doc = {}
    while time.monotonic() - began < a.timeout:
        state, restarts = unit_state(a.unit)
        if state in ("failed", "auto-restart") or restarts > restarts0:
            sys.exit(f"{a.unit} crashed ({state}, {restarts - restarts0} restart(s)); last /healthz: {json.dumps(doc)}")
        doc = healthz(a.port)
        if doc.get("status") in statuses and doc.get("release") == a.release:
            print(json.dumps({"unit": a.unit, "waited_s": round(time.monotonic() - began, 3), **doc}))
            return
        if doc.get("status") == "stalled" and doc.get("release") == a.release:
            sys.exit(f"{a.unit} stalled: {doc.get('reason')}")
        if doc.get("status") == "degraded" and doc.get("release") == a.release:
            degraded_since = degraded_since or time.monotonic()
            if time.monotonic() - degraded_since > a.degraded_grace:
                sys.exit(f"{a.unit} degraded for {a.degraded_grace:g} s: {doc.get('reason')}")
        else:
            degraded_since = None
        time.sleep(a.interval)
    sys.exit(f"{a.unit}: no {'/'.join(sorted(statuses))} on release {a.release} within {a.timeout:g} s; last /healthz: {json.dumps(doc)}")


if __name__ == "__main__":
    main()
