"""A small threaded HTTPS JSON server with a route table, shared by the lab's API servers."""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger("lab.httpd")


class ApiError(Exception):
    """An error answer: the status line carries `message`, as Proxmox does; `errors` names bad parameters."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    cookies: dict[str, str]
    body: bytes = b""
    user: str = ""
    principal: str = ""  # which credential authenticated the request (an API key id or name)
    vars: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Any]


@dataclass
class Reply:
    """A handler's answer when it is not a plain 200 with a JSON body (204, 207, ...)."""

    status: int
    body: Any = None
    empty: bool = False


class Router:
    """Maps (method, path pattern) to handlers; `{name}` in a pattern matches one path segment."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.prefix + pattern) + "/?$")

        def add(fn: Handler) -> Handler:
            self.routes.append((method, regex, fn))
            return fn

        return add

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        for m, regex, fn in self.routes:
            match = regex.match(path)
            if match and m == method:
                return fn, {k: unquote(v) for k, v in match.groupdict().items()}
        raise ApiError(501, f"Method '{method} {path}' not implemented")


def _parse_body(headers: dict[str, str], body: bytes) -> dict[str, str]:
    if not body:
        return {}
    ctype = headers.get("content-type", "")
    if "json" in ctype:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ApiError(400, "JSON body must be an object")
        return {
            k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else str(int(v) if isinstance(v, bool) else v)
            for k, v in data.items()
        }
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


class JsonServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        addr: tuple[str, int],
        router: Router,
        authenticate: Callable[[Request], None] | None,
        envelope: Callable[[Any], Any] = lambda data: {"data": data},
        error_body: Callable[[ApiError], Any] | None = None,
    ) -> None:
        self.router = router
        self.authenticate = authenticate
        self.envelope = envelope
        self.error_body = error_body or (
            lambda e: {"data": None, "errors": e.errors} if e.errors else {"data": None, "message": e.message + "\n"}
        )
        super().__init__(addr, _RequestHandler)

    def use_tls(self, certfile: str, keyfile: str) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(certfile, keyfile)
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the worker thread, so a slow client never blocks accept().
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(30)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without TCP_NODELAY each answer waits 40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: JsonServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _handle(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        cookies: dict[str, str] = {}
        if "cookie" in headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(headers["cookie"])
            cookies = {k: unquote(m.value) for k, m in jar.items()}
        status, payload, reason = 200, None, "OK"
        try:
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            params.update(_parse_body(headers, body))
            req = Request(self.command, url.path, params, headers, cookies, body)
            handler, req.vars = self.server.router.resolve(self.command, url.path)
            if self.server.authenticate is not None and not getattr(handler, "public", False):
                self.server.authenticate(req)
            result = handler(req)
            if isinstance(result, Reply):
                status, reason = result.status, HTTPStatus(result.status).phrase
                payload = None if result.empty else self.server.envelope(result.body)
            else:
                payload = self.server.envelope(result)
        except ApiError as err:
            status, reason = err.status, err.message
            if err.errors:
                reason = "Parameter verification failed."
            payload = self.server.error_body(err)
        except Exception as err:  # a bug in the lab must answer 500, not drop the connection
            log.exception("unhandled error on %s %s", self.command, url.path)
            status, reason = 500, f"internal error: {err}"
            payload = {"data": None, "message": reason}
        data = b"" if payload is None and status == 204 else json.dumps(payload).encode()
        reason = reason.replace("\n", " ").strip().encode("latin-1", "replace").decode("latin-1")
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        log.info("%s %s %d %.1fms", self.command, url.path, status, (time.monotonic() - started) * 1000)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def public(fn: Handler) -> Handler:
    """Mark a handler that answers without authentication (login, version probes)."""
    fn.public = True  # type: ignore[attr-defined]
    return fn
