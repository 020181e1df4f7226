"""A release manifest: what a release is and how risky, declared next to the code it ships.

release: 2026.11.24-1        # the id (directory under releases/ on the hosts)
risk_class: medium           # low | medium | high: decides the stages and soak it must pass
description: wider stops on NVDA   # optional
revision: 3f2c1a9            # optional, the source revision
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.errors import InputError

# The release id's one definition on the controller; the bot role checks hosts' input against the same
# pattern (roles/quantshift_bot/vars/main.yml: quantshift_bot_release_pattern, pinned equal by a test).
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RISK_CLASSES = ("low", "medium", "high")
KEYS = {"release", "risk_class", "description", "revision"}


class ManifestError(InputError):
    """The manifest cannot be read or is not a valid one; the message names every problem on one line."""


@dataclass(frozen=True)
class Manifest:
    release: str
    risk_class: str
    description: str = ""
    revision: str = "unknown"


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
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return Manifest(str(release), str(risk), str(doc.get("description", "")), str(doc.get("revision", "unknown")))
