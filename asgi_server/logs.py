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


# The three packages of the distribution log under their own names; asgi-server configures them
# all by name (asgi_server imports neither of the others).
PACKAGE_LOGGERS = ("asgi_server", "channel_layers", "consumers")
# One format for every line, whatever the transport: the pid tells the workers apart.
LOG_FORMAT = "%(levelname)s [%(process)d] %(origin)s%(message)s"


class LogFormatter(logging.Formatter):
    """``LOG_FORMAT``: the server's own lines go unnamed, the other packages' lines name their
    logger (``INFO [4242] channel_layers.redis: reconnected ...``)."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record, with ``origin`` set to its logger's name unless it is the server's."""
        server = record.name == "asgi_server" or record.name.startswith("asgi_server.")
        record.origin = "" if server else record.name + ": "
        return super().format(record)


class LogConfigError(Exception):
    """The --log-config file cannot be read or applied; the message says why."""


def configure_logging(level: str, log_config: str | None = None) -> None:
    """Send the three packages' logs to stderr at ``level`` ('critical' ... 'trace', any case),
    or, with ``log_config``, apply that file instead (see ``apply_log_config``)."""
    if log_config is not None:
        apply_log_config(log_config)
        return
    numeric = _LEVELS[level.lower()]
    for name in PACKAGE_LOGGERS:
        package = logging.getLogger(name)
        if not any(getattr(handler, "_crossway", False) for handler in package.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(LogFormatter())
            handler._crossway = True  # type: ignore[attr-defined]
            package.addHandler(handler)
        package.setLevel(numeric)


def apply_log_config(path: str) -> None:
    """Configure logging from ``path`` as uvicorn's --log-config does: a dictConfig as JSON
    (``.json``) or YAML (``.yaml``/``.yml``, when PyYAML is installed), else a fileConfig INI."""
    import logging.config

    try:
        if path.endswith(".json"):
            import json

            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped, unused-ignore]
            except ImportError:
                raise LogConfigError(
                    f"--log-config {path}: a YAML file needs PyYAML (pip install pyyaml);"
                    " or give the same dictConfig as JSON"
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            with open(path, encoding="utf-8") as file:  # fileConfig ignores a missing file
                logging.config.fileConfig(file, disable_existing_loggers=False)
    except LogConfigError:
        raise
    except Exception as exc:  # OSError, a JSON/YAML/INI syntax error, a bad dictConfig
        raise LogConfigError(f"--log-config {path}: {type(exc).__name__}: {exc}") from exc


def listen_url(address: Any, tls: bool = False) -> str:
    """How a listening address is logged on every transport: ``http://127.0.0.1:8000``,
    ``https://[::1]:8443`` or ``unix:/run/app.sock``."""
    if isinstance(address, str | bytes):
        return "unix:" + (address.decode() if isinstance(address, bytes) else address)
    if not isinstance(address, tuple):  # an address family without host and port
        return str(address)
    host, port, scheme = address[0], address[1], "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


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
