#!/usr/bin/python3
"""The release guard of a bot host: after every switch it watches the new release for a bake period and,
when a rollback trigger fires, hands the bots back to the previous slot itself, with no controller.

Runs with the system Python (stdlib only), independent of any release, as quantshift-guard.service.
  quantshift-guard.py run     [--config /etc/quantshift/guard.json]   the service
  quantshift-guard.py status  [--config ...] [--json]                 what it watches, time left, figures

The handover writes BASE/guard/bake.json at every switch: the release, the slot it runs in, the release
and slot it replaced, when, and the replaced release's figures (the baseline). The guard's own state is
that file: killed, restarted or after a reboot it resumes the bake where it was. It never starts, stops
or changes anything unless a trigger fires during a bake; the bots never depend on it.

Triggers (thresholds in the config, from the role's quantshift_bot_guard):
  restarts   the new slot's unit restarted or failed (a crash loop) more than `max_restarts` times;
  stalled    its /healthz says `stalled` (the trading loop stopped completing ticks) for `stalled_s`;
  error_rate its broker error rate above `max_error_rate`;
  drawdown   the drawdown of its own closed trades above `max_drawdown`;
  win_rate   its win rate more than `max_win_rate_drop` below the baseline's, past `min_trades` trades.
A canary (mode canary) is watched for its whole stage, until its units are stopped on purpose; on a
trigger the guard ends it: production takes the slice back (the account's yield set in the bots' Redis,
the audit Redis URL) and the canary's units stop.
On a trigger: start the old slot (it warms up in standby), stop the new one (it hands its leases over),
wait until the old one trades, record the switch back (current, previous, slots/active), close the bake,
and append the rollback to the environment's audit log in Redis (and a local copy). The webhook (if set)
hears of the trigger when it fires and of the outcome when the old release trades again; both messages
go from a thread, so a slow or dead receiver never delays the hand-back.

Scrape address: the guard also serves every bot's /metrics at one address per bot that does not move at a
handover, whichever slot is active (`scrape` in the config, port 9464 by default):
  GET /metrics/BOT   the active slot's /metrics, forwarded (503 when that slot does not answer: the bot is down;
                     an empty 200 when both slots' units are inactive: stopped on purpose, as a standby after its canary)
  GET /metrics       the guard's own series: quantshift_guard_up, _baking, _rollbacks_total
  GET /status        what runs on this host (`quantshift status` reads every host's): the active slot,
                     current and previous releases, the bake, and each bot's /healthz in either slot
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import quantshift_webhook  # next to this script (the controller's quantshift.webhook, one source)
from quantshift_host import healthz, unit_state

DEFAULT_CONFIG = "/etc/quantshift/guard.json"
FACTS = "/etc/ansible/facts.d/quantshift.fact"  # the bot role's local facts (tasks/facts.yml)
TRIGGERS = ("restarts", "stalled", "error_rate", "drawdown", "win_rate")


def load_config(path):
    with open(path) as fh:
        return json.load(fh)


def bake_path(cfg):
    return os.path.join(cfg["base_dir"], "guard", "bake.json")


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_json(path, doc, mode=0o600):
    """Replace the file by rename: a guard killed mid-write never leaves half a bake behind."""
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def port_of(bot, slot):
    return bot["metrics_port"] + (bot["slot_port_offset"] if slot == "b" else 0)


# --- evaluation ---------------------------------------------------------------------------------------
def figures(cfg, bake):
    """What each bot of the new slot shows now: the inputs of the triggers."""
    out = {}
    for bot in cfg["bots"]:
        unit = f"quantshift-{bot['name']}@{bake['slot']}.service"
        active, sub, restarts = unit_state(unit)
        doc = healthz(port_of(bot, bake["slot"]))
        session = doc.get("session") or {}
        out[bot["name"]] = {
            "unit": f"{active}/{sub}",
            "restarts": restarts - int(bake.get("restarts_at_switch", {}).get(bot["name"], 0)) + (1 if active == "failed" else 0),
            "status": doc.get("status", "unreachable"),
            "release": doc.get("release"),
            "error_rate": float(doc.get("error_rate") or 0.0),
            "trades": int(session.get("trades") or 0),
            "win_rate": float(session.get("win_rate") or 0.0),
            "drawdown": float(session.get("drawdown") or 0.0),
        }
    return out


def evaluate(cfg, bake, now_figures, stalled_since, now):
    """The first trigger that fires, as (trigger, bot, text), or None."""
    t = cfg["thresholds"]
    baseline = bake.get("baseline") or {}
    for name, f in now_figures.items():
        if f["restarts"] > t["max_restarts"]:
            return "restarts", name, f"{f['restarts']} restart(s) or failure since the switch (max {t['max_restarts']})"
        since = stalled_since.get(name)
        if since is not None and now - since >= t["stalled_s"]:
            return "stalled", name, f"trading loop stalled for {now - since:.1f} s (max {t['stalled_s']:g} s)"
        if f["error_rate"] > t["max_error_rate"]:
            return "error_rate", name, f"broker error rate {f['error_rate']:.1%} > {t['max_error_rate']:.1%}"
        if f["drawdown"] > t["max_drawdown"]:
            return "drawdown", name, f"drawdown {f['drawdown']:.1%} > {t['max_drawdown']:.1%}"
        base = (baseline.get(name) or {}).get("win_rate")
        if base is not None and f["trades"] >= t["min_trades"] and f["win_rate"] < float(base) - t["max_win_rate_drop"]:
            return "win_rate", name, f"win rate {f['win_rate']:.1%} vs {float(base):.1%} before (max drop {t['max_win_rate_drop']:.0%})"
    return None


# --- acting -----------------------------------------------------------------------------------------
def systemctl(*args):
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"systemctl {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def hand_back(cfg, bake):
    """Old slot first (standby until the leases come), then the broken one stopped, then wait for trading."""
    old, new = bake["previous_slot"], bake["slot"]
    for bot in cfg["bots"]:
        systemctl("enable", "--now", f"quantshift-{bot['name']}@{old}.service")
    for bot in cfg["bots"]:
        systemctl("disable", "--now", f"quantshift-{bot['name']}@{new}.service")
    deadline = time.monotonic() + cfg["decide_within_s"]
    waiting = {bot["name"]: port_of(bot, old) for bot in cfg["bots"]}
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            doc = healthz(port)
            if doc.get("status") == "ready" and doc.get("release") == bake["previous_release"]:
                del waiting[name]
        time.sleep(0.05)
    base = cfg["base_dir"]
    for link, target in (
        ("previous", f"releases/{bake['release']}"),
        ("current", f"releases/{bake['previous_release']}"),
        ("slots/active", old),
    ):
        tmp = os.path.join(base, link + ".guard")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, os.path.join(base, link))
    update_facts(cfg, bake["previous_release"], bake["release"], old)
    return sorted(waiting)  # bots not trading again in time (reported; the handover itself is done)


def update_facts(cfg, release, previous, slot):
    """The role's local facts say what runs where (the playbooks read them to find production's bots):
    after a hand-back they must name the release and slot that trade now."""
    path = cfg.get("facts_path", FACTS)
    doc = read_json(path)
    if doc is None:
        return
    doc.update(release=release, previous=previous, slot=slot, active_ports={bot["name"]: port_of(bot, slot) for bot in cfg["bots"]})
    try:
        write_json(path, doc, mode=0o644)
    except OSError as err:  # never let bookkeeping undo a hand-back that has happened: say so instead
        log("facts_not_updated", path=path, error=str(err))


def end_canary(cfg, bake):
    """A canary that fails: production takes its slice back (the symbols leave the account's yield set in
    the bots' Redis, as `bot lease reclaim` does), then the canary's units stop and hand their leases over.
    Returns the bots whose slice could not be reclaimed (no Redis): they are stopped all the same, and
    those symbols wait for `quantshift bot lease reclaim` (nothing trades them, nothing is at risk)."""
    unreclaimed = []
    for bot in cfg["bots"]:
        symbols = [s.strip().upper() for s in (bot.get("lease_symbols") or "").split(",") if s.strip()]
        if not symbols or not bot.get("account"):
            continue
        try:
            client = Redis(cfg["audit_redis_url"])
            try:
                client.call("SREM", f"qs:lease:{bot['account']}:yielded", *symbols)
            finally:
                client.close()
        except (OSError, RuntimeError, ValueError, KeyError):
            unreclaimed.append(bot["name"])
    for bot in cfg["bots"]:
        systemctl("disable", "--now", f"quantshift-{bot['name']}@{bake['slot']}.service")
    return unreclaimed


class Redis:
    """Just enough RESP for the audit stream: AUTH, XADD (stdlib only, like the rest of the guard)."""

    def __init__(self, url, timeout=3.0):
        u = urllib.parse.urlparse(url)
        if u.scheme != "redis":
            raise ValueError(f"the guard speaks redis:// only, got {u.scheme}://")
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=timeout)
        self.buf = b""
        if u.password:
            self.call("AUTH", urllib.parse.unquote(u.username or "default"), urllib.parse.unquote(u.password))
        db = (u.path or "/0").lstrip("/") or "0"
        if db != "0":
            self.call("SELECT", db)

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            data = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        line = self._line()
        if line.startswith(b"-"):
            raise RuntimeError(line[1:].decode(errors="replace"))
        if line.startswith(b"$"):
            size = int(line[1:])
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self._fill()
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            return data.decode()
        return line[1:].decode()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def close(self):
        self.sock.close()


def audit(cfg, record):
    """The rollback goes to the environment's shared audit log (Redis) and to a local copy on the host."""
    line = json.dumps(record, sort_keys=True)
    local = os.path.join(cfg["base_dir"], "guard", "audit.jsonl")
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line + "\n")
    if not cfg.get("audit_redis_url"):
        return "local only"
    try:
        client = Redis(cfg["audit_redis_url"])
        try:
            client.call("XADD", "qs:audit:log", "*", "record", line)
        finally:
            client.close()
        return "shared"
    except (OSError, RuntimeError, ValueError) as err:
        return f"local only (the shared log could not be written: {err.__class__.__name__})"


