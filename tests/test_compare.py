"""Shadow versus production on synthetic trade sets with known answers, the statistics, the report."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis

from quantshift_bot import compare, report
from quantshift_bot.errors import EXIT_INCONCLUSIVE, EXIT_NO
from quantshift_bot.models import Trade
from quantshift_bot.state import State

T0 = 1_767_600_000.0


def trades(n: int, mean: float, sd: float, seed: int, symbol: str = "AAPL", every: float = 1800.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ret = rng.gauss(mean, sd)
        entry = 100.0
        t = Trade(symbol, 10, entry, entry * (1 + ret), T0 + i * every - 600, T0 + i * every, "synthetic")
        out.append(
            {
                "symbol": t.symbol,
                "qty": t.qty,
                "entry_price": t.entry_price,
                "exit_price": t.exit_price,
                "opened_at": t.opened_at,
                "closed_at": t.closed_at,
                "pnl": t.pnl,
                "ret": t.ret,
            }
        )
    return out


BASE = trades(80, 0.002, 0.01, seed=1)


def test_mann_whitney_against_a_hand_computed_value() -> None:
    u, p = compare.mann_whitney_less([1, 2, 3], [4, 5, 6])
    assert u == 0
    assert p == pytest.approx(0.5 * math.erfc(1.7457431 / math.sqrt(2)), rel=1e-4)  # z = (0 - 4.5 + 0.5) / sqrt(5.25)
    u2, p2 = compare.mann_whitney_less([4, 5, 6], [1, 2, 3])
    assert u2 == 9 and p2 > 0.95
    _, p_tied = compare.mann_whitney_less([1, 1, 1, 1], [1, 1, 1, 1])
    assert p_tied == 0.5


@pytest.mark.parametrize(
    ("shadow", "expected"),
    [
        (BASE, "pass"),  # identical
        (trades(80, 0.012, 0.01, seed=2), "pass"),  # clearly better
        (trades(80, -0.012, 0.01, seed=3), "fail"),  # clearly worse
        (trades(10, 0.002, 0.01, seed=4), "inconclusive"),  # too few trades
    ],
)
def test_verdicts_on_known_sets(shadow: list[dict[str, Any]], expected: str) -> None:
    result = compare.compare(shadow, BASE)
    assert result.verdict.result == expected, result.verdict.reason


def test_marginal_when_worse_beyond_tolerance_but_not_significant() -> None:
    shadow = [t | {"ret": t["ret"] - 0.0015, "pnl": t["pnl"] - 1.5} for t in BASE]  # a small, steady shortfall
    result = compare.compare(shadow, BASE, compare.Settings(tolerance=0.001))
    assert result.verdict.result == "marginal", result.verdict.reason
    lenient = compare.compare(shadow, BASE, compare.Settings(tolerance=0.01))
    assert lenient.verdict.result == "pass"


def test_metrics_side_by_side_and_signal_agreement() -> None:
    orders = [{"symbol": "AAPL", "side": "buy", "time": T0 + i * 100} for i in range(10)]
    near = [o | {"time": o["time"] + 5} for o in orders]
    other_symbol = [o | {"symbol": "MSFT"} for o in orders]
    result = compare.compare(BASE, BASE, shadow_orders=near, production_orders=orders)
    assert result.agreement == 1.0
    assert compare.compare(BASE, BASE, shadow_orders=other_symbol, production_orders=orders).agreement == 0.0
    assert compare.compare(BASE, BASE, shadow_orders=near[:5], production_orders=orders).agreement == 0.5
    s, p = result.shadow, result.production
    assert (s.trades, s.pnl, s.win_rate, s.sharpe, s.max_drawdown) == (p.trades, p.pnl, p.win_rate, p.sharpe, p.max_drawdown)
    assert s.trades == 80 and 0 < s.win_rate < 1 and s.profit_factor > 0
    assert "signal agreement" in compare.render_table(result) and "PASS" in compare.render_table(result)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def test_html_report_is_self_contained_with_three_plots(tmp_path: Path) -> None:
    worse = trades(80, -0.012, 0.01, seed=3)
    page = report.render(compare.compare(worse, BASE))
    parser = _Collect()
    parser.feed(page)
    assert parser.tags.count("svg") == 3 and parser.tags.count("path") >= 4 and "rect" in parser.tags
    assert not [v for k, v in parser.attrs if k in ("src", "href") and v]  # nothing to fetch
    assert "http://" not in page and "https://" not in page
    assert 'class="verdict fail"' in page


def test_cli_with_files_exit_codes_json_and_html(tmp_path: Path) -> None:
    def write(name: str, docs: list[dict[str, Any]]) -> Path:
        path = tmp_path / name
        path.write_text("\n".join(json.dumps(d) for d in docs))
        return path

    prod = write("prod.jsonl", BASE)

    def cli(shadow: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "quantshift",
                "compare",
                "--shadow-trades",
                str(write("shadow.jsonl", shadow)),
                "--production-trades",
                str(prod),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = cli(BASE, "--json", "--html", str(tmp_path / "r.html"))
    assert ok.returncode == 0 and json.loads(ok.stdout)["verdict"]["result"] == "pass"
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    assert cli(trades(80, -0.012, 0.01, seed=3)).returncode == EXIT_NO  # the check said no
    assert cli(trades(5, 0.0, 0.01, seed=5)).returncode == EXIT_INCONCLUSIVE
    shortfall = [t | {"ret": t["ret"] - 0.0015} for t in BASE]
    assert cli(shortfall).returncode == EXIT_NO and cli(shortfall, "--allow-marginal").returncode == 0


def test_cli_reads_both_journals_from_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for account, docs in (("acct:shadow", trades(40, 0.003, 0.01, seed=7)), ("acct", trades(40, 0.003, 0.01, seed=8))):
        state = State(client, account)
        for d in docs:
            state.journal(Trade(d["symbol"], d["qty"], d["entry_price"], d["exit_price"], d["opened_at"], d["closed_at"], "x"))
    proc = subprocess.run(
        [sys.executable, "-m", "quantshift", "compare", "--redis-url", redis_url, "--account", "acct", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    doc = json.loads(proc.stdout)
    assert doc["shadow"]["trades"] == 40 and doc["production"]["trades"] == 40
    assert doc["verdict"]["result"] in ("pass", "marginal") and proc.returncode in (0, 3)


def decisions(first: float, n: int, every: float = 900.0, jitter: float = 0.0) -> list[dict[str, Any]]:
    """Orders of a strategy deciding on bars `every` seconds apart: buy, then sell on the next bar."""
    return [{"symbol": ("AAPL", "MSFT")[i // 2 % 2], "side": ("buy", "sell")[i % 2], "time": first + i * every + jitter} for i in range(n)]


def test_identical_order_streams_agree_fully() -> None:
    orders = decisions(T0, 40)
    assert compare.agreement(orders, list(orders), 60.0) == 1.0
    assert compare.compare(BASE, BASE, shadow_orders=orders, production_orders=orders).agreement == 1.0
    # the same decisions, recorded 3 s later by the shadow: the first shadow order starts the overlap, and
    # production's order of that decision, 3 s before it, still matches
    late = decisions(T0, 40, jitter=3.0)
    assert compare.agreement(late, orders, 60.0) == 1.0


def test_production_orders_from_before_the_shadow_started_are_ignored() -> None:
    production = decisions(T0 - 3 * 86400, 500)  # production has traded for days
    shadow = [o | {"time": o["time"] + 2.0} for o in production if o["time"] >= T0]  # the shadow starts at T0
    shadow_trades = [t for t in BASE if t["opened_at"] >= T0]
    result = compare.compare(shadow_trades, BASE, shadow_orders=shadow, production_orders=production)
    assert result.agreement == 1.0
    assert result.overlap is not None and result.overlap.start >= T0
    everything = compare.Period(-math.inf, math.inf)  # what was measured before: every production order
    assert compare.agreement(shadow, production, 60.0, everything) == pytest.approx(len(shadow) / len(production))
    # an order production placed while both ran, which the shadow did not, still counts against it
    extra = [*production, {"symbol": "NVDA", "side": "buy", "time": T0 + 1000.0}]
    counted = sum(1 for o in production if T0 <= o["time"] <= result.overlap.end) + 1
    assert compare.compare(shadow_trades, BASE, shadow_orders=shadow, production_orders=extra).agreement == pytest.approx(
        (counted - 1) / counted
    )


def test_production_orders_after_the_shadow_stopped_are_ignored() -> None:
    production = decisions(T0, 200)
    shadow = production[:50]  # the shadow ran for the first 50 decisions only
    assert compare.agreement(shadow, production, 60.0) == 1.0
    assert compare.agreement(shadow[:-10], production, 60.0) == 1.0


def test_no_overlap_means_no_agreement_figure_not_zero() -> None:
    production = decisions(T0, 40)
    shadow = decisions(T0 + 10 * 86400, 40)  # ran later, never beside production
    assert compare.agreement(shadow, production, 60.0) is None
    later_trades = [t | {"opened_at": t["opened_at"] + 20 * 86400, "closed_at": t["closed_at"] + 20 * 86400} for t in BASE]
    result = compare.compare(later_trades, BASE[:10], shadow_orders=decisions(T0 + 20 * 86400, 40), production_orders=production)
    assert result.agreement is None and result.overlap is None
    assert "signal agreement" not in compare.render_table(result)
    assert compare.agreement([], [], 60.0) is None
