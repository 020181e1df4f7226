"""The deploy timeline: every release's way through paper, shadow, canary and production, read from the
audit log (quantshift/audit.py), as one self-contained HTML page: an SVG timeline on a dated UTC axis and
two tables. Nothing is fetched and there is no script.

How the records are read. A release enters a stage with its first record there (an override, the deploy
that started, a promotion) and stays until it enters a later stage, its deploy there fails, it is rolled
back there, or another release is deployed there. Lock records are left out. A rollback names the release
it took away (the guard's, and the playbooks' after a failed deploy), or, by hand (playbooks/rollback.yml),
the release it went back to: a release that is not in the stage when its rollback is recorded, and did
not just fail there, came back. When a deployed release is rolled back, the release it replaced runs
again (not in canary: a canary that ends hands its slice back to production). Rollbacks are the guard's
when their `who` is guard@HOST, else the controller's. Overrides say what they overrode (window, soak,
a forced lock release) and the operator's reason.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantshift_bot.errors import UserError

STAGES = ("paper", "shadow", "canary", "production")  # the order of quantshift.soak.STAGES
STAGE_COLORS = {"paper": "#a0aec0", "shadow": "#d9822b", "canary": "#d69e2e", "production": "#2b6cb0"}
MARK_COLORS = {"ok": "#38a169", "failed": "#e53e3e", "override": "#b7791f", "guard": "#805ad5", "controller": "#c53030"}
W, LABELS, RIGHT, TOP, LANE, HEADER, BOTTOM = 960, 96, 40, 8, 24, 22, 46
LAST_TIME = 253_402_300_800  # 10000-01-01 UTC: a `when` past it is not a time a date can show


@dataclass(frozen=True)
class Event:
    """One audit record, as far as the timeline needs it."""

    when: float
    kind: str
    release: str
    stage: str
    outcome: str
    who: str = ""
    host: str = ""
    reason: str = ""

    @property
    def by(self) -> str:
        """Who acted: the guard on a host, or the controller (the playbooks, or an operator)."""
        return "guard" if self.who.startswith("guard@") else "controller"


@dataclass
class Run:
    """A release's stay in one stage."""

    release: str
    stage: str
    start: float
    end: float | None = None  # None: still there at the end of the log
    ended: str = ""  # promoted | replaced | failed | rolled back (guard) | rolled back (controller); "" while open


@dataclass(frozen=True)
class Mark:
    """A point on a release's stage lane: a deploy, a gate, an override or a rollback."""

    when: float
    release: str
    stage: str
    shape: str  # deployed | deploy-failed | gate-ok | gate-failed | override | rollback-guard | rollback-controller
    text: str


@dataclass
class Timeline:
    events: list[Event]  # every record but the locks, oldest first
    described: list[str]  # what each event means, for the table
    releases: list[str]  # in the order they first appear
    runs: list[Run]
    marks: list[Mark]


def event(doc: Any, where: str) -> Event:
    """One audit record checked for the fields the timeline reads; UserError saying what is wrong."""
    if not isinstance(doc, dict):
        raise UserError(f"{where}: not an audit record (a JSON object is expected)")
    missing = [k for k in ("kind", "release", "stage", "outcome", "when") if k not in doc]
    if missing:
        raise UserError(f"{where}: not an audit record (no {', '.join(missing)})")
    when = doc["when"]
    if isinstance(when, bool) or not isinstance(when, int | float) or not 0 <= when < LAST_TIME:
        raise UserError(f"{where}: not an audit record (when must be unix seconds, got {when!r})")
    texts = {k: doc.get(k, "") for k in ("kind", "release", "stage", "outcome", "who", "host", "reason")}
    wrong = [k for k, v in texts.items() if not isinstance(v, str)]
    if wrong:
        raise UserError(f"{where}: not an audit record ({', '.join(wrong)} must be text)")
    return Event(float(when), **texts)


