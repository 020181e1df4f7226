"""`quantshift strategy new NAME`: a strategy package of the user's own, ready to test, build and name in
a release manifest. It starts as a small working breakout with its tests, so the author edits something
that already keeps the contract (quantshift_bot.strategy; STRATEGY.md at the repository root) instead of a blank page.

Nothing is written until the name and the place have passed every check, and nothing is ever overwritten:
the package directory is created exclusively, and removed again if writing into it fails."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from quantshift_bot.errors import EXIT_OK, InputError, UserError, text

# What a release names; the import package and the distribution are derived from it.
NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")


@dataclass(frozen=True)
class Names:
    """The names of one strategy package, all derived from the one the release uses."""

    name: str  # the entry point in quantshift.strategies: what a release manifest's strategy.name says
    package: str  # the import package, under src/
    distribution: str  # the name pip knows it by
    cls: str  # the strategy's class

    @classmethod
    def of(cls, name: str) -> Names:
        """The names for `name` (InputError, one line, when it cannot name a strategy package)."""
        if not NAME.fullmatch(name):
            raise InputError(
                f"strategy name {name!r} is not valid: 2 to 40 lowercase letters, digits and underscores, starting with a letter (e.g. breakout)"
            )
        if name.endswith("_"):
            # the distribution name (quantshift-strategy-NAME with - for _) must end in a letter or digit
            raise InputError(f"strategy name {name!r} must not end with an underscore (e.g. {name.rstrip('_')})")
        camel = "".join(part.capitalize() for part in name.split("_"))
        return cls(
            name=name,
            package=f"qs_strategy_{name}",
            distribution=f"quantshift-strategy-{name.replace('_', '-')}",
            # the suffix keeps it clear of the names the module imports (a strategy named `bar` or `signal`)
            cls=camel if camel.endswith("Strategy") else f"{camel}Strategy",
        )


def new(name: str, parent: Path) -> Path:
    """Scaffold the strategy package `name` in parent/name and return that directory. InputError (one line,
    nothing written) for a bad or installed name, a missing parent or an existing target; UserError when
    the files cannot be written."""
    from quantshift_bot.strategy import GROUP, available

    names = Names.of(name)
    installed = available().get(name)
    if installed is not None:
        raise InputError(
            f"strategy {name!r} is already installed (entry point {name} = {installed.value} in group {GROUP}): choose another name"
        )
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(f"{parent} {what}: give --dir an existing directory to create {name}/ in")
    target = parent / name
    if os.path.lexists(target):
        raise InputError(f"{target} already exists: refusing to overwrite it (choose another name or --dir)")
    files = render(names)
    try:
        target.mkdir()  # exclusive: another process that created it since the check above wins
    except FileExistsError:
        raise InputError(f"{target} already exists: refusing to overwrite it (choose another name or --dir)") from None
    except OSError as err:
        raise UserError(f"cannot create {target}: {err.strerror}") from None
    try:
        for rel, content in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    except OSError as err:
        shutil.rmtree(target, ignore_errors=True)  # ours alone: created exclusively just above
        raise UserError(f"cannot write the strategy package {target}: {err.strerror}") from None
    return target


def render(names: Names) -> dict[str, str]:
    """The package's files, path relative to its directory -> content."""
    fields = {"name": names.name, "package": names.package, "distribution": names.distribution, "cls": names.cls}
    return {
        "pyproject.toml": Template(_PYPROJECT).substitute(fields),
        f"src/{names.package}/__init__.py": Template(_STRATEGY).substitute(fields),
        "tests/test_strategy.py": Template(_TESTS).substitute(fields),
        "README.md": Template(_README).substitute(fields),
    }


def register_new(actions: Any) -> None:
    """Add `new` to the `strategy` command group (`actions`: what its parser's add_subparsers returned)."""
    p = actions.add_parser(
        "new",
        help="scaffold a strategy package of your own: a working breakout, its tests, pyproject.toml, README",
        description="Create DIR/NAME: a strategy package (entry point NAME in quantshift.strategies) that passes "
        "its own tests and the bot's contract check; edit it into your strategy. Never overwrites anything.",
    )
    p.add_argument("name", metavar="NAME", help="the strategy's name, as a release manifest names it (e.g. breakout)")
    p.add_argument("--dir", type=text, default=".", help="the existing directory to create NAME/ in (default: the current one)")
    p.set_defaults(func=_new)


