"""The lab's errors. The lab stands in for the outside world and imports nothing of ours, so its one
mark of an error the operator can act on is its own `LabError` (the rest of the code has
quantshift_bot.errors.UserError); the `quantshift` command prints either as one line, without a traceback."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something the operator must fix in or around the lab; the message says what."""
