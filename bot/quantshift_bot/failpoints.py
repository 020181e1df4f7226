"""Named pause points for chaos tests on the lab: the bot stops itself where an outside pause would hurt.

`QS_FAILPOINTS=after_intent` makes the process send itself SIGSTOP the first time it reaches that
point, exactly as a frozen container, a suspended VM or a swap storm would stop it there; SIGCONT
resumes it. `hang_in_decision` instead blocks the trading loop for good at its first decision while
every other thread runs on, as a strategy stuck in a computation would. Nothing is armed unless the
variable names a point; the roles never set it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

POINTS = (
    "after_lease_check",  # an order decided, the lease valid on this process's clock, nothing written yet
    "after_intent",  # the order intent written (fenced) and the lease renewed, the order not yet sent
    "after_answer",  # the broker accepted the order and answered; nothing booked yet
    "after_tick",  # a tick finished
    "hang_in_decision",  # the loop blocks for good at its first decision (the process stays up)
)


class Failpoints:
    def __init__(self, names: tuple[str, ...], announce: Callable[[str], None] | None = None) -> None:
        self.armed = set(names)
        self.announce = announce

    def hit(self, name: str) -> None:
        """Stop this process here, once, if the point is armed."""
        if name not in self.armed:
            return
        self.armed.discard(name)
        if self.announce is not None:
            self.announce(name)
        if name.startswith("hang_"):
            threading.Event().wait()
        os.kill(os.getpid(), signal.SIGSTOP)
