"""The strategy contract (bot/quantshift_bot/strategy.py), the release's strategy in its manifest and wheelhouse, the
bars the bots record (bot/quantshift_bot/marketdata.py), and how the replay gate finds production's release."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from quantshift import manifest
from quantshift.audit import Record
from quantshift.strategy_cli import production_release
from quantshift_bot import marketdata
from quantshift_bot import strategy as contract
from quantshift_bot.models import Bar, Position, Signal
from quantshift_ma_cross import MovingAverageCross

ROOT = Path(__file__).resolve().parent.parent


class _Base(MovingAverageCross):
    pass


@dataclasses.dataclass(frozen=True)
class _Random(MovingAverageCross):
    """Decides with a coin: not deterministic in its inputs."""

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        import random

        if len(bars) < self.warmup or random.random() < 0.5:
            return None
        return Signal(symbol, "sell" if position else "buy", bars[-1].c, "coin", bars[-1].t)


@dataclasses.dataclass(frozen=True)
class _Early(MovingAverageCross):
    """Signals before its warm-up."""

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        return Signal(symbol, "sell" if position else "buy", bars[-1].c, "eager", bars[-1].t)


@dataclasses.dataclass(frozen=True)
class _StaleBar(MovingAverageCross):
    """Signals for an earlier bar than the one it was given."""

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        if len(bars) < self.warmup:
            return None
        return Signal(symbol, "sell" if position else "buy", bars[-1].c, "late", bars[-2].t)


@dataclasses.dataclass(frozen=True)
class _StopAbove(MovingAverageCross):
    def protection(self, entry: float) -> tuple[float | None, float | None]:
        return entry * 1.01, entry * 1.05


@dataclasses.dataclass(frozen=True)
class _Raising(MovingAverageCross):
    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        raise KeyError("close")


def test_the_example_keeps_the_contract() -> None:
    found = contract.check(contract.load("ma_cross", {"fast": 3, "slow": 8}), "ma_cross", 60)
    assert found.warmup == 9


@pytest.mark.parametrize(
    ("strategy", "lookback", "expected"),
    [
        (_Random(2, 5), 60, "not deterministic"),
        (_Early(2, 5), 60, "fewer than its warmup"),
        (_StaleBar(2, 5), 60, "latest bar"),
        (_StopAbove(2, 5), 60, "stop must be below the entry"),
        (_Raising(2, 5), 60, "raised in decide (bar 1): KeyError"),
        (MovingAverageCross(5, 80), 60, "warmup is 81 bars but the bot looks back only 60"),
        (object(), 60, "it has no 'warmup'"),
    ],
)
def test_a_broken_strategy_is_refused_with_one_line(strategy: object, lookback: int, expected: str) -> None:
    with pytest.raises(contract.StrategyError) as err:
        contract.check(strategy, "candidate", lookback)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("strategy 'candidate' ")


def test_loading_names_what_is_missing_or_refused() -> None:
    with pytest.raises(contract.StrategyError, match=r"'nope' is not installed .*installed: .*ma_cross"):
        contract.load("nope", {})
    with pytest.raises(contract.ParamsError, match="need 1 <= fast < slow"):
        contract.load("ma_cross", {"fast": 9, "slow": 3})


def test_the_bot_refuses_to_start_on_a_strategy_that_is_not_there(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "QS_MODE": "paper", "QS_BROKER": "sim", "QS_SYMBOLS": "AAPL", "QS_STRATEGY": "nope"}
    done = subprocess.run([sys.executable, "-m", "quantshift_bot", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "QS_STRATEGY: strategy 'nope' is not installed" in done.stderr and "Traceback" not in done.stderr


def test_a_manifest_names_its_strategy(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "pyproject.toml").write_text("[project]\nname='x'\n")
    path = tmp_path / "release.yml"
    path.write_text("release: r1\nrisk_class: medium\nstrategy: {name: mine, package: ./mine, params: {fast: 3}}\n")
    found = manifest.load(path)
    assert found.strategy == manifest.StrategySpec("mine", str(tmp_path / "mine"), {"fast": 3.0})
    path.write_text("release: r1\nrisk_class: low\n")
    assert manifest.load(path).strategy.name == "ma_cross" and Path(manifest.load(path).strategy.package).is_dir()
    for bad, expected in (
        ("strategy: {name: x, package: ./nowhere}", "is not a Python package directory"),
        ("strategy: {name: x, package: quantshift-x}", "must pin a version"),
        ("strategy: {name: 'a b', package: x==1}", "strategy.name"),
        ("strategy: {name: x, package: x==1, params: {fast: yes}}", "strategy.params"),
        ("strategy: {name: x, package: x==1, colour: red}", r"unknown key\(s\) colour"),
    ):
        path.write_text(f"release: r1\nrisk_class: low\n{bad}\n")
        with pytest.raises(manifest.ManifestError, match=expected):
            manifest.load(path)


def test_the_wheelhouse_carries_the_strategy(tmp_path: Path) -> None:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "QUANTSHIFT_STRATEGY": json.dumps(
        {"name": "ma_cross", "package": str(ROOT / "strategies" / "ma_cross"), "params": {"fast": 3, "slow": 9}}
    )}  # fmt: skip
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-wheelhouse.sh"), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    archive = Path(done.stdout.split()[-1])
    listing = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True).stdout
    assert "./quantshift_ma_cross-1.0.0-py3-none-any.whl" in listing.splitlines()
    meta = json.loads(subprocess.run(["tar", "-xOf", str(archive), "./strategy.json"], capture_output=True, text=True, check=True).stdout)
    assert (meta["name"], meta["distribution"], meta["version"], meta["params"]) == (
        "ma_cross",
        "quantshift-ma-cross",
        "1.0.0",
        {"fast": 3, "slow": 9},
    )
    # Every wheel pinned with its file's hash; the lock it came from recorded; nothing of the controller.
    requirements = subprocess.run(["tar", "-xOf", str(archive), "./requirements.txt"], capture_output=True, text=True, check=True).stdout
    wheels = [n for n in listing.splitlines() if n.endswith(".whl") and "/tools/" not in n]
    assert len(requirements.splitlines()) == len(wheels) and all(" --hash=sha256:" in line for line in requirements.splitlines())
    assert not any(n.startswith("./quantshift-") for n in wheels) and "./tools/uv-" in listing
    assert any(n.startswith("./quantshift_bot-") for n in wheels)
    build = json.loads(subprocess.run(["tar", "-xOf", str(archive), "./build.json"], capture_output=True, text=True, check=True).stdout)
    lock = ROOT / "requirements" / "host-py3.11.lock"
    assert (build["lock"], build["unlocked"]) == ("host-py3.11.lock", []) and build["lock_sha256"] == hashlib.sha256(
        lock.read_bytes()
    ).hexdigest()
    # A host Python the project has no lock for is refused, naming it, before anything is built.
    refused = subprocess.run(
        [str(ROOT / "scripts" / "build-wheelhouse.sh"), str(tmp_path / "other")],
        env=env | {"QUANTSHIFT_TARGET_PYTHON": "3.12.3"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert refused.returncode == 2 and "Python 3.12.3 is not one the project serves (it serves 3.11, 3.13" in refused.stderr
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").glob("*.tar"))
    env["QUANTSHIFT_STRATEGY"] = json.dumps({"name": "missing", "package": str(ROOT / "strategies" / "ma_cross"), "params": {}})
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-wheelhouse.sh"), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode != 0 and "no package in the wheelhouse offers the strategy 'missing'" in done.stderr


def _bar(t: int, c: float) -> Bar:
    return Bar(t, c, c + 1, c - 1, c, 100.0)


def test_bars_are_recorded_once_and_exported(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    first, second = marketdata.Recorder(client, "equity", retention=1000), marketdata.Recorder(client, "equity", retention=1000)
    bars = {"AAPL": [_bar(60 * i, 100 + i) for i in range(1, 6)], "MSFT": [_bar(60, 50.0)]}
    assert first.record(bars, {"AAPL"}) == 5
    assert second.record(bars, {"AAPL"}) == 0  # a second bot seeing the same bars records nothing
    bars["AAPL"].append(_bar(360, 106))
    assert second.record(bars, {"AAPL", "MSFT"}) == 2
    assert first.record(bars, {"AAPL"}) == 0  # what the other bot recorded meanwhile is refused by Redis
    found = marketdata.export(redis.Redis.from_url(redis_url), tmp_path)
    lines = found["equity"].read_text().splitlines()
    assert lines[0] == "t,symbol,o,h,l,c,v" and len(lines) == 1 + 7
    assert lines[1].startswith("60,AAPL,101") and lines[-1].startswith("360,AAPL,106")


def test_recording_is_bounded(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    recorder = marketdata.Recorder(client, "crypto", retention=100)
    recorder.record({"BTC-USD": [_bar(60 * i, 100.0) for i in range(1, 2001)]}, {"BTC-USD"})
    assert client.xlen(marketdata.key("crypto", "BTC-USD")) < 300  # approximate trimming: about the last 100


def _record(kind: str, release: str, stage: str = "production", outcome: str = "ok", when: float = 0.0) -> Any:
    return Record(kind, release, stage, outcome, when=when)


def test_production_release_follows_deploys_and_rollbacks() -> None:
    history = [
        _record("deploy", "a", when=1),
        _record("deploy", "b", stage="paper", when=2),
        _record("deploy", "b", when=3),
        _record("deploy", "c", when=4),
        _record("rollback", "c", when=5),
        _record("deploy", "d", outcome="failed", when=6),
    ]
    assert production_release(history) == "b"
    assert production_release(history[:2]) == "a"
    assert production_release([]) is None


@pytest.mark.parametrize("package", ["strategies/ma_cross", "demo/strategies/ma_trend", "demo/strategies/ma_inverted"])
def test_each_strategy_package_passes_its_own_tests(package: str) -> None:
    where = ROOT / package
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": f"{where / 'src'}:{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(where / "tests")],
        cwd=where, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def test_recorded_bars_export_for_replay_and_the_lab(redis_url: str, tmp_path: Path) -> None:
    """What the bots recorded, exported by `quantshift bars export`, is what the replay and the lab's
    exchanges (`quantshift lab up --prices`) read."""
    from lab.exchanges.market import Market
    from quantshift_bot.replay import read_bars

    client = redis.Redis.from_url(redis_url)
    marketdata.Recorder(client, "equity").record({"AAPL": [_bar(60 * i, 100.0 + i) for i in range(1, 31)]}, {"AAPL"})
    marketdata.Recorder(client, "crypto").record({"BTC-USD": [_bar(60 * i, 50.0) for i in range(1, 11)]}, {"BTC-USD"})
    done = subprocess.run(
        [sys.executable, "-m", "quantshift", "bars", "export", "--redis-url", redis_url, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "equity: 30 bars" in done.stdout and "crypto: 10 bars" in done.stdout
    replayed = read_bars(tmp_path / "bars-equity.csv")
    assert [b.c for b in replayed["AAPL"]] == [100.0 + i for i in range(1, 31)]
    assert Market(csv_path=tmp_path / "bars-equity.csv").bar("AAPL", 120).c == 102.0


@pytest.mark.parametrize("defect", ["crash", "hang", "slow", "errors", "losses"])
def test_each_deliberately_bad_release_still_applies_to_this_tree(defect: str, tmp_path: Path) -> None:
    """scripts/build-bad-release.sh patches the tree at named places; a change there must fail here, fast,
    not in the LXC suites that deploy the bad releases."""
    import os

    done = subprocess.run(
        [str(ROOT / "scripts" / "build-bad-release.sh"), str(tmp_path), defect],
        env=os.environ | {"QUANTSHIFT_BAD_RELEASE_CHECK": "1"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == f"{defect}: applies", done.stderr


def test_a_bad_print_is_not_exported(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    bars = [_bar(60, 100.0), Bar(120, 100.0, 101.0, -5.0, 20.0, 10.0), _bar(180, 21.0)]
    marketdata.Recorder(client, "crypto").record({"BTC-USD": bars}, {"BTC-USD"})
    lines = marketdata.export(client, tmp_path)["crypto"].read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["60", "180"]


def test_the_labs_bars_never_print_at_or_below_zero() -> None:
    from lab.exchanges.market import EPOCH, Market

    market = Market(seed=3)
    market.shock(-0.8, EPOCH + 600)  # a gap of -80 %: the longest body the lab makes
    bars = market.bars("BTC-USD", EPOCH, EPOCH + 3600)
    assert min(b.l for b in bars) > 0 and any(b.o > 2 * b.c for b in bars)