def log(kind, **fields):
    print(json.dumps({"event": kind, "t": round(time.time(), 3), **fields}, default=str), flush=True)


def bake_ended(cfg, bake, now):
    """Why a running bake is over, or None: a release baked for bake_s; a canary is watched for its whole
    stage, until its units were stopped on purpose (inactive, not failed: the play ended the canary)."""
    if bake.get("mode") == "canary":
        states = [unit_state(f"quantshift-{bot['name']}@{bake['slot']}.service")[0] for bot in cfg["bots"]]
        return "stopped" if all(s == "inactive" for s in states) else None
    return "passed" if now - float(bake.get("switched_at", 0)) > cfg["bake_s"] else None


# --- the scrape address ------------------------------------------------------------------------------
ROLLBACKS = [0]  # hand-backs since the guard started (quantshift_guard_rollbacks_total)


def active_slot(cfg):
    """The slot that trades now: slots/active, which every switch (the role's and the guard's) re-points."""
    try:
        return os.readlink(os.path.join(cfg["base_dir"], "slots", "active"))
    except OSError:
        return "a"


def guard_metrics(cfg):
    bake = read_json(bake_path(cfg)) or {}
    baking = 1 if bake.get("release") and not bake.get("outcome") else 0
    return (
        "# HELP quantshift_guard_up 1 while the host's release guard runs\n# TYPE quantshift_guard_up gauge\nquantshift_guard_up 1\n"
        "# HELP quantshift_guard_baking 1 while a bake watches a new release on this host\n"
        f"# TYPE quantshift_guard_baking gauge\nquantshift_guard_baking {baking}\n"
        "# HELP quantshift_guard_rollbacks_total hand-backs the guard made since it started\n"
        f"# TYPE quantshift_guard_rollbacks_total counter\nquantshift_guard_rollbacks_total {ROLLBACKS[0]}\n"
    )


