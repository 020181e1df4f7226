"""lab.history: the synthetic minute-bar history the demo replays. Deterministic in its seed, every
minute of every day for every symbol, in the CSV the lab's market replays, and a bad argument is one
line and exit 2 with no file written."""

from __future__ import annotations

import csv
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from lab import history
from lab.exchanges.market import Market
from tests import ROOT

START = 1_790_812_800  # 2026-10-01 00:00 UTC, the default start


def write(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.history", *args, "--out", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_same_seed_writes_the_same_file_and_another_seed_another(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((a, "42"), (b, "42"), (c, "43")):
        done = write(path, "--days", "1", "--symbols", "AAPL,MSFT", "--seed", seed)
        assert done.returncode == 0, done.stderr
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    # The API writes what the command writes.
    api = tmp_path / "api.csv"
    history.write_csv(api, history.generate(1, ["AAPL", "MSFT"], 42))
    assert api.read_bytes() == a.read_bytes()


def test_every_minute_of_every_day_for_every_symbol(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    done = write(out, "--days", "2", "--symbols", "AAPL,MSFT,NVDA", "--start", "2026-10-01")
    assert done.returncode == 0, done.stderr
    with out.open() as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["t", "symbol", "o", "h", "l", "c", "v"]
        rows = list(reader)
    assert len(rows) == 2 * 1440 * 3
    by_symbol: dict[str, list[list[str]]] = {}
    for row in rows:
        by_symbol.setdefault(row[1], []).append(row)
    assert sorted(by_symbol) == ["AAPL", "MSFT", "NVDA"]
    for series in by_symbol.values():
        assert [int(r[0]) for r in series] == list(range(START, START + 2 * 86400, 60))
        previous_close = None
        for _, _, o, h, low, c, v in series:
            assert float(low) <= min(float(o), float(c)) <= max(float(o), float(c)) <= float(h)
            assert float(low) > 0 and int(v) > 0
            if previous_close is not None:
                assert o == previous_close  # a bar opens where the last one closed
            previous_close = c


def test_the_lab_market_replays_the_file(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    history.write_csv(out, history.generate(1, ["AAPL", "BTC-USD"], 7))
    bars = {(b.symbol, b.t): b for b in history.generate(1, ["AAPL", "BTC-USD"], 7)}
    market = Market(csv_path=out)
    for symbol, t in (("AAPL", START), ("BTC-USD", START + 60 * 777), ("AAPL", START + 60 * 1439)):
        want, got = bars[(symbol, t)], market.bar(symbol, t)
        assert (got.o, got.h, got.l, got.c, got.v) == (want.o, want.h, want.l, want.c, want.v)


def test_prices_trend_in_regimes() -> None:
    """Trends last hours: hourly returns are positively autocorrelated, which a trend follower lives on."""
    closes = [b.c for b in history.generate(10, ["AAPL"], 42)]
    hourly = [closes[i + 60] / closes[i] - 1 for i in range(0, len(closes) - 60, 60)]
    mean = sum(hourly) / len(hourly)
    lag1 = sum((x - mean) * (y - mean) for x, y in pairwise(hourly))
    assert lag1 / sum((x - mean) ** 2 for x in hourly) > 0.2


@pytest.mark.parametrize(
    "args",
    [
        ["--days", "0", "--symbols", "AAPL"],
        ["--days", "many", "--symbols", "AAPL"],
        ["--days", "400", "--symbols", "AAPL"],
        ["--days", "1", "--symbols", ""],
        ["--days", "1", "--symbols", "AAPL,,MSFT"],
        ["--days", "1", "--symbols", "AAPL,AAPL"],
        ["--days", "1", "--symbols", "AA PL"],
        ["--days", "1", "--symbols", "AAPL", "--seed", "x"],
        ["--days", "1", "--symbols", "AAPL", "--start", "2026-13-01"],
        ["--days", "1", "--symbols", "AAPL", "--start", "2026-10-01T00:00:30"],
        ["--days", "1"],
        ["--days", "1", "--symbols", "AAPL", "--bogus"],
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "h.csv"
    done = write(out, *args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_out_file_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    done = write(tmp_path / "nowhere" / "h.csv", "--days", "1", "--symbols", "AAPL")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()