def load(path: Path) -> list[dict[str, Any]]:
    """The records of an audit log file: JSON lines (the log itself, or `quantshift deploy history --export
    FILE`) or a JSON list (`history --json`). UserError with one clear line when it is missing, unreadable
    or not an audit log."""
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such audit log (write one with `quantshift deploy history --export FILE`)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not an audit log (not UTF-8 text)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the audit log ({err.strerror or err.__class__.__name__})") from None
    items: list[tuple[str, Any]] = []
    if content.lstrip().startswith("["):
        try:
            docs = json.loads(content)
        except ValueError as err:
            raise UserError(f"{path}: not an audit log (a JSON list that does not parse: {err})") from None
        items = [(f"{path}: record {n}", doc) for n, doc in enumerate(docs, 1)]
    else:
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((f"{path}:{n}", json.loads(line)))
            except ValueError as err:
                raise UserError(f"{path}:{n}: not an audit record (not JSON: {err})") from None
    for where, doc in items:
        event(doc, where)
    return [doc for _, doc in items]


def write(path: Path, page: str) -> None:
    """Write the page, or one UserError saying why it cannot be written."""
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot write the timeline ({err.strerror or err.__class__.__name__})") from None


def override_parts(reason: str) -> tuple[str, str, str]:
    """(what was overridden, the rule's answer, the operator's reason) of an override's reason, as
    deploy_cli writes it: "window (RULE'S ANSWER): REASON", "soak (...): ...", "deploy lock released by force (...)"."""
    what, _, rest = reason.partition(" (")
    if what in ("window", "soak") and rest:
        depth = 1
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                return what, rest[:i], rest[i + 1 :].removeprefix(":").strip()
    if reason.startswith("deploy lock released by force"):
        return "lock", reason, ""
    return "other", "", reason


def build(records: list[dict[str, Any]]) -> Timeline:
    """Runs and marks per release and stage, from the records (any order)."""
    events = sorted((event(doc, f"record {n}") for n, doc in enumerate(records, 1)), key=lambda e: e.when)
    events = [e for e in events if e.kind != "lock"]
    tl = Timeline(events, [], [], [], [])
    open_runs: dict[tuple[str, str], Run] = {}
    holders: dict[str, list[str]] = {s: [] for s in STAGES}  # per stage, the releases deployed there in turn

    def close(release: str, stage: str, when: float, how: str) -> None:
        run = open_runs.pop((release, stage), None)
        if run is not None:
            run.end, run.ended = when, how

    def enter(release: str, stage: str, when: float) -> None:
        if (release, stage) in open_runs:
            return
        for later in STAGES[STAGES.index(stage) + 1 :]:
            if (release, later) in open_runs:
                return  # back in an earlier stage while still in a later one: the later stay goes on
        for earlier in STAGES[: STAGES.index(stage)]:
            close(release, earlier, when, "promoted")
        run = Run(release, stage, when)
        open_runs[(release, stage)] = run
        tl.runs.append(run)

    def last_run(release: str, stage: str) -> Run | None:
        return next((r for r in reversed(tl.runs) if (r.release, r.stage) == (release, stage)), None)

    for e in events:
        if e.release not in tl.releases and e.release != "-":
            tl.releases.append(e.release)
        if e.stage not in STAGES or e.release == "-":
            tl.described.append(_describe(e, ""))
            continue
        key, held, note = (e.release, e.stage), holders[e.stage], ""
        if e.kind == "rollback":
            previous = last_run(*key)
            if key in open_runs:  # the release is taken away
                close(*key, e.when, f"rolled back ({e.by})")
                if held and held[-1] == e.release:
                    held.pop()
                    if held and e.stage != "canary":  # the release before it runs again
                        enter(held[-1], e.stage, e.when)
                note = "rolled back"
            elif previous is not None and previous.ended == "failed":
                previous.ended = f"failed, rolled back ({e.by})"  # after its failed deploy
                note = "rolled back after the failed deploy"
            else:  # by hand, back to this release
                while held and held[-1] != e.release:
                    close(held.pop(), e.stage, e.when, f"rolled back ({e.by})")
                if not held:
                    held.append(e.release)
                enter(e.release, e.stage, e.when)
                note = "back to this release"
            note = f"rollback by the {e.by} ({e.who}): {note}" + (" (the rollback FAILED)" if e.outcome == "failed" else "")
            tl.marks.append(Mark(e.when, e.release, e.stage, f"rollback-{e.by}", note))
        else:
            enter(*key, e.when)
            if e.kind in ("deploy", "promotion") and e.outcome == "ok":
                if held and held[-1] != e.release:
                    close(held[-1], e.stage, e.when, "replaced")
                if not held or held[-1] != e.release:
                    held.append(e.release)
                tl.marks.append(Mark(e.when, *key, "deployed", f"{e.kind} ok"))
            elif e.kind in ("deploy", "promotion") and e.outcome == "failed":
                close(*key, e.when, "failed")
                tl.marks.append(Mark(e.when, *key, "deploy-failed", f"{e.kind} FAILED: {e.reason}"))
            elif e.kind == "gate":
                shape = "gate-ok" if e.outcome == "ok" else "gate-failed"
                tl.marks.append(Mark(e.when, *key, shape, "gate passed" if e.outcome == "ok" else f"gate FAILED: {e.reason}"))
            elif e.kind == "override":
                what, rule, why = override_parts(e.reason)
                tl.marks.append(Mark(e.when, *key, "override", f"override ({what}): {why or rule}"))
        tl.described.append(_describe(e, note))
    return tl


