"""What an operator sees: the compare report and the deploy timeline, rendered by a real headless Chromium
(no script or console error, the charts painted with labelled axes), the axis ticks they use, and how the
timeline reads the audit log."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from quantshift import timeline
from quantshift_bot import compare, report
from quantshift_bot.errors import UserError
from quantshift_bot.models import Trade

CHROMIUM = Path("/usr/bin/chromium")
UTC = dt.UTC


def at(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


# --- axis ticks ---------------------------------------------------------------------------------------


def _evenly_spaced(ticks: list[report.Tick]) -> float:
    steps = {round(b.at - a.at, 6) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1, steps
    return steps.pop()


def test_time_ticks_for_a_span_of_minutes() -> None:
    start = at(2026, 11, 24, 21, 47, 13)
    ticks = report.time_ticks(start, start + 5 * 60)
    assert 4 <= len(ticks) <= 9
    assert all(start <= t.at <= start + 300 and t.at % 60 == 0 for t in ticks)  # whole minutes inside the span
    assert _evenly_spaced(ticks) == 60
    assert [t.label for t in ticks] == ["21:48", "21:49", "21:50", "21:51", "21:52"]
    assert [t.detail for t in ticks] == ["2026-11-24", "", "", "", ""]  # the date once


def test_time_ticks_for_seconds_show_seconds() -> None:
    start = at(2026, 11, 24, 9, 30, 2)
    ticks = report.time_ticks(start, start + 40)
    assert _evenly_spaced(ticks) in (5, 10)
    for t in ticks:
        assert t.label == dt.datetime.fromtimestamp(t.at, UTC).strftime("%H:%M:%S")


def test_time_ticks_for_hours_across_midnight_date_the_new_day() -> None:
    start = at(2026, 11, 24, 21, 47, 13)
    ticks = report.time_ticks(start, start + 14 * 3600)
    step = _evenly_spaced(ticks)
    assert step % 3600 == 0 and 4 <= len(ticks) <= 9
    for t in ticks:
        when = dt.datetime.fromtimestamp(t.at, UTC)
        assert t.label == when.strftime("%H:%M") and when.minute == 0 and when.hour % (step // 3600) == 0
    midnight = next(t for t in ticks if t.at == at(2026, 11, 25, 0, 0, 0))
    assert midnight.label == "00:00" and midnight.detail == "2026-11-25"
    assert ticks[0].detail == "2026-11-24"
    assert all(not t.detail for t in ticks[1:] if t is not midnight)


def test_time_ticks_for_days_fall_on_midnight_and_name_the_day() -> None:
    start = at(2026, 11, 24, 21, 47, 13)
    ticks = report.time_ticks(start, start + 5 * 86400)
    assert _evenly_spaced(ticks) == 86400 and len(ticks) == 5
    assert all(t.at % 86400 == 0 for t in ticks)
    assert [t.label for t in ticks] == ["Nov 25", "Nov 26", "Nov 27", "Nov 28", "Nov 29"]
    assert ticks[0].detail == "2026"


def test_time_ticks_for_weeks_fall_on_mondays_and_months_on_the_first() -> None:
    start = at(2026, 11, 24, 21, 47, 13)
    weeks = report.time_ticks(start, start + 60 * 86400)
    assert _evenly_spaced(weeks) % (7 * 86400) == 0 and len(weeks) >= 3
    assert all(dt.datetime.fromtimestamp(t.at, UTC).weekday() == 0 for t in weeks)
    assert any(t.detail == "2027" for t in weeks)  # the year where it changes
    months = report.time_ticks(start, start + 200 * 86400)
    assert all(dt.datetime.fromtimestamp(t.at, UTC).day == 1 for t in months) and len(months) >= 3


@pytest.mark.parametrize("span", [30, 300, 3600, 6 * 3600, 86400, 3 * 86400, 10 * 86400, 20 * 86400, 45 * 86400])
def test_time_ticks_fit_their_span(span: int) -> None:
    start = at(2026, 11, 24, 13, 7, 41)
    ticks = report.time_ticks(start, start + span)
    assert 2 <= len(ticks) <= 9, [t.label for t in ticks]
    assert all(start <= t.at <= start + span for t in ticks)
    dated, day = [], ""
    for t in ticks:  # a label with the date (or year) last shown before it: no two ticks read the same
        day = t.detail or day
        dated.append((day, t.label))
    assert ticks[0].detail and len(set(dated)) == len(ticks), dated
    _evenly_spaced(ticks)


@pytest.mark.parametrize(
    ("lo", "hi", "percent"),
    [(98_234.5, 103_456.7, False), (-0.0734, 0.0, True), (-0.031, 0.042, True), (0.5, 0.52, False), (3.0, 3.0, False)],
)
def test_nice_ticks_cover_the_values_with_round_steps(lo: float, hi: float, percent: bool) -> None:
    ticks = report.nice_ticks(lo, hi, percent=percent)
    assert 3 <= len(ticks) <= 7
    assert ticks[0].at <= lo and ticks[-1].at >= hi
    step = _evenly_spaced(ticks)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), step
    for t in ticks:  # the label says the value
        number = float(t.label.replace(",", "").rstrip("%")) / (100 if percent else 1)
        assert math.isclose(number, t.at, abs_tol=step * 1e-6)
        assert t.label.endswith("%") == percent


def test_nice_ticks_for_counts_are_whole_numbers() -> None:
    for top in (1, 3, 7, 37):
        ticks = report.nice_ticks(0, top, integer=True)
        assert ticks[0].at == 0 and ticks[-1].at >= top
        assert all(t.at == int(t.at) and t.label == f"{int(t.at):,}" for t in ticks)


# --- synthetic data -----------------------------------------------------------------------------------

START = at(2026, 11, 23, 14, 30, 0)  # production trades from here on; the shadow starts a day later


def trades(n: int, first: float, seed: int, every: float = 1500.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        closed = first + i * every + rng.uniform(0, 300)
        entry = 100.0 + rng.uniform(-5, 5)
        t = Trade("AAPL" if i % 3 else "MSFT", 10, entry, entry * (1 + rng.gauss(0.0015, 0.01)), closed - 900, closed, "synthetic")
        out.append(
            {"symbol": t.symbol, "qty": t.qty, "entry_price": t.entry_price, "exit_price": t.exit_price}
            | {"opened_at": t.opened_at, "closed_at": t.closed_at, "pnl": t.pnl, "ret": t.ret}
        )
    return out


def orders_of(trade_docs: list[dict[str, Any]], jitter: float) -> list[dict[str, Any]]:
    out = []
    for t in trade_docs:
        out.append({"symbol": t["symbol"], "side": "buy", "time": t["opened_at"] + jitter})
        out.append({"symbol": t["symbol"], "side": "sell", "time": t["closed_at"] + jitter})
    return out


def comparison() -> compare.Comparison:
    production = trades(150, START, seed=11)
    shadow = trades(100, START + 86400 + 900, seed=12)  # nothing opened before it started
    prod_orders = orders_of(production, 0.0)
    shadow_orders = [o | {"time": o["time"] + 2.0} for o in prod_orders if o["time"] >= START + 86400]  # the same decisions, 2 s later
    return compare.compare(shadow, production, compare.Settings(), shadow_orders, prod_orders)


PRIMARY, STANDBY, PAPER = "quantshift-primary", "quantshift-standby", "quantshift-paper"
A, B, C, D, E = "2026.11.16-1", "2026.11.17-1", "2026.11.23-1", "2026.11.24-1", "2026.11.24-2"
T0 = at(2026, 11, 16, 21, 30, 0)


def audit_records() -> list[dict[str, Any]]:
    """A week and a half of an environment's audit log, as quantshift.audit and the guard write it."""
    out: list[dict[str, Any]] = []

    def rec(hours: float, kind: str, release: str, stage: str, outcome: str, reason: str = "", host: str = "", who: str = "ops") -> None:
        out.append(
            {"kind": kind, "release": release, "stage": stage, "outcome": outcome, "reason": reason, "host": host}
            | {"who": who, "when": T0 + hours * 3600, "extra": {}}
        )

    def deploy(hours: float, release: str, stage: str, host: str, gates: int = 1) -> None:
        rec(hours, "lock", "-", stage, "ok", f"acquired by {stage}-{release}")
        rec(hours + 0.001, "deploy", release, stage, "started", f"run {stage}-{release}")
        for k in range(gates):
            rec(hours + 0.1 + k * 0.01, "gate", release, stage, "ok", host=host)
        rec(hours + 0.12, "deploy", release, stage, "ok", host=host)

    rec(
        -0.01,
        "override",
        A,
        "production",
        "ok",
        f"soak ({A} (high) may not go to production yet: paper: never passed): the lab starts empty",
    )
    deploy(0, A, "production", PRIMARY)
    deploy(20, B, "paper", PAPER)
    deploy(44, B, "shadow", STANDBY, gates=2)
    deploy(5 * 24, B, "canary", STANDBY)
    rec(7 * 24 - 0.01, "override", B, "production", "ok", "window (outside the deployment window: opens at 22:00 UTC): fix before the open")
    deploy(7 * 24, B, "production", PRIMARY)
    rec(7 * 24 + 2, "override", C, "production", "ok", f"soak ({C} (high) may not go to production yet: paper: never passed): forced")
    rec(7 * 24 + 2.01, "deploy", C, "production", "started", f"run production-{C}")
    rec(7 * 24 + 2.2, "deploy", C, "production", "failed", "Fail the handover: quantshift-equity@a.service crashed", PRIMARY)
    rec(7 * 24 + 2.21, "rollback", C, "production", "ok", f"back to {B}, which trades again", PRIMARY)
    rec(8 * 24 - 0.01, "override", D, "production", "ok", f"soak ({D} (high) may not go to production yet: canary: never passed): hotfix")
    deploy(8 * 24, D, "production", PRIMARY)
    rec(
        8 * 24 + 3,
        "rollback",
        D,
        "production",
        "ok",
        f"guard: error_rate (equity: 7.50% > 5%); {B} trades again",
        PRIMARY,
        "guard@" + PRIMARY,
    )
    rec(9 * 24, "deploy", E, "canary", "started", f"run canary-{E}")
    rec(9 * 24 + 0.1, "gate", E, "canary", "failed", "error rate 9.1%", STANDBY)
    rec(9 * 24 + 0.11, "deploy", E, "canary", "failed", "Gate the canary", STANDBY)
    rec(9 * 24 + 0.12, "rollback", E, "canary", "ok", "canary stopped; production trades its slice again", STANDBY)
    return out


