"""What the host-side tools (wait-healthy.py, quantshift-guard.py) read of a bot: its /healthz and its
unit's state. System Python, stdlib only; installed next to them in /usr/local/lib/quantshift."""

import json
import subprocess
import urllib.error
import urllib.request


def healthz(port):
    """A bot's /healthz on this host ({} when it does not answer); a 503 carries the document too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        try:
            return json.loads(err.read() or b"{}")
        except ValueError:
            return {}
    except (OSError, ValueError):
        return {}


def unit_state(unit):
    """(ActiveState, SubState, NRestarts) of a systemd unit."""
    out = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts", unit], capture_output=True, text=True, check=False
    ).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props.get("ActiveState", "unknown"), props.get("SubState", ""), int(props.get("NRestarts") or 0)