def _describe(e: Event, rollback: str) -> str:
    if e.kind == "override":
        what, rule, why = override_parts(e.reason)
        return f"override ({what}): {why}" + (f" [the rule said: {rule}]" if rule else "")
    if e.kind == "rollback":
        return rollback or f"rollback by the {e.by}"
    if e.kind == "gate":
        return "gate passed" if e.outcome == "ok" else "gate FAILED"
    if e.kind == "deploy":
        return {"started": "deploy started", "ok": "deployed", "failed": "deploy FAILED"}.get(e.outcome, f"deploy {e.outcome}")
    return f"{e.kind} {e.outcome}"


def duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s"
    if s < 2 * 3600:
        return f"{s // 60} min {s % 60} s" if s < 600 else f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _utc(t: float, seconds: bool = True) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _lanes(tl: Timeline) -> list[tuple[str, str]]:
    touched = {(r.release, r.stage) for r in tl.runs} | {(m.release, m.stage) for m in tl.marks}
    return [(rel, st) for rel in tl.releases for st in STAGES if (rel, st) in touched]


def _marker(shape: str, x: float, y: float, text: str, named: bool = True) -> str:
    tip = f"<title>{html.escape(text)}</title>"
    if shape == "deployed":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#fff" stroke="#2d3748" stroke-width="1.5" class="m">{tip}</circle>'
    if shape in ("gate-ok", "gate-failed"):
        color = MARK_COLORS["ok" if shape == "gate-ok" else "failed"]
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}" stroke="#fff" stroke-width="1" class="m">{tip}</circle>'
    if shape == "override":
        pts = f"{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{MARK_COLORS["override"]}" stroke="#fff" class="m">{tip}</polygon>'
    if shape == "deploy-failed":
        d = f"M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}"
        return f'<path d="{d}" stroke="{MARK_COLORS["failed"]}" stroke-width="2.5" class="m">{tip}</path>'
    by = shape.removeprefix("rollback-")
    pts = f"{x - 6:.1f},{y:.1f} {x + 5:.1f},{y - 6:.1f} {x + 5:.1f},{y + 6:.1f}"
    name = f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle" class="rb" fill="{MARK_COLORS[by]}">{by}</text>' if named else ""
    return f'<polygon points="{pts}" fill="{MARK_COLORS[by]}" class="m">{tip}</polygon>{name}'


