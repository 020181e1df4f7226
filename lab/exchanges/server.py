"""Run the lab's exchanges in the foreground: `python -m lab.exchanges` (the lab starts it for you).

One market and clock shared by the Alpaca-compatible HTTP API and the Coinbase-compatible HTTPS API,
and the webhook receiver that keeps the notifications sent to it; all served on loopback and, when the lab bridge exists, on the bridge's own address for the containers.
"""

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
from typing import Any

from lab import pki, settings
from lab.exchanges.alpaca import AlpacaApi
from lab.exchanges.market import Clock, Market
from lab.exchanges.state import Exchange
from lab.httpd import ApiError, JsonServer
from lab.webhook_receiver import WebhookReceiver


def _alpaca_error(err: ApiError) -> dict[str, object]:
    return {"code": err.status * 100000 + 1, "message": err.message}


def _keys(account: dict[str, Any]) -> list[dict[str, Any]]:
    """An account's API keys: its own and, in labs made since it existed, the standby host's."""
    return [account] + ([account["standby"]] if account.get("standby") else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.exchanges", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--bind", action="append", default=[], help="address to serve on (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    lab = dataclasses.replace(settings.from_env(), state_dir=args.state_dir)
    conf = json.loads((lab.state_dir / "exchanges.json").read_text())
    csv_path = os.environ.get("QUANTSHIFT_LAB_PRICES_CSV")
    market = Market(seed=int(os.environ.get("QUANTSHIFT_LAB_MARKET_SEED", "42")), csv_path=Path(csv_path) if csv_path else None)
    clock = Clock(speed=float(os.environ.get("QUANTSHIFT_LAB_MARKET_SPEED", "60")))
    servers: list[JsonServer] = []

    alpaca_ex = Exchange(market, clock, {name: acct["cash"] for name, acct in conf["alpaca"].items()})
    alpaca_keys = {k["key_id"]: (k["secret_key"], name) for name, a in conf["alpaca"].items() for k in _keys(a)}
    alpaca = AlpacaApi(alpaca_ex, alpaca_keys, conf["admin_token"])
    for host in args.bind or ["127.0.0.1"]:
        servers.append(
            JsonServer((host, lab.alpaca_port), alpaca.router, alpaca.authenticate, envelope=lambda d: d, error_body=_alpaca_error)
        )

    from lab.exchanges.coinbase import CoinbaseApi

    cert, key = pki.issue_server_cert(lab.pki_dir, "exchange", ["127.0.0.1", "localhost", str(lab.gateway)])
    coinbase_ex = Exchange(market, clock, {name: acct["cash"] for name, acct in conf["coinbase"].items()})
    coinbase_keys = {k["key_name"]: (k["public_key"], name) for name, a in conf["coinbase"].items() for k in _keys(a)}
    coinbase = CoinbaseApi(coinbase_ex, coinbase_keys, conf["admin_token"])
    for host in args.bind or ["127.0.0.1"]:
        server = JsonServer(
            (host, lab.coinbase_port), coinbase.router, coinbase.authenticate, envelope=lambda d: d, error_body=coinbase.error_body
        )
        server.use_tls(str(cert), str(key))
        servers.append(server)

    receiver = WebhookReceiver(conf["admin_token"])
    for host in args.bind or ["127.0.0.1"]:
        servers.append(JsonServer((host, lab.webhook_port), receiver.router, receiver.authenticate, envelope=lambda d: d))

    def stop(signum: int, frame: FrameType | None) -> None:
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}) for s in servers]
    for t in threads:
        t.start()
    print(
        json.dumps({"alpaca": lab.alpaca_port, "coinbase": lab.coinbase_port, "webhook": lab.webhook_port, "bind": args.bind}), flush=True
    )
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