def _new(args: argparse.Namespace) -> int:
    target = new(args.name, Path(args.dir))
    print(target)
    print(
        f"created the strategy package {target}: test it with `cd {target} && python -m pytest`, "
        f"then name it in a release manifest ({target / 'README.md'} says how)",
        file=sys.stderr,
    )
    return EXIT_OK


# --- the package's files (string.Template: ${name}, ${package}, ${distribution}, ${cls}) ---

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "${distribution}"
version = "0.1.0"
description = "The QuantShift strategy ${name}"
readme = "README.md"
requires-python = ">=3.11"
# No dependency on the bot runtime (the `quantshift_bot` package: quantshift_bot.models and the strategy contract): the
# QuantShift release that runs this strategy provides it. List here only what the strategy itself imports.
dependencies = []

[project.optional-dependencies]
test = ["pytest>=7"]

# How the bot finds the strategy: a release manifest's strategy.name is the name on the left.
[project.entry-points."quantshift.strategies"]
${name} = "${package}:make"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]  # `python -m pytest` works without installing the package first
"""

_STRATEGY = '''\
"""${name}: a QuantShift strategy, scaffolded as a breakout by `quantshift strategy new`. Make it yours.

Long when the latest close breaks above the highest high of the `entry_bars` bars before it; out when it
breaks below the lowest low of the `exit_bars` bars before it, or at the protective stop or target.

The contract every strategy keeps (STRATEGY.md at the root of the QuantShift repository has it in full;
`quantshift_bot.strategy.check` tests it, and the bot runs that check before it trades):
- the bot finds the strategy through the entry point `${name}` in the group `quantshift.strategies`
  (pyproject.toml), which names `make`: `make(params)` gets the release manifest's `params` (numbers)
  and raises ValueError for a name it does not know or a value it cannot use;
- `warmup` is the number of bars needed before the first signal: with fewer, `decide` returns None;
- `decide(symbol, bars, position)` gets the symbol's latest completed 1-minute bars, oldest first, and
  the bot's position in it (None when flat), and returns a Signal for the latest bar, or None. The same
  inputs give the same answer: no clock, no randomness, no state kept between calls;
- `protection(entry)` gives the protective stop (below `entry`) and target (above it) of a long position
  entered at `entry`, or None for either: the bot applies them to positions it adopts from the broker.
The same object runs unchanged in paper, shadow, canary, live and replay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from quantshift_bot.models import Bar, Position, Signal

# What a release manifest's `params` may set, and the value of each one it leaves out.
DEFAULTS: Mapping[str, float] = {
    "entry_bars": 20,  # breakout: a close above the highest high of this many bars before it
    "exit_bars": 10,  # breakdown: a close below the lowest low of this many bars before it
    "stop_loss": 0.02,  # the protective stop, a fraction below entry (0.02: 2 % below)
    "take_profit": 0.04,  # the target, a fraction above entry
}


