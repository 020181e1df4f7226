"""`quantshift strategy new` (quantshift/scaffold.py): the package it writes passes its own tests, catches a
broken strategy, builds into a wheel whose entry point the bot finds, and keeps the bot's contract; a bad
name, an installed one or an existing directory is refused in one line with nothing written."""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from quantshift import scaffold
from quantshift_bot import strategy as contract
from quantshift_bot.errors import EXIT_OK, EXIT_USAGE, InputError, Parser, exit_code
from quantshift_bot.models import Position


def tree(root: Path) -> list[tuple[str, str]]:
    """Everything under `root`: relative path and what it is (a directory, a link's target, a file's content)."""

    def what(p: Path) -> str:
        return f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes().hex()

    return sorted((str(p.relative_to(root)), what(p)) for p in root.rglob("*"))


def pytest_in(package: Path) -> subprocess.CompletedProcess[str]:
    """The package's own tests, run as its README says, with its src on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(package / "src")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def imported(tmp_path: Path) -> Iterator[ModuleType]:
    """A scaffolded package `probe_breakout`, imported from its src (and forgotten afterwards)."""
    package = scaffold.new("probe_breakout", tmp_path)
    sys.path.insert(0, str(package / "src"))
    try:
        yield importlib.import_module("qs_strategy_probe_breakout")
    finally:
        sys.path.remove(str(package / "src"))
        sys.modules.pop("qs_strategy_probe_breakout", None)


def test_it_writes_the_package(tmp_path: Path) -> None:
    package = scaffold.new("probe_trend", tmp_path)
    assert package == tmp_path / "probe_trend"
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == [
        "README.md",
        "pyproject.toml",
        "src/qs_strategy_probe_trend/__init__.py",
        "tests/test_strategy.py",
    ]
    import tomllib

    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["name"] == "quantshift-strategy-probe-trend"
    assert project["version"] == "0.1.0"
    assert project["requires-python"] == ">=3.11"
    assert project["dependencies"] == []  # the release provides the bot runtime
    assert project["entry-points"]["quantshift.strategies"] == {"probe_trend": "qs_strategy_probe_trend:make"}
    assert any(r.startswith("pytest") for r in project["optional-dependencies"]["test"])
    readme = (package / "README.md").read_text()
    assert "python -m pytest" in readme and "quantshift strategy check" in readme
    assert "strategy: {name: probe_trend, package: ./probe_trend, params:" in readme


def test_its_own_tests_pass_and_catch_a_broken_strategy(tmp_path: Path) -> None:
    package = scaffold.new("probe_breakout", tmp_path)
    out = pytest_in(package)
    assert out.returncode == 0, out.stdout + out.stderr
    passed = re.search(r"(\d+) passed", out.stdout)
    assert passed and int(passed.group(1)) >= 5, out.stdout
    assert "failed" not in out.stdout and "skipped" not in out.stdout
    # the same tests on a strategy whose stop never fires
    code = package / "src" / "qs_strategy_probe_breakout" / "__init__.py"
    source = code.read_text()
    assert "price <= position.stop_loss" in source
    code.write_text(source.replace("price <= position.stop_loss", "price < 0"))
    broken = pytest_in(package)
    assert broken.returncode == 1 and "1 failed" in broken.stdout, broken.stdout + broken.stderr


def _wheel_build_missing() -> str | None:
    """Why this venv cannot build a wheel without build isolation (None: it can): setuptools before 70.1
    has no bdist_wheel of its own and needs the `wheel` package."""
    if importlib.util.find_spec("wheel") is not None:
        return None
    version = metadata.version("setuptools")
    if tuple(int(part) for part in version.split(".")[:2]) >= (70, 1):
        return None
    return f"setuptools {version} without the wheel package cannot build wheels without isolation"


def test_it_builds_a_wheel_that_names_its_entry_point(tmp_path: Path) -> None:
    missing = _wheel_build_missing()
    if missing:
        pytest.skip(missing)
    (tmp_path / "strategies").mkdir()
    package = scaffold.new("probe_trend", tmp_path / "strategies")
    wheels = tmp_path / "wheels"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels), str(package)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    [wheel] = wheels.glob("*.whl")
    assert wheel.name == "quantshift_strategy_probe_trend-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
        meta = zf.read(f"{dist_info}/METADATA").decode()
    assert dict(entry_points["quantshift.strategies"]) == {"probe_trend": "qs_strategy_probe_trend:make"}
    assert "qs_strategy_probe_trend/__init__.py" in names
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires  # pytest for tests; nothing to run


def test_the_strategy_keeps_the_contract(imported: ModuleType) -> None:
    strategy = contract.check(imported.make({}), "probe_breakout", 60)
    assert strategy.warmup <= 60
    stop, target = strategy.protection(100.0)
    assert stop is not None and stop < 100.0 and target is not None and target > 100.0
    # the probe bars the bot checks with give it trades, so the check ran the buy and the sell paths
    bars, sides = contract.probe_bars(400), []
    position: Position | None = None
    for i in range(1, len(bars) + 1):
        signal = strategy.decide("PROBE", bars[max(0, i - 60) : i], position)
        if signal is not None:
            sides.append(signal.side)
            bought = signal.side == "buy"
            position = Position("PROBE", 1.0, signal.price, signal.stop_loss, signal.take_profit) if bought else None
    assert "buy" in sides and "sell" in sides


def test_its_factory_refuses_bad_parameters_as_the_bot_reports_them(imported: ModuleType) -> None:
    for params in ({"entry_bar": 20.0}, {"entry_bars": 0.0}, {"stop_loss": 1.0}, {"take_profit": float("inf")}):
        with pytest.raises(ValueError) as err:
            imported.make(params)
        assert "\n" not in str(err.value) and next(iter(params)) in str(err.value)


def _refused(tmp_path: Path, name: str, parent: Path | None = None) -> str:
    before = tree(tmp_path)
    with pytest.raises(InputError) as err:
        scaffold.new(name, parent or tmp_path)
    assert tree(tmp_path) == before, "a refused scaffold wrote something"
    assert exit_code(err.value) == EXIT_USAGE
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "probe_breakout").mkdir()
    (tmp_path / "probe_breakout" / "notes.txt").write_text("mine")
    assert str(tmp_path / "probe_breakout") in _refused(tmp_path, "probe_breakout")
    (tmp_path / "probe_file").write_text("a file, not a package")
    assert str(tmp_path / "probe_file") in _refused(tmp_path, "probe_file")
    (tmp_path / "probe_link").symlink_to(tmp_path / "nowhere")
    assert str(tmp_path / "probe_link") in _refused(tmp_path, "probe_link")


@pytest.mark.parametrize(
    "name",
    ["Breakout", "1breakout", "b", "break-out", "break out", "break.out", "../breakout", "breakout_", "b" * 41, "", "breakout\n", "ünï"],
)
def test_a_bad_name_is_refused(tmp_path: Path, name: str) -> None:
    assert repr(name) in _refused(tmp_path, name)


def test_an_installed_name_is_refused(tmp_path: Path) -> None:
    assert "ma_cross" in contract.available(), "the example strategy should be installed (make setup)"
    message = _refused(tmp_path, "ma_cross")
    assert "'ma_cross' is already installed" in message


def test_a_missing_parent_is_refused(tmp_path: Path) -> None:
    assert str(tmp_path / "nope") in _refused(tmp_path, "probe_breakout", tmp_path / "nope")
    (tmp_path / "file").write_text("")
    assert str(tmp_path / "file") in _refused(tmp_path, "probe_breakout", tmp_path / "file")


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = Parser(prog="quantshift")
    groups = parser.add_subparsers(dest="command", required=True)
    scaffold.register_new(groups.add_parser("strategy").add_subparsers(dest="strategy_command", required=True))
    args = parser.parse_args(["strategy", "new", "probe_momentum", "--dir", str(tmp_path)])
    assert args.func(args) == EXIT_OK
    assert capsys.readouterr().out.strip() == str(tmp_path / "probe_momentum")
    assert (tmp_path / "probe_momentum" / "src" / "qs_strategy_probe_momentum" / "__init__.py").is_file()
    with pytest.raises(InputError):  # the second time: it exists
        args.func(args)
