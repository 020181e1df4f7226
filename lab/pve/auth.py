"""Authentication as Proxmox does it: API tokens, or a ticket cookie plus a CSRF token on writes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.httpd import ApiError, Request

TICKET_LIFETIME = 7200


@dataclass
class Token:
    value: str
    expire: int = 0  # unix time; 0 never expires
    privsep: int = 0
    comment: str = ""
    readonly: int = 0  # an audit-only token: every write is refused with 403


class Auth:
    """Users, tokens and ticket signing, persisted in a 0600 JSON file in the lab's state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        data = json.loads(path.read_text())
        self.passwords: dict[str, str] = data["passwords"]
        self.tokens: dict[str, Token] = {k: Token(**v) for k, v in data["tokens"].items()}
        self._key = bytes.fromhex(data["ticket_key"])

    @staticmethod
    def initialise(path: Path, user: str, token_name: str) -> None:
        """Write fresh credentials unless the file already exists."""
        if path.exists():
            return
        data = {
            "passwords": {user: secrets.token_urlsafe(18)},
            "tokens": {
                f"{user}!{token_name}": asdict(Token(value=_uuid())),
                f"{user}!readonly": asdict(Token(value=_uuid(), readonly=1, comment="audit only")),
            },
            "ticket_key": secrets.token_hex(32),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)

    def _persist(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {"passwords": self.passwords, "tokens": {k: asdict(v) for k, v in self.tokens.items()}, "ticket_key": self._key.hex()},
                fh,
                indent=1,
            )
        os.replace(tmp, self.path)

    # --- tickets -------------------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def login(self, username: str, password: str) -> dict[str, str]:
        """POST /access/ticket: a password, or a still-valid ticket to renew."""
        if "@" not in username:
            username += "@pam"
        expected = self.passwords.get(username)
        ok = expected is not None and hmac.compare_digest(expected, password)
        if not ok and password.startswith("PVE:"):
            ok = self.ticket_user(password) == username
        if not ok:
            raise ApiError(401, "authentication failure")
        stamp = f"{int(time.time()):08X}"
        plain = f"PVE:{username}:{stamp}"
        return {
            "username": username,
            "ticket": f"{plain}::{self._sign(plain)}",
            "CSRFPreventionToken": f"{stamp}:{self._sign('csrf:' + username + ':' + stamp)}",
        }

    def ticket_user(self, ticket: str) -> str | None:
        plain, _, sig = ticket.partition("::")
        parts = plain.split(":")
        if len(parts) != 3 or not hmac.compare_digest(self._sign(plain), sig):
            return None
        if time.time() - int(parts[2], 16) > TICKET_LIFETIME:
            return None
        return parts[1]

    def _csrf_ok(self, user: str, token: str) -> bool:
        stamp, _, sig = token.partition(":")
        return bool(stamp) and hmac.compare_digest(self._sign("csrf:" + user + ":" + stamp), sig)

    # --- request authentication --------------------------------------------------------------------
    def authenticate(self, req: Request) -> None:
        """Set req.user or answer 401/403 as Proxmox would."""
        header = req.headers.get("authorization", "")
        if header.startswith("PVEAPIToken="):
            full, sep, value = header[len("PVEAPIToken=") :].partition("=")
            token = self.tokens.get(full)
            if not sep or token is None or not hmac.compare_digest(token.value, value.strip()):
                raise ApiError(401, "invalid token value!")
            if token.expire and token.expire < time.time():
                raise ApiError(401, "token expired")
            if token.readonly and req.method != "GET":
                raise ApiError(403, f"Permission check failed ({req.path}, VM.Allocate)")
            req.user = full
            return
        ticket = req.cookies.get("PVEAuthCookie")
        if not ticket:
            raise ApiError(401, "No ticket")
        user = self.ticket_user(ticket)
        if user is None:
            raise ApiError(401, "invalid ticket")
        if req.method != "GET" and not self._csrf_ok(user, req.headers.get("csrfpreventiontoken", "")):
            raise ApiError(401, "Permission denied - invalid csrf token")
        req.user = user

    # --- token management (POST/DELETE /access/users/{user}/token/{name}) ------------------------
    def add_token(self, user: str, name: str, expire: int, privsep: int, comment: str) -> dict[str, object]:
        full = f"{user}!{name}"
        with self._lock:
            if user not in self.passwords:
                raise ApiError(500, f"no such user ('{user}')")
            if full in self.tokens:
                raise ApiError(500, f"Token '{name}' for user '{user}' already exists.")
            token = Token(value=_uuid(), expire=expire, privsep=privsep, comment=comment)
            self.tokens[full] = token
            self._persist()
        return {"full-tokenid": full, "value": token.value, "info": {"expire": expire, "privsep": privsep, "comment": comment}}

    def remove_token(self, user: str, name: str) -> None:
        with self._lock:
            if self.tokens.pop(f"{user}!{name}", None) is None:
                raise ApiError(500, f"no such token '{name}' for user '{user}'")
            self._persist()

    def list_tokens(self, user: str) -> list[dict[str, object]]:
        return [
            {"tokenid": full.split("!", 1)[1], "expire": t.expire, "privsep": t.privsep, "comment": t.comment}
            for full, t in self.tokens.items()
            if full.split("!", 1)[0] == user
        ]


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())