# --- the timeline's reading of the audit log ----------------------------------------------------------


def runs_of(tl: timeline.Timeline, release: str) -> list[tuple[str, str]]:
    return [(r.stage, r.ended) for r in tl.runs if r.release == release]


def test_timeline_follows_each_release_through_its_stages() -> None:
    records = audit_records()
    random.Random(3).shuffle(records)  # the order of the file does not matter, `when` does
    tl = timeline.build(records)
    assert tl.releases == [A, B, C, D, E]
    assert runs_of(tl, B) == [
        ("paper", "promoted"),
        ("shadow", "promoted"),
        ("canary", "promoted"),
        ("production", "replaced"),  # by D, deployed
        ("production", ""),  # back when the guard rolled D back, still there at the end
    ]
    assert runs_of(tl, A) == [("production", "replaced")]
    assert runs_of(tl, C) == [("production", "failed, rolled back (controller)")]  # C never replaced B
    assert runs_of(tl, D) == [("production", "rolled back (guard)")]
    assert runs_of(tl, E) == [("canary", "failed, rolled back (controller)")]
    back = [r for r in tl.runs if r.release == B and r.stage == "production"][1]
    assert back.start == T0 + (8 * 24 + 3) * 3600  # from the guard's rollback on
    shapes = [(m.release, m.shape) for m in tl.marks]
    assert (D, "rollback-guard") in shapes and (C, "rollback-controller") in shapes and (E, "gate-failed") in shapes
    assert shapes.count((B, "gate-ok")) == 5  # paper 1, shadow 2, canary 1, production 1
    overrides = [m.text for m in tl.marks if m.shape == "override"]
    assert overrides == [
        "override (soak): the lab starts empty",
        "override (window): fix before the open",
        "override (soak): forced",
        "override (soak): hotfix",
    ]
    assert len(tl.events) == len(tl.described) == sum(r["kind"] != "lock" for r in records)


