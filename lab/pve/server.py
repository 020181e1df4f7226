"""Run the lab's Proxmox API in the foreground: `python -m lab.pve` (the lab starts it for you)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from lab import pki, settings
from lab.backends.base import Backend
from lab.backends.memory import MemoryBackend, check_vmid_fails
from lab.httpd import JsonServer
from lab.pve.api import PveApi
from lab.pve.auth import Auth
from lab.pve.store import Store


def make_backend(name: str, lab: settings.LabSettings) -> Backend:
    if name == "memory":
        return MemoryBackend(
            task_delay=float(os.environ.get("QUANTSHIFT_LAB_TASK_DELAY", "0")),
            fail_vmids=check_vmid_fails(os.environ.get("QUANTSHIFT_LAB_FAIL_VMIDS", "")),
        )
    from lab.backends.lxc import LxcBackend

    return LxcBackend(lab)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.pve", description=__doc__)
    parser.add_argument("--backend", choices=("memory", "lxc"), required=True)
    parser.add_argument("--state-dir", type=Path, help="the lab state directory (default: QUANTSHIFT_LAB_DIR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    lab = settings.from_env()
    if args.state_dir is not None:
        lab = dataclasses.replace(lab, state_dir=args.state_dir)
    cert, key = pki.issue_server_cert(lab.pki_dir, "pve", ["127.0.0.1", "localhost", str(lab.gateway)])
    store = Store(lab.state_dir / "pve.sqlite")
    api = PveApi(store, Auth(lab.state_dir / "secrets.json"), make_backend(args.backend, lab), lab)
    server = JsonServer((lab.host, lab.port), api.router, api.auth.authenticate)
    server.use_tls(str(cert), str(key))

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("lab.pve").info("listening on %s (backend %s)", lab.api_url, args.backend)
    print(json.dumps({"listening": lab.api_url, "backend": args.backend}), flush=True)
    server.serve_forever(poll_interval=0.2)
    api.pool.shutdown(wait=True, cancel_futures=False)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
