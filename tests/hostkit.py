"""The host-side tools (system Python scripts the bot role installs in /usr/local/lib/quantshift) loaded
as modules, with their helpers beside them as on a host."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests import ROOT

FILES = ROOT / "roles/quantshift_bot/files"
GUARD = FILES / "quantshift-guard.py"


def guard() -> ModuleType:
    """quantshift-guard.py as a module."""
    if str(FILES) not in sys.path:
        sys.path.insert(0, str(FILES))  # as on the host: its helpers sit next to it
    spec = importlib.util.spec_from_file_location("quantshift_guard", GUARD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