def test_a_rollback_by_hand_names_the_release_it_went_back_to() -> None:
    records = [
        {"kind": "deploy", "release": "r1", "stage": "production", "outcome": "ok", "when": 100.0},
        {"kind": "deploy", "release": "r2", "stage": "production", "outcome": "ok", "when": 200.0},
        {"kind": "rollback", "release": "r1", "stage": "production", "outcome": "ok", "when": 300.0, "reason": "from r2 by hand"},
    ]
    tl = timeline.build(records)
    assert runs_of(tl, "r1") == [("production", "replaced"), ("production", "")]
    assert runs_of(tl, "r2") == [("production", "rolled back (controller)")]


def test_override_reasons_are_split_into_what_the_rule_said_and_why() -> None:
    what, rule, why = timeline.override_parts("soak (x (high) may not go to production yet: paper: never passed): the lab (re)starts")
    assert (what, why) == ("soak", "the lab (re)starts") and rule.startswith("x (high)") and rule.endswith("never passed")
    assert timeline.override_parts("deploy lock released by force (held by {'owner': 'a'})")[0] == "lock"
    assert timeline.override_parts("something else") == ("other", "", "something else")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such audit log"),
        ('{"kind": "deploy"}\n', ":1: not an audit record (no release, stage, outcome, when)"),
        (
            '{"kind": "deploy", "release": "r", "stage": "paper", "outcome": "ok", "when": 1}\nnot json\n',
            ":2: not an audit record (not JSON",
        ),
        ('{"kind": "deploy", "release": "r", "stage": "paper", "outcome": "ok", "when": "noon"}\n', "when must be unix seconds"),
        ('[{"kind": "gate"}]', "record 1: not an audit record"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_a_bad_audit_file_is_one_clear_error(tmp_path: Path, content: str | bytes | None, expected: str) -> None:
    path = tmp_path / "audit.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as caught:
        timeline.load(path)
    assert expected in str(caught.value) and str(path) in str(caught.value)


def test_the_loader_reads_json_lines_and_a_json_list(tmp_path: Path) -> None:
    records = audit_records()
    lines, listed = tmp_path / "audit.jsonl", tmp_path / "history.json"
    lines.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    listed.write_text(json.dumps(records, indent=2))
    assert timeline.load(lines) == records == timeline.load(listed)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantshift", "deploy", "timeline", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_deploy_timeline_command_writes_the_page_or_says_why_not(tmp_path: Path) -> None:
    log, out = tmp_path / "audit.jsonl", tmp_path / "timeline.html"
    log.write_text("".join(json.dumps(r) + "\n" for r in audit_records()))
    ok = _cli("--audit-log", str(log), "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert out.read_text().startswith("<!doctype html>") and B in out.read_text()
    for bad_log, bad_out in ((tmp_path / "missing.jsonl", out), (tmp_path, out), (log, tmp_path / "no" / "dir.html")):
        proc = _cli("--audit-log", str(bad_log), "--out", str(bad_out))
        assert proc.returncode == 2  # a file named on the command line that cannot serve: a usage error
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("quantshift"), proc.stderr
        assert "Traceback" not in proc.stderr
    log.write_text('{"kind": "deploy"}\n')
    proc = _cli("--audit-log", str(log), "--out", str(out))
    assert proc.returncode == 1 and "not an audit record" in proc.stderr and "Traceback" not in proc.stderr


# --- in a real browser --------------------------------------------------------------------------------


@dataclass
class Rendered:
    dom: str
    console: list[str]  # what the page wrote to the console (any script error lands here)
    png: bytes


def chromium(page: Path, width: int, height: int) -> Rendered:
    """Load `page` in headless Chromium with a throwaway profile: the DOM after loading, console
    messages, and a screenshot of the first `width` x `height` pixels."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    profile = Path(tempfile.mkdtemp(prefix="qs-chromium-"))
    shot = profile / "shot.png"
    argv = [
        str(CHROMIUM),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
        "--dump-dom",
        page.as_uri(),
    ]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            dom, log = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group is ours alone (start_new_session): Chromium and its helpers
            proc.communicate()
            pytest.fail(f"chromium did not finish loading {page.name} within 30 s")
        assert proc.returncode == 0, log[-2000:]
        assert shot.exists(), f"no screenshot; chromium said: {log[-2000:]}"
        console = [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        return Rendered(dom, console, shot.read_bytes())
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA PNG (what Chromium writes), with the stdlib."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(png):
        size, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    raw, stride = zlib.decompress(b"".join(idat)), width * channels
    previous, out = bytearray(stride), []
    for y in range(height):  # undo each row's filter (PNG specification, section 9)
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 255
        elif kind == 2:
            line = bytearray((x + b) & 255 for x, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - channels] if i >= channels else 0) + previous[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a, b = (line[i - channels] if i >= channels else 0), previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += zip(line[0::channels], line[1::channels], line[2::channels], strict=True)
        previous = line
    return width, height, out


def near(pixel: tuple[int, int, int], color: str, tolerance: int = 24) -> bool:
    rgb = tuple(int(color[k : k + 2], 16) for k in (1, 3, 5))
    return all(abs(p - q) <= tolerance for p, q in zip(pixel, rgb, strict=True))


def painted(png: bytes, colors: list[str]) -> dict[str, int]:
    """How many pixels of the screenshot show each of `colors`; fails on a blank (near single-colour) image."""
    width, height, px = pixels(png)
    assert len(px) == width * height
    counts = Counter(px)
    (_, background), *_ = counts.most_common(1)
    assert len(counts) > 50, f"the screenshot is blank or nearly ({len(counts)} colours)"
    assert len(px) - background > len(px) * 0.02, "almost nothing drawn on the background"
    return {c: sum(n for p, n in counts.items() if near(p, c)) for c in colors}


@dataclass
class Svg:
    x_labels: list[str] = field(default_factory=list)
    x_details: list[str] = field(default_factory=list)
    y_labels: list[str] = field(default_factory=list)
    shapes: int = 0


class _Charts(HTMLParser):
    """The <svg> elements of a DOM with their tick labels and drawn shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[Svg] = []
        self.depth = 0
        self.text_class: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.depth += 1
            if self.depth == 1:
                self.svgs.append(Svg())
        elif self.depth and tag == "text":
            self.text_class = dict(attrs).get("class")
        elif self.depth and tag in ("path", "rect", "circle", "polygon"):
            self.svgs[-1].shapes += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.depth -= 1
        elif tag == "text":
            self.text_class = None

    def handle_data(self, data: str) -> None:
        where = {"tx": "x_labels", "txd": "x_details", "ty": "y_labels"}.get(self.text_class or "")
        if self.depth and where:
            getattr(self.svgs[-1], where).append(data.strip())


def charts(dom: str) -> list[Svg]:
    parser = _Charts()
    parser.feed(dom)
    return parser.svgs


def number(label: str) -> float:
    return float(label.replace(",", "").rstrip("%")) / (100 if label.endswith("%") else 1)


def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The check the pages below rely on: a page whose script fails is seen to fail."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><title>x</title><svg><text>a</text></svg><script>console.error('seen'); notDefined();</script>")
    rendered = chromium(page, 400, 300)
    assert any("seen" in line for line in rendered.console) and any("notDefined" in line for line in rendered.console)


def test_compare_report_renders_in_chromium(tmp_path: Path) -> None:
    result = comparison()
    assert result.agreement == 1.0 and result.overlap is not None  # same decisions while both ran
    page = tmp_path / "report.html"
    page.write_text(report.render(result))
    rendered = chromium(page, 1000, 1800)
    assert rendered.console == []
    assert 'class="verdict' in rendered.dom and 'id="agreement"' in rendered.dom and "100.0%" in rendered.dom
    found = charts(rendered.dom)
    assert len(found) == 3
    for svg in found:
        assert len(svg.x_labels) >= 3 and len(svg.y_labels) >= 3 and svg.shapes >= 2
    equity, drawdown, histogram = found
    days = [dt.datetime.fromtimestamp(t, UTC).date() for side in (result.shadow, result.production) for t, _ in side.equity_curve]
    assert equity.x_details and all(min(days) <= dt.date.fromisoformat(d) <= max(days) for d in equity.x_details)  # dated
    assert all(re.fullmatch(r"\d\d:\d\d|[A-Z][a-z]{2} \d{1,2}", label) for label in equity.x_labels), equity.x_labels
    levels = [v for side in (result.shadow, result.production) for _, v in side.equity_curve]
    ys = [number(label) for label in equity.y_labels]
    assert min(ys) <= min(levels) and max(ys) >= max(levels) and len(set(ys)) == len(ys)
    assert all(label.endswith("%") for label in drawdown.y_labels + histogram.x_labels)
    assert number(drawdown.y_labels[-1]) == 0.0  # drawdown is drawn down from 0
    colors = painted(rendered.png, list(report.COLORS.values()))
    assert all(n > 200 for n in colors.values()), colors  # both series painted


def test_deploy_timeline_renders_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "timeline.html"
    page.write_text(timeline.render(audit_records()))
    rendered = chromium(page, 1100, 1000)
    assert rendered.console == []
    main = [svg for svg in charts(rendered.dom) if svg.x_labels]
    assert len(main) == 1
    axis = main[0]
    assert len(axis.x_labels) >= 4 and all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", label) for label in axis.x_labels), axis.x_labels
    assert axis.x_details[0] == "2026"
    assert axis.shapes >= 30  # bars and marks of five releases
    for text in (A, B, C, D, E, "rollback by the guard", "override (window): fix before the open", "gate FAILED"):
        assert text in rendered.dom, text
    colors = painted(rendered.png, [timeline.STAGE_COLORS["production"], timeline.MARK_COLORS["guard"], timeline.MARK_COLORS["failed"]])
    assert all(n > 20 for n in colors.values()), colors
