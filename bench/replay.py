"""The replay gate: 30 days of 1-minute bars for 3 symbols through a candidate and the production release,
each in its own venv and process (`quantshift replay`), against a target of 10 s; bars per second and peak
memory of each side. Baseline in the same run: the live engine (shadow mode, sim broker, real Redis)
deciding the same kind of bars one tick per bar, extrapolated to the same number of bars. Also the cost
of building a release's venv from its wheelhouse on the controller: uv against venv + pip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import below, record
from quantshift_bot import config
from quantshift_bot.brokers.sim import SimBroker
from quantshift_bot.engine import Engine
from tests.botkit import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DAYS, SYMBOLS = 30, ("AAPL", "MSFT", "NVDA")


def _manifest(path: Path, release: str, name: str, package: Path) -> Path:
    path.write_text(f"release: {release}\nrisk_class: high\nstrategy: {{name: {name}, package: {package}}}\n")
    return path


def _quantshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quantshift", *args], capture_output=True, text=True, timeout=1800, check=False)


def engine_bars_per_second(redis_url: str, ticks: int = 1500) -> float:
    """The live engine deciding 3 symbols one tick per bar (shadow: would-be orders booked in Redis)."""
    env = {
        "QS_MODE": "shadow",
        "QS_BROKER": "sim",
        "QS_SYMBOLS": ",".join(SYMBOLS),
        "QS_ACCOUNT_ID": "bench-replay",
        "QS_REDIS_URL": redis_url,
    }
    broker = SimBroker(SYMBOLS)
    engine = Engine(config.load(env), broker, redis.Redis.from_url(redis_url))
    engine.start_equity = broker.equity()
    began = time.perf_counter()
    for _ in range(ticks):
        broker.step()
        engine.tick()
    return ticks * len(SYMBOLS) / (time.perf_counter() - began)


def venv_seconds(archive: Path, tmp: Path) -> dict[str, float]:
    """A release venv built from scratch from its wheelhouse, with uv and with the standard venv + pip."""
    from quantshift import releasevenv

    out = {}
    for tool in ("uv", "pip"):
        cache = tmp / f"venvs-{tool}"
        hidden = Path(sys.executable).parent / "uv"
        moved = hidden.with_name("uv.bench-hidden")
        began = time.monotonic()
        try:
            if tool == "pip" and hidden.exists():
                hidden.rename(moved)  # releasevenv falls back to pip when there is no uv
            releasevenv.ensure(archive, cache)
        finally:
            if moved.exists():
                moved.rename(hidden)
        out[tool] = time.monotonic() - began
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bars = tmp / "bars.csv"
        subprocess.run(
            [sys.executable, "-m", "lab.history", "--days", str(DAYS), "--symbols", ",".join(SYMBOLS), "--out", str(bars)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        a = _manifest(tmp / "a.yml", "bench-a", "ma_cross", ROOT / "strategies" / "ma_cross")
        b = _manifest(tmp / "b.yml", "bench-b", "ma_trend", ROOT / "demo" / "strategies" / "ma_trend")
        warm = _quantshift("replay", "--candidate", str(b), "--production", str(a), "--bars", str(bars), "--json")  # builds both venvs
        assert warm.returncode == 0, warm.stderr
        began = time.monotonic()
        done = _quantshift("replay", "--candidate", str(b), "--production", str(a), "--bars", str(bars), "--json")
        wall = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        doc: dict[str, Any] = json.loads(done.stdout)["markets"][0]
        count = doc["bars"]
        with RedisServer(tmp / "redis") as server:
            engine_rate = engine_bars_per_second(server.url)
        from quantshift.strategy_cli import wheelhouse_of

        venvs = venv_seconds(wheelhouse_of(a), tmp)
    figures = [
        {
            "name": f"quantshift replay: {DAYS} days x {len(SYMBOLS)} symbols of 1-minute bars ({count:,}), candidate and production, "
            "each in its own venv and process (venvs built)",
            "value": round(wall, 2),
            "unit": "s",
            "baseline": f"{2 * count / engine_rate:.0f} s through the live engine's loop ({engine_rate:,.0f} bars/s, shadow, real Redis)",
            "target": "< 10",
            "met": wall < 10,
        },
    ]
    for side in ("candidate", "production"):
        s = doc[side]
        figures.append(
            {"name": f"... {side} ({s['strategy']['name']}): bars per second", "value": round(s["bars_per_second"]), "unit": "bars/s"}
        )
        figures.append(
            {"name": f"... {side} ({s['strategy']['name']}): peak memory", "value": round(s["peak_rss_kb"] / 1024, 1), "unit": "MiB"}
        )
    figures.append(
        {
            "name": "a release's venv from its wheelhouse on the controller (strategy check, replay): uv",
            "value": round(venvs["uv"], 1),
            "unit": "s",
            "baseline": f"{venvs['pip']:.1f} s with venv + pip",
        }
    )
    print(record("replay", [below(f) for f in figures], backend="local processes; uv-built venvs"))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
