"""A release manifest: what a release is and how risky, declared next to the code it ships.

release: 2026.11.24-1        # the id (directory under releases/ on the hosts)
risk_class: medium           # low | medium | high: decides the stages and soak it must pass
description: wider stops on NVDA   # optional
revision: 3f2c1a9            # optional, the source revision
strategy:                    # optional; default: the example ma_cross (strategies/ma_cross) with its defaults
  name: ma_trend             #   the entry point in quantshift.strategies the bots load
  package: ./strategies/ma_trend   # a directory to build (relative to the manifest), or a requirement: pkg==1.2.0
  params: {fast: 5, slow: 20}      #   numbers; a host's QS_STRATEGY_PARAMS still overrides
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from quantshift_bot.errors import InputError

# The release id's one definition on the controller; the bot role checks hosts' input against the same
# pattern (roles/quantshift_bot/vars/main.yml: quantshift_bot_release_pattern, pinned equal by a test).
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RISK_CLASSES = ("low", "medium", "high")
KEYS = {"release", "risk_class", "description", "revision", "strategy"}
STRATEGY_KEYS = {"name", "package", "params"}
STRATEGY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# The example every release carries unless its manifest names another (the repository's own package).
EXAMPLE_PACKAGE = Path(__file__).resolve().parent.parent / "strategies" / "ma_cross"


class ManifestError(InputError):
    """The manifest cannot be read or is not a valid one; the message names every problem on one line."""


@dataclass(frozen=True)
class StrategySpec:
    """The strategy a release carries: its entry point name, where its package comes from (an absolute
    directory to build, or a requirement), and its parameters."""

    name: str = "ma_cross"
    package: str = str(EXAMPLE_PACKAGE)
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    release: str
    risk_class: str
    description: str = ""
    revision: str = "unknown"
    strategy: StrategySpec = field(default_factory=StrategySpec)


def valid_release(release: object) -> bool:
    return isinstance(release, str) and RELEASE_ID.match(release) is not None


def release_problem(release: object) -> str:
    return f"release must be an id like 2026.11.24-1 (letters, digits, . _ -; at most 64), got {release!r}"


def load(path: Path) -> Manifest:
    """Read and check a manifest; every problem is named in one error."""
    import yaml  # here: the command line imports this module for its constants and must start fast

    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ManifestError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a text file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ManifestError(f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: a release manifest is a mapping with release and risk_class")
    problems = []
    unknown = sorted(set(map(str, doc)) - KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(KEYS))})")
    release = doc.get("release")
    if not valid_release(release):
        problems.append(release_problem(release))
    risk = doc.get("risk_class")
    if risk not in RISK_CLASSES:
        problems.append(f"risk_class must be one of {', '.join(RISK_CLASSES)}, got {risk!r}")
    for key in ("description", "revision"):
        if key in doc and not isinstance(doc[key], str | int | float):
            problems.append(f"{key} must be text")
    strategy = _strategy(doc.get("strategy"), path.parent, problems) if "strategy" in doc else StrategySpec()
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return Manifest(str(release), str(risk), str(doc.get("description", "")), str(doc.get("revision", "unknown")), strategy)


def _strategy(raw: object, base: Path, problems: list[str]) -> StrategySpec:
    """The manifest's strategy section; what is wrong goes to `problems`."""
    if not isinstance(raw, dict):
        problems.append("strategy must be a mapping with name, package and params")
        return StrategySpec()
    unknown = sorted(set(map(str, raw)) - STRATEGY_KEYS)
    if unknown:
        problems.append(f"strategy: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(STRATEGY_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not STRATEGY_NAME.match(name):
        problems.append(f"strategy.name must be the strategy's entry point name (letters, digits, _ . -), got {name!r}")
        name = ""
    package = raw.get("package")
    if not isinstance(package, str) or not package.strip():
        problems.append("strategy.package must be a directory to build (./path) or a requirement (name==version)")
        package = ""
    elif package.startswith((".", "/", "~")):
        where = (base / Path(package).expanduser()).resolve()
        if not (where / "pyproject.toml").is_file() and not (where / "setup.py").is_file():
            problems.append(f"strategy.package {package}: {where} is not a Python package directory (no pyproject.toml)")
        package = str(where)
    elif not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?\s*(==|~=|>=)\s*[A-Za-z0-9.*+!_-]+$", package):
        problems.append(f"strategy.package {package!r}: a requirement must pin a version (name==1.2.0); a directory starts with ./ or /")
    params = raw.get("params", {}) or {}
    if not isinstance(params, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in params.values()):
        problems.append(f"strategy.params must be a mapping of numbers, got {params!r}")
        params = {}
    return StrategySpec(name, package, {str(k): float(v) for k, v in params.items()})