def make(params: Mapping[str, float]) -> ${cls}:
    """The strategy with a release's parameters, the defaults for the rest (the entry point names this).
    ValueError naming the parameter for a name it does not take or a value out of range."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}: ${name} takes {', '.join(DEFAULTS)}")
    values = {**DEFAULTS, **params}
    return ${cls}(
        entry_bars=_bars(values, "entry_bars"),
        exit_bars=_bars(values, "exit_bars"),
        stop_loss=_between(values, "stop_loss", 0, 1),
        take_profit=_between(values, "take_profit", 0, 10),
    )


@dataclass(frozen=True)
class ${cls}:
    """The breakout. Frozen: it keeps nothing between calls, so the same bars always give the same signal."""

    entry_bars: int
    exit_bars: int
    stop_loss: float
    take_profit: float

    @property
    def warmup(self) -> int:
        """The bars `decide` needs: the latest one and the longer channel before it."""
        return max(self.entry_bars, self.exit_bars) + 1

    def protection(self, entry: float) -> tuple[float | None, float | None]:
        """The protective stop and target of a long position entered at `entry`."""
        return round(entry * (1 - self.stop_loss), 6), round(entry * (1 + self.take_profit), 6)

    def decide(self, symbol: str, bars: Sequence[Bar], position: Position | None) -> Signal | None:
        """Flat: buy on a breakout, with its stop and target. Holding: sell at the stop, the target or a breakdown."""
        if len(bars) < self.warmup:
            return None
        last, before = bars[-1], bars[:-1]
        price = last.c
        if position is not None and position.qty > 0:
            if position.stop_loss is not None and price <= position.stop_loss:
                return Signal(symbol, "sell", price, f"stop {position.stop_loss:g} hit", last.t)
            if position.take_profit is not None and price >= position.take_profit:
                return Signal(symbol, "sell", price, f"target {position.take_profit:g} hit", last.t)
            low = min(bar.l for bar in before[-self.exit_bars :])
            if price < low:
                return Signal(symbol, "sell", price, f"close {price:g} below the {self.exit_bars}-bar low {low:g}", last.t)
            return None
        high = max(bar.h for bar in before[-self.entry_bars :])
        if price > high:
            stop, target = self.protection(price)
            return Signal(symbol, "buy", price, f"close {price:g} above the {self.entry_bars}-bar high {high:g}", last.t, stop, target)
        return None


def _number(values: Mapping[str, float], key: str) -> float:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


def _bars(values: Mapping[str, float], key: str) -> int:
    value = _number(values, key)
    if value < 1 or value != int(value):
        raise ValueError(f"{key} must be a whole number of bars >= 1, got {value:g}")
    return int(value)


def _between(values: Mapping[str, float], key: str, low: float, high: float) -> float:
    value = _number(values, key)
    if not low < value < high:
        raise ValueError(f"{key} must be more than {low:g} and less than {high:g}, got {value:g}")
    return value
'''

_TESTS = '''\
"""The strategy's own tests: the bot's contract, its parameters, and what it does on bars made to trigger
it. Run them with `python -m pytest` in the package directory, in a venv that has the bot runtime."""

from __future__ import annotations

import pytest
from ${package} import make

from quantshift_bot.models import Bar, Position, Signal
from quantshift_bot.strategy import check

NAME = "${name}"
LOOKBACK = 60  # the bars the bot gives `decide` by default (QS_BARS_LOOKBACK)
PARAMS = {"entry_bars": 5, "exit_bars": 3, "stop_loss": 0.05, "take_profit": 0.10}
T0 = 1_767_623_400  # a market minute, unix seconds


def bar(i: int, close: float, high: float | None = None, low: float | None = None) -> Bar:
    """Bar `i` (minutes after T0) closing at `close`; its high and low 1 either side unless given."""
    return Bar(T0 + 60 * i, close, close + 1 if high is None else high, close - 1 if low is None else low, close, 1000.0)


def run(series: list[Bar]) -> list[tuple[int, Signal]]:
    """Feed the bars one at a time as the bot does, holding after a buy and flat after a sell:
    (index of the bar, signal) for every signal."""
    strategy = make(PARAMS)
    position: Position | None = None
    seen: list[tuple[int, Signal]] = []
    for i in range(len(series)):
        signal = strategy.decide("TEST", series[: i + 1], position)
        if signal is not None:
            seen.append((i, signal))
            bought = signal.side == "buy"
            position = Position("TEST", 1.0, signal.price, signal.stop_loss, signal.take_profit) if bought else None
    return seen


def test_the_contract_holds() -> None:
    check(make({}), NAME, LOOKBACK)
    check(make(PARAMS), NAME, LOOKBACK)


@pytest.mark.parametrize(
    "params",
    [
        {"entry_bar": 20},  # a misspelt name is refused, never ignored
        {"entry_bars": 0},
        {"entry_bars": 2.5},
        {"exit_bars": -3},
        {"stop_loss": 0},
        {"stop_loss": 1.0},
        {"take_profit": -0.01},
        {"take_profit": float("nan")},
    ],
)
def test_bad_parameters_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(params))):
        make(params)


def test_a_breakout_buys_and_a_breakdown_sells() -> None:
    series = [bar(i, 100.0) for i in range(5)]  # highs 101, lows 99
    series.append(bar(5, 101.0))  # at the 5-bar high, not above it: no breakout
    series.append(bar(6, 102.5))  # above the 5-bar high (102): buy
    series += [bar(i, 103.0) for i in (7, 8, 9)]  # lows 102
    series.append(bar(10, 101.0))  # below the 3-bar low, above the stop: sell
    seen = run(series)
    assert [(i, s.side, s.price) for i, s in seen] == [(6, "buy", 102.5), (10, "sell", 101.0)]
    buy = seen[0][1]
    assert buy.bar_t == series[6].t
    assert (buy.stop_loss, buy.take_profit) == make(PARAMS).protection(102.5) == (97.375, 112.75)


@pytest.mark.parametrize("close", [98.5, 111.0])  # through the stop (99), through the target (110)
def test_the_stop_and_the_target_sell(close: float) -> None:
    series = [bar(i, 100.0, high=112.0, low=97.0) for i in range(6)] + [bar(6, close, high=112.0, low=97.0)]
    held = Position("TEST", 1.0, 100.0, 99.0, 110.0)
    signal = make(PARAMS).decide("TEST", series, held)
    assert signal is not None and (signal.side, signal.price) == ("sell", close)
    assert make(PARAMS).decide("TEST", series[:-1], held) is None  # inside the channel, stop and target: hold


def test_no_signal_before_warmup() -> None:
    strategy = make(PARAMS)
    assert strategy.warmup == PARAMS["entry_bars"] + 1  # the breakout bar and the full channel before it
    rising = [bar(i, 100.0 + 2 * i) for i in range(strategy.warmup + 3)]  # every close above every earlier high
    for n in range(1, strategy.warmup):
        assert strategy.decide("TEST", rising[:n], None) is None, f"a signal with {n} bar(s)"
    first = strategy.decide("TEST", rising[: strategy.warmup], None)
    assert first is not None and first.side == "buy"  # as soon as it has its bars
'''

_README = """\
# ${name}

