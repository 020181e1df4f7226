"""The one mark of an error the operator can act on: `UserError`. The `quantshift` and `python -m quantshift_bot`
commands print such an error as one line (no traceback) and exit non-zero; anything else is a bug.
The errors of the bot's settings, the spec, provisioning and the audit log derive from it; the lab, which
stands for the outside world and imports nothing of ours, has its own lab.errors.LabError, and the
command treats both alike.

Also here: the exit codes every command shares, and the argument types (argparse `type=`) that refuse a
bad option value with one line naming it, before the command does anything."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

# The exit codes of every `quantshift` command (and `python -m quantshift_bot`); the README's table lists them.
EXIT_OK = 0  # done; or the check's answer is yes (gate passed, inside the window, nothing to change...)
EXIT_ERROR = 1  # it could not be done: a service unreachable, the deploy lock held, an operation failed
EXIT_USAGE = 2  # what was given is invalid: an option, an argument, or the file or setting it names
EXIT_NO = 3  # the check ran and its answer is no: gate failed, outside the window, changes pending...
EXIT_INCONCLUSIVE = 4  # the check ran but cannot answer yet (too little data); never a yes
EXIT_INTERRUPTED = 130  # Ctrl-C


class UserError(Exception):
    """A problem in what the operator gave or in the world outside (a bad setting, a host that is not
    there): the message says what and what to do. The command exits EXIT_ERROR."""


class InputError(UserError, ValueError):
    """What the operator gave is invalid (a file's content, a setting): fixing the input is the only way
    on, retrying will not help. The command exits EXIT_USAGE."""


def exit_code(err: BaseException) -> int:
    """The exit code for an error the operator can act on."""
    return EXIT_USAGE if isinstance(err, InputError) else EXIT_ERROR


class Parser(argparse.ArgumentParser):
    """A usage error is one line on stderr, naming the command and the problem, and exit EXIT_USAGE (the
    usage itself is one `--help` away). The parsers of its subcommands are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


# --- argument types: each returns the parsed value or raises ArgumentTypeError naming the problem ---


def _number(raw: str, convert: Callable[[str], float], what: str) -> float:
    try:
        value = convert(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {raw!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {raw!r}")
    return value


def float_in(
    low: float | None = None, high: float | None = None, *, above: float | None = None, below: float | None = None
) -> Callable[[str], float]:
    """A finite float within [low, high] (an end None: no bound), and strictly between `above` and `below`."""

    def parse(raw: str) -> float:
        value = _number(raw, float, "a number")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {raw}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be less than {below:g}, got {raw}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = [f">= {low:g}"] if low is not None else []
            bounds += [f"<= {high:g}"] if high is not None else []
            raise argparse.ArgumentTypeError(f"must be {' and '.join(bounds)}, got {raw}")
        return value

    parse.__name__ = "number"
    return parse


def int_from(low: int) -> Callable[[str], int]:
    """A whole number >= `low`."""

    def parse(raw: str) -> int:
        value = int(_number(raw, int, "a whole number"))
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {raw}")
        return value

    parse.__name__ = "whole number"
    return parse


def fraction(raw: str) -> float:
    """A ratio from 0 to 1 (0.05 is 5 %)."""
    return float_in(0.0, 1.0)(raw)


def parse_time(raw: str) -> dt.datetime:
    """An ISO 8601 time with a zone ('Z' allowed), as an aware datetime; ValueError naming the problem."""
    text = raw.strip()
    try:
        value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {raw!r} (e.g. 2026-11-24T22:00:00+00:00)") from None
    if value.tzinfo is None:
        raise ValueError(f"{raw!r} needs a timezone, e.g. 2026-11-24T22:00:00+00:00")
    return value


def aware_time(raw: str) -> dt.datetime:
    """argparse type: an ISO 8601 time with a zone."""
    try:
        return parse_time(raw)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def epoch_or_time(raw: str) -> float:
    """argparse type: unix seconds, or an ISO 8601 time with a zone; returns unix seconds."""
    try:
        value = float(raw)
    except ValueError:
        return aware_time(raw).timestamp()
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a time: {raw!r} (unix seconds, or ISO 8601 with a zone)")
    return value


def http_url(raw: str) -> str:
    """argparse type: an http(s)://HOST[:PORT] base URL."""
    try:
        parts = urlsplit(raw.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a URL: {raw!r} ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s)://HOST:PORT URL: {raw!r}")
    return raw.strip()


def redis_url(raw: str) -> str:
    """argparse type: a redis://, rediss:// or unix:// URL (the message never repeats a password)."""
    text = raw.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a Redis URL ({err})") from None
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        return text
    if parts.scheme == "unix" and parts.path:
        return text
    shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else repr(text.split("@")[-1])
    raise argparse.ArgumentTypeError(f"not a Redis URL: {shown} (redis://[:PASSWORD@]HOST:PORT/DB, rediss://... or unix://PATH)")


def existing_file(raw: str) -> Path:
    """argparse type: a file that exists and can be read."""
    path = Path(raw)
    if not raw.strip():
        raise argparse.ArgumentTypeError("empty file name")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{raw}: no such file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{raw}: is a directory, not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{raw}: cannot read ({err.strerror})") from None
    return path


def output_file(raw: str) -> Path:
    """argparse type: a file to write: not a directory, in a directory that exists."""
    path = Path(raw)
    if not raw.strip():
        raise argparse.ArgumentTypeError("empty file name")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{raw}: is a directory, not a file")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"{raw}: no directory {path.absolute().parent}")
    return path


def state_file(raw: str) -> Path:
    """argparse type: a file the command keeps (created with its directories when missing): not a directory."""
    path = Path(raw)
    if not raw.strip():
        raise argparse.ArgumentTypeError("empty file name")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{raw}: is a directory, not a file")
    return path


def text(raw: str) -> str:
    """argparse type: any text but empty or blank."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return raw


def command_line(raw: str) -> list[str]:
    """argparse type: a command line (--ssh), split as a shell would; never empty."""
    try:
        argv = shlex.split(raw)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a command line ({err}): {raw!r}") from None
    if not argv:
        raise argparse.ArgumentTypeError("must not be empty (e.g. 'ssh -i KEY root@10.231.7.10')")
    return argv