def svg(tl: Timeline) -> str:
    """The timeline: a lane per release and stage it reached, its stays as bars, its marks on them."""
    from quantshift_bot.report import time_axis, x_axis_svg

    lanes = _lanes(tl)
    if not lanes:
        return ""
    times = [e.when for e in tl.events if e.stage in STAGES and e.release != "-"]
    lo, hi = min(times), max(times)
    pad = max(1.0, (hi - lo) * 0.03)
    x = time_axis((lo - pad, hi + pad), LABELS, W - RIGHT)
    y_of: dict[tuple[str, str], float] = {}
    out: list[str] = []
    y, previous = float(TOP), ""
    for release, stage in lanes:
        if release != previous:  # a header row with the release's name above its lanes
            out.append(f'<line x1="4" y1="{y:.1f}" x2="{W - RIGHT:.1f}" y2="{y:.1f}" class="sep"/>')
            out.append(f'<text x="6" y="{y + HEADER - 6:.1f}" class="rel">{html.escape(release)}</text>')
            y += HEADER
            previous = release
        y_of[(release, stage)] = y + LANE / 2
        out.append(f'<text x="{LABELS - 8}" y="{y + LANE / 2 + 4:.1f}" text-anchor="end" class="stg">{stage}</text>')
        y += LANE
    bottom = y + 6
    body = [x_axis_svg(x, TOP, bottom), *out]
    for run in tl.runs:
        cy, end = y_of[(run.release, run.stage)], run.end if run.end is not None else hi
        x0, x1 = x.at(run.start), max(x.at(end), x.at(run.start) + 3)
        how = run.ended or "still there at the end of the log"
        tip = f"{run.release} in {run.stage}: {_utc(run.start)} to {_utc(end)} UTC ({duration(end - run.start)}), {how}"
        body.append(
            f'<rect x="{x0:.1f}" y="{cy - 5:.1f}" width="{x1 - x0:.1f}" height="10" rx="2" fill="{STAGE_COLORS[run.stage]}" '
            f'class="run"><title>{html.escape(tip)}</title></rect>'
        )
        if run.end is None:
            body.append(f'<path d="M{x1:.1f},{cy - 6:.1f}L{x1 + 7:.1f},{cy:.1f}L{x1:.1f},{cy + 6:.1f}Z" fill="{STAGE_COLORS[run.stage]}"/>')
        elif run.ended.startswith("failed"):
            body.append(
                f'<line x1="{x1:.1f}" y1="{cy - 8:.1f}" x2="{x1:.1f}" y2="{cy + 8:.1f}" stroke="{MARK_COLORS["failed"]}" stroke-width="2"/>'
            )
    for m in tl.marks:
        body.append(_marker(m.shape, x.at(m.when), y_of[(m.release, m.stage)], f"{_utc(m.when)} UTC: {m.text}"))
    height = bottom + BOTTOM
    caption = f'<text x="6" y="{bottom + 16:.1f}" class="l">time (UTC)</text>'
    return f'<svg viewBox="0 0 {W} {height:.0f}" role="img" aria-label="deploy timeline">{"".join(body)}{caption}</svg>'


