"""Logging setup and the access log, whose fields are escaped so no request can forge lines."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

TRACE = 5  # below DEBUG: every protocol event
logging.addLevelName(TRACE, "TRACE")

error_logger = logging.getLogger("asgi_server.error")
access_logger = logging.getLogger("asgi_server.access")

_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}
# Control characters (C0, DEL, C1), quotes and backslashes: a log line must stay one line and
# its quoted fields must stay parseable.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\" + char if char in '"\\' else f"\\x{ord(char):02x}"


def escape(value: str) -> str:
    """``value`` with control characters, quotes and backslashes escaped."""
    return _UNSAFE.sub(_escape_char, value)


def configure_logging(level: str) -> None:
    """Send the server's logs to stderr at ``level`` ('critical' ... 'trace')."""
    numeric = _LEVELS[level]
    parent = logging.getLogger("asgi_server")
    if not any(getattr(handler, "_crossway", False) for handler in parent.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._crossway = True  # type: ignore[attr-defined]
        parent.addHandler(handler)
    parent.setLevel(numeric)


def _peer_and_target(scope: dict[str, Any]) -> tuple[str, str]:
    """The scope's client and request target (path and query), escaped for a log line."""
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    target = scope["raw_path"]
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    return escape(peer), escape(target.decode("latin-1"))


def access_line(scope: dict[str, Any], status: int, started_at: float) -> str:
    """One access-log line: client, method, path and query, version, status, duration."""
    peer, target = _peer_and_target(scope)
    duration_ms = (time.monotonic() - started_at) * 1000
    return '{} - "{} {} HTTP/{}" {} {:.1f}ms'.format(
        peer, escape(scope["method"]), target, scope["http_version"], status, duration_ms
    )


def websocket_line(scope: dict[str, Any], outcome: str) -> str:
    """An access-log line of a WebSocket, as uvicorn writes them: ``outcome`` is
    ``[accepted]``, a refusal's status code, or ``[closed CODE]``."""
    peer, target = _peer_and_target(scope)
    return f'{peer} - "WebSocket {target}" {outcome}'