A QuantShift strategy: the entry point `${name}` in the group `quantshift.strategies`, whose factory is
`${package}.make` (`src/${package}/__init__.py`), in the distribution `${distribution}`.
It starts as a breakout; make it yours. The contract it must keep (inputs, determinism, warm-up,
protection) is in `STRATEGY.md` at the root of the QuantShift repository and in the module's docstring.

## Parameters

| name | default | meaning |
|---|---|---|
| `entry_bars` | 20 | buy when the close is above the highest high of this many bars before it |
| `exit_bars` | 10 | sell when the close is below the lowest low of this many bars before it |
| `stop_loss` | 0.02 | the protective stop, a fraction below entry |
| `take_profit` | 0.04 | the target, a fraction above entry |

An unknown name or a value out of range is refused (ValueError): the bot will not start with it.

## Test

In the QuantShift venv (it provides the bot runtime, the `bot` package these tests import):

```sh
cd ${name}
python -m pytest          # or, from the directory above: python -m pytest ${name}
```

pytest finds the package in `src/` by itself (`pythonpath` in pyproject.toml). Keep the tests passing
and add your own as the strategy changes: a crafted series of bars and the signals it must give.

## Name it in a release

In the release manifest (`package` is relative to the manifest; `params` override the defaults):

```yaml
strategy: {name: ${name}, package: ./${name}, params: {entry_bars: 20, exit_bars: 10}}
```

The release builds the package into its wheelhouse; the bot runtime comes with the release, so the
package lists no dependency on it.

## Check

```sh
quantshift strategy check release.yml
```

builds the release that manifest describes, loads the strategy from it with its parameters and runs
the bot's contract check (exit 2 when it breaks): the same check the bot runs when it starts and the
controller runs before a release is copied anywhere.
"""
