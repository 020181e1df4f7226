"""The one mark of an error the operator can act on: `UserError`. The `quantshift` and `python -m bot`
commands print such an error as one line (no traceback) and exit non-zero; anything else is a bug.
The errors of the bot's settings, the spec, provisioning and the audit log derive from it; the lab, which
stands for the outside world and imports nothing of ours, has its own lab.errors.LabError, and the
command treats both alike."""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the operator gave or in the world outside (a bad setting, a host that is not
    there): the message says what and what to do."""
