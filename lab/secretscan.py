"""Scan files for the lab's secrets: proof that none leaked into a log, Ansible output, audit record,
report or journal. Findings name the file and which secret, never the secret itself."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MIN_LENGTH = 12  # shorter values (ports, names) are not secrets and would match by chance


def secrets_of(facts: dict[str, Any]) -> dict[str, str]:
    """Every secret in the lab's connection facts (`lab env --json`), by a name that is safe to print."""
    out: dict[str, str] = {}
    for key in ("token_secret", "readonly_token_secret", "password", "exchange_admin_token"):
        if facts.get(key):
            out[key] = str(facts[key])
    for account, keys in (facts.get("alpaca") or {}).items():
        for label, k in (("", keys), (" standby", keys.get("standby") or {})):
            if k.get("secret_key"):
                out[f"alpaca {account}{label} secret_key"] = str(k["secret_key"])
    for account, keys in (facts.get("coinbase") or {}).items():
        for label, k in (("", keys), (" standby", keys.get("standby") or {})):
            pem = str(k.get("private_key") or k.get("api_secret") or "")
            body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
            for n, line in enumerate(body):  # a PEM leaks line by line (logs wrap and escape newlines)
                out[f"coinbase {account}{label} private key line {n + 1}"] = line
    redis_url = str(facts.get("redis_url") or "")
    if "@" in redis_url and ":" in redis_url.split("@")[0]:
        out["redis password"] = redis_url.split("@")[0].rsplit(":", 1)[1]
    return {name: value for name, value in out.items() if len(value) >= MIN_LENGTH}


def files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            yield path


def scan(paths: Iterable[Path], secrets: dict[str, str]) -> tuple[int, int, list[tuple[str, str]]]:
    """(files scanned, bytes scanned, [(file, secret name)])."""
    count = size = 0
    found: list[tuple[str, str]] = []
    for path in files(paths):
        data = path.read_bytes()
        count, size = count + 1, size + len(data)
        text = data.decode("utf-8", "replace")
        found += [(str(path), name) for name, value in secrets.items() if value in text]
    return count, size, found