def host_status(cfg):
    base = cfg["base_dir"]

    def link(name):
        try:
            return os.path.basename(os.readlink(os.path.join(base, name)))
        except OSError:
            return None

    active = active_slot(cfg)
    bots = {}
    for bot in cfg["bots"]:
        slots = {}
        for slot in ("a", "b"):
            doc = healthz(port_of(bot, slot))
            if doc:
                slots[slot] = {
                    k: doc.get(k)
                    for k in ("status", "reason", "release", "mode", "account", "strategy", "lease", "last_tick_age_s", "uptime_s")
                }
        bots[bot["name"]] = {"active": active, "slots": slots}
    bake = read_json(bake_path(cfg)) or {}
    if bake.get("release"):
        left = None if bake.get("mode") == "canary" else max(0.0, cfg["bake_s"] - (time.time() - float(bake.get("switched_at", 0))))
        bake = {k: bake.get(k) for k in ("release", "mode", "switched_at", "outcome", "trigger", "reason", "previous_release")} | {
            "left_s": None if bake.get("outcome") else left
        }
    return {
        "host": cfg["host"],
        "stage": cfg["stage"],
        "active": active,
        "current": link("current"),
        "previous": link("previous"),
        "bake": bake or None,
        "bots": bots,
    }


class ScrapeHandler(BaseHTTPRequestHandler):
    server_version = "quantshift-guard"

    def log_message(self, format, *args):
        return

    def do_GET(self):
        cfg = self.server.cfg
        path = self.path.split("?", 1)[0].rstrip("/")
        ports = {bot["name"]: bot for bot in cfg["bots"]}
        if path == "/metrics":
            self.answer(200, guard_metrics(cfg).encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/status":
            self.answer(200, json.dumps(host_status(cfg)).encode(), "application/json")
        elif path.startswith("/metrics/") and path.removeprefix("/metrics/") in ports:
            port = port_of(ports[path.removeprefix("/metrics/")], active_slot(cfg))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    self.answer(200, resp.read(), resp.headers.get("Content-Type", "text/plain; version=0.0.4"))
            except (urllib.error.URLError, OSError) as err:
                name = path.removeprefix("/metrics/")
                if all(unit_state(f"quantshift-{name}@{slot}.service")[0] == "inactive" for slot in ("a", "b")):
                    # Stopped on purpose (a standby after its canary ended): nothing runs, nothing is down.
                    self.answer(200, f"# {name}: no slot runs on this host (stopped on purpose)\n".encode(), "text/plain; version=0.0.4")
                else:
                    self.answer(503, f"the active slot (port {port}) does not answer: {err}\n".encode(), "text/plain")
        else:
            names = ", ".join(f"/metrics/{name}" for name in sorted(ports))
            self.answer(404, f"not found; this host serves /status, /metrics (the guard) and {names}\n".encode(), "text/plain")

    def answer(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_scrapes(cfg):
    """The stable scrape address, in a thread: a slow scrape never delays the guard's looks."""
    scrape = cfg.get("scrape") or {}
    if not scrape.get("port"):
        return None
    server = ThreadingHTTPServer((scrape.get("host", "0.0.0.0"), int(scrape["port"])), ScrapeHandler)
    server.daemon_threads = True
    server.cfg = cfg
    threading.Thread(target=server.serve_forever, name="scrape", daemon=True).start()
    log("scrape_address", port=int(scrape["port"]), bots=[bot["name"] for bot in cfg["bots"]])
    return server


def run(cfg):
    log("guard_started", host=cfg["host"], stage=cfg["stage"], bake_s=cfg["bake_s"])
    serve_scrapes(cfg)
    stalled_since = {}
    watching = None
    while True:
        bake = read_json(bake_path(cfg))
        now = time.time()
        ended = bake_ended(cfg, bake, now) if bake and not bake.get("outcome") else None
        if ended:
            bake["outcome"], bake["ended_at"] = ended, now
            write_json(bake_path(cfg), bake)
            log("bake_" + ended, release=bake["release"])
        if not bake or bake.get("outcome"):
            watching = None
            time.sleep(cfg["interval_s"])
            continue
        if watching != (bake["release"], bake["switched_at"]):
            watching = (bake["release"], bake["switched_at"])
            stalled_since = {}
            log("watching", release=bake["release"], since=bake["switched_at"], left_s=round(cfg["bake_s"] - (now - bake["switched_at"])))
        now_figures = figures(cfg, bake)
        for name, f in now_figures.items():
            if f["status"] == "stalled":
                stalled_since.setdefault(name, now)
            else:
                stalled_since.pop(name, None)
        bake["last_look"] = {"at": now, "figures": now_figures}
        fired = evaluate(cfg, bake, now_figures, stalled_since, now)
        if fired is None:
            write_json(bake_path(cfg), bake)
            time.sleep(cfg["interval_s"])
            continue
        trigger, bot, text = fired
        log("trigger", trigger=trigger, bot=bot, reason=text, release=bake["release"])
        began = time.monotonic()
        canary = bake.get("mode") == "canary"
        target = "production takes the canary's slice back" if canary else f"handing back to {bake['previous_release']}"
        notify(cfg, {**rollback_record(cfg, bake, f"guard: {trigger} ({bot}: {text}); {target}"), "outcome": "started"})
        late = end_canary(cfg, bake) if canary else hand_back(cfg, bake)
        took = round(time.monotonic() - began, 3)
        ROLLBACKS[0] += 1
        bake.update(outcome="rolled_back", trigger=trigger, reason=f"{bot}: {text}", ended_at=time.time(), handback_s=took, not_ready=late)
        write_json(bake_path(cfg), bake)
        if canary:
            outcome = (
                "canary stopped, production trades its slice again" if not late else f"canary stopped; not reclaimed: {', '.join(late)}"
            )
        else:
            outcome = (
                f"{bake['previous_release']} trades again" if not late else f"{bake['previous_release']} not trading yet: {', '.join(late)}"
            )
        record = rollback_record(cfg, bake, f"guard: {trigger} ({bot}: {text}); {outcome}")
        record.update(
            outcome="ok" if not late else "failed", extra={"figures": now_figures, "baseline": bake.get("baseline"), "handback_s": took}
        )
        where = audit(cfg, record)
        notify(cfg, record)
        log("rolled_back", release=bake["release"], to=bake["previous_release"], trigger=trigger, handback_s=took, audit=where)


def rollback_record(cfg, bake, reason):
    return {
        "kind": "rollback",
        "release": bake["release"],
        "stage": cfg["stage"],
        "outcome": "ok",
        "host": cfg["host"],
        "reason": reason,
        "who": f"guard@{cfg['host']}",
        "when": time.time(),
        "extra": {},
    }


def notify(cfg, record):
    """To the webhook from a thread: returns at once; the journal says whether it arrived."""
    try:
        hook = quantshift_webhook.check(cfg.get("webhook") or {}, allow_http=bool(cfg.get("lab")))
    except ValueError as err:
        log("webhook_failed", why=str(err))
        return
    if hook:
        outcome = record["outcome"]
        quantshift_webhook.in_thread(hook, record, lambda why: log("webhook_failed" if why else "notified", why=why, outcome=outcome))


def status(cfg, as_json):
    bake = read_json(bake_path(cfg)) or {}
    now = time.time()
    left = max(0.0, cfg["bake_s"] - (now - float(bake.get("switched_at", now)))) if bake and not bake.get("outcome") else 0.0
    whole_stage = bake.get("mode") == "canary" and not bake.get("outcome")
    doc = {
        "host": cfg["host"],
        "stage": cfg["stage"],
        "release": bake.get("release"),  # of the last bake, watched or ended
        "watching": bake.get("release") if bake and not bake.get("outcome") else None,
        "previous": bake.get("previous_release"),
        "bake_left_s": None if whole_stage else round(left, 1),  # None: a canary, watched until it ends
        "mode": bake.get("mode"),
        "outcome": bake.get("outcome"),
        "reason": bake.get("reason"),
        "thresholds": cfg["thresholds"],
        "baseline": bake.get("baseline"),
        "figures": (bake.get("last_look") or {}).get("figures"),
    }
    if as_json:
        print(json.dumps(doc, indent=1, sort_keys=True))
        return
    print(
        f"{cfg['host']} ({cfg['stage']}): "
        + (
            (
                f"watching the canary {doc['watching']} for its whole stage"
                if whole_stage
                else f"watching {doc['watching']} (replaced {doc['previous']}), {left:.0f} s of bake left"
            )
            if doc["watching"]
            else f"nothing in bake (last: {bake.get('release', '-')} {bake.get('outcome', '')})"
        )
    )
    if doc["reason"]:
        print(f"  rolled back: {doc['reason']}")
    t = cfg["thresholds"]
    for name, f in (doc["figures"] or {}).items():
        print(
            f"  {name}: {f['status']}, restarts {f['restarts']}/{t['max_restarts']}, error rate {f['error_rate']:.1%}/{t['max_error_rate']:.0%}, "
            f"drawdown {f['drawdown']:.1%}/{t['max_drawdown']:.0%}, win rate {f['win_rate']:.1%} over {f['trades']} trade(s)"
        )


def baseline(cfg, slot):
    """The figures of the release about to be replaced (slot `slot`): what the new one is judged against."""
    out = {}
    for bot in cfg["bots"]:
        doc = healthz(port_of(bot, slot))
        if doc.get("session") is not None:
            out[bot["name"]] = {"release": doc.get("release"), **doc["session"]}
    return out


def switched(cfg, a):
    """The handover calls this at every switch: a new bake starts now."""
    restarts = {bot["name"]: unit_state(f"quantshift-{bot['name']}@{a.slot}.service")[2] for bot in cfg["bots"]}
    bake = {
        "release": a.release,
        "slot": a.slot,
        "mode": a.mode or "live",
        "previous_release": a.previous_release or "",
        "previous_slot": a.previous_slot or "",
        "switched_at": time.time(),
        "restarts_at_switch": restarts,
        "baseline": json.loads(a.baseline or "{}"),
    }
    write_json(bake_path(cfg), bake)
    print(json.dumps({"bake": a.release, "bake_s": cfg["bake_s"]}))


def main():
    p = argparse.ArgumentParser(prog="quantshift-guard")
    p.add_argument("action", choices=("run", "status", "baseline", "switched"))
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true")
    p.add_argument("--slot", help="baseline: the slot being replaced; switched: the new slot")
    p.add_argument("--release", help="switched: the new release")
    p.add_argument("--previous-release", help="switched: the release it replaced")
    p.add_argument("--previous-slot", help="switched: the slot it replaced")
    p.add_argument("--baseline", help="switched: the replaced release's figures (JSON from `baseline`)")
    p.add_argument("--mode", help="switched: the new slot's mode (a canary is watched for its whole stage)")
    a = p.parse_args()
    try:
        cfg = load_config(a.config)
    except (OSError, ValueError) as err:
        sys.exit(f"quantshift-guard: cannot read {a.config}: {err}")
    os.makedirs(os.path.dirname(bake_path(cfg)), mode=0o700, exist_ok=True)
    if a.action == "status":
        status(cfg, a.json)
    elif a.action == "baseline":
        print(json.dumps(baseline(cfg, a.slot)))
    elif a.action == "switched":
        if not (a.slot and a.release and (a.mode == "canary" or (a.previous_release and a.previous_slot))):
            sys.exit(
                "quantshift-guard switched: --slot, --release, --previous-release and --previous-slot are required (a canary needs no previous)"
            )
        switched(cfg, a)
    else:
        run(cfg)


if __name__ == "__main__":
    main()