def _stages_table(tl: Timeline) -> str:
    rows = []
    for release in tl.releases:
        cells = []
        for stage in STAGES:
            runs = [r for r in tl.runs if (r.release, r.stage) == (release, stage)]
            parts = []
            for r in runs:
                end = r.end if r.end is not None else max(e.when for e in tl.events)
                how = r.ended if r.ended not in ("", "promoted") else ("still there" if not r.ended else "")
                parts.append(f"{duration(end - r.start)}" + (f", {how}" if how else ""))
            marks = [m for m in tl.marks if (m.release, m.stage) == (release, stage)]
            gates = [m for m in marks if m.shape.startswith("gate")]
            overrides = sum(m.shape == "override" for m in marks)
            if gates:
                failed = sum(m.shape == "gate-failed" for m in gates)
                parts.append(f"gates {len(gates) - failed} passed" + (f", {failed} FAILED" if failed else ""))
            if overrides:
                parts.append(f"{overrides} override{'s' if overrides > 1 else ''}")
            cells.append("<br>".join(html.escape(p) for p in parts) or "&mdash;")
        rows.append(f"<tr><th>{html.escape(release)}</th>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
    head = "".join(f"<th>{s}</th>" for s in STAGES)
    return f'<table id="stages"><thead><tr><th>release</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _events_table(tl: Timeline) -> str:
    rows = []
    for e, what in zip(tl.events, tl.described, strict=True):
        cls = ' class="bad"' if e.outcome == "failed" or e.kind == "rollback" else ""
        detail = e.reason if e.kind != "override" else ""
        who = e.who + (" (guard)" if e.by == "guard" else "")
        cells = (_utc(e.when), e.release, e.stage, what, who, e.host, detail)
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("when (UTC)", "release", "stage", "what", "who", "host", "detail"))
    return f'<table id="events"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _legend() -> str:
    items = [
        ("deployed", "deployed"),
        ("gate-ok", "gate passed"),
        ("gate-failed", "gate failed"),
        ("deploy-failed", "deploy failed"),
        ("override", "override"),
        ("rollback-guard", "rollback by the guard"),
        ("rollback-controller", "rollback by the controller"),
    ]
    icons = "".join(f'<span><svg viewBox="-8 -8 16 16" class="icon">{_marker(s, 0, 0, t, named=False)}</svg>{t}</span>' for s, t in items)
    stages = "".join(f'<span><i style="background:{STAGE_COLORS[s]}"></i>{s}</span>' for s in STAGES)
    return f'<p class="legend">{stages}</p><p class="legend">{icons}</p>'


def render(records: list[dict[str, Any]]) -> str:
    """The deploy timeline of these audit records (as audit.jsonl holds them) as one self-contained HTML page."""
    from quantshift_bot.report import CSS

    tl = build(records)
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if tl.events:
        span = f"{len(tl.releases)} release(s), {len(tl.events)} record(s) from {_utc(tl.events[0].when)} to {_utc(tl.events[-1].when)} UTC"
        body = f"{_legend()}\n{svg(tl)}\n<h2>Stages per release</h2>\n{_stages_table(tl)}\n<h2>Records</h2>\n{_events_table(tl)}"
    else:
        span, body = "No deploy records", "<p>The audit log holds no deploy, gate, override or rollback record.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deploy timeline</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#1a202c;padding:0 1rem}}
h1{{font-size:1.4rem}} h2{{font-size:1.1rem;margin-top:2rem}} table{{border-collapse:collapse;width:100%;font-size:13px}}
th,td{{padding:.25rem .5rem;border-bottom:1px solid #e2e8f0;text-align:left;vertical-align:top}} th{{font-weight:600}}
tr.bad td{{background:#fff5f5}} #events td:nth-child(-n+3),#events td:nth-child(5){{white-space:nowrap}} svg{{width:100%;height:auto;margin:1rem 0}} {CSS}
.rel{{font-size:13px;font-weight:600}} .stg{{font-size:11px;fill:#4a5568}} .sep{{stroke:#cbd5e0}} .rb{{font-size:10px;font-weight:600}}
.legend span{{display:inline-flex;align-items:center;margin-right:1rem;font-size:12px}} .legend i{{display:inline-block;width:14px;height:10px;margin-right:.3rem}}
.legend svg.icon{{width:16px;height:16px;margin:0 .3rem 0 0}}
</style></head><body>
<h1>Deploy timeline</h1>
<p class="l">{span}. Made {made}.</p>
{body}
</body></html>
"""


def command(audit_log: Path, out: Path) -> int:
    """`quantshift deploy timeline`: the page of the audit log file `audit_log`, written to `out`."""
    records = load(audit_log)
    write(out, render(records))
    print(f"deploy timeline of {len(records)} audit record(s): {out}")
    return 0
