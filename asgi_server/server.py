"""Bind, serve, stop: the server's life from startup to a graceful shutdown.

Programmatic use (tests, other transports, a supervisor of worker processes)::

    server = Server(config, app)          # app=None imports config.app
    await server.serve()                  # or serve(sockets=[...]) to share listening sockets
    # elsewhere: await server.started.wait(); server.bound_addresses; server.should_exit = True

``Server.run()`` is the blocking entry point used by the CLI: it picks the event loop, installs
SIGINT/SIGTERM handlers and returns the process exit code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

from asgi_server.app_loader import AppLoadError, as_asgi3, load_app
from asgi_server.config import Config
from asgi_server.connection.timers import Deadlines
from asgi_server.lifespan import Lifespan
from asgi_server.logs import access_line, access_logger, error_logger, listen_url, websocket_line
from asgi_server.protocols.http11 import Limits
from asgi_server.proxy_headers import ProxyTrust
from asgi_server.tls import TLSConfigError, create_ssl_context
from asgi_server.transports.asyncio import ServerConnection

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence

    from asgi_server.connection.base import LiveConnection

EXIT_STARTUP_FAILED = 3


class Listener(Protocol):
    """A listening endpoint the server stops on shutdown (an asyncio.Server, a Twisted port)."""

    def close(self) -> None:
        """Stop accepting connections."""


def resolve_parser(name: str) -> str:
    """'auto' means httptools when it is importable, else h11."""
    if name != "auto":
        return name
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class ServerState:
    """What every connection shares: config, app, live connections and tasks, default headers.
    Connections see it as a ``connection.base.ServerContext``."""

    def __init__(self, config: Config, app: Any) -> None:
        self.config = config
        self.app = app
        self.logger = error_logger
        self.limits = Limits.from_config(config, resolve_parser(config.http))
        self.proxy_trust = ProxyTrust(config.forwarded_allow_ips) if config.proxy_headers else None
        self._trusted_peers: dict[str, bool] = {}
        self.access_log = config.access_log and access_logger.isEnabledFor(logging.INFO)
        self.connections: set[LiveConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.total_requests = 0
        self.max_requests_reached = False
        self.lifespan_state: dict[str, Any] = {}
        self.deadlines = Deadlines()  # the connections' shared timers
        self.loop: asyncio.AbstractEventLoop | None = None  # set by Server.serve
        self.sockname: tuple[str, int] | None = None  # set by Server._bind, when fixed
        self.default_headers: list[tuple[bytes, bytes]] = []
        self._fixed_headers = self._parse_fixed_headers()
        self.refresh_default_headers()

    def _parse_fixed_headers(self) -> list[tuple[bytes, bytes]]:
        headers = []
        if self.config.server_header:
            headers.append((b"server", b"server: crossway\r\n"))
        for item in self.config.headers:
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"--header {item!r} must look like 'name: value'.")
            lowered = name.strip().lower().encode("latin-1")
            line = f"{name.strip()}: {value.strip()}\r\n".encode("latin-1")
            headers = [header for header in headers if header[0] != lowered] + [(lowered, line)]
        return headers

    def refresh_default_headers(self) -> None:
        """Rebuild the default headers with the current date (called once a second)."""
        headers = list(self._fixed_headers)
        if self.config.date_header:
            date = formatdate(usegmt=True).encode("ascii")  # RFC 9110 §6.6.1, IMF-fixdate
            headers.append((b"date", b"date: " + date + b"\r\n"))
        # In place: connections keep a reference to this list rather than look it up per response.
        self.default_headers[:] = headers

    def trusted_proxy(self, peer: tuple[str, int] | None) -> ProxyTrust | None:
        """The ``ProxyTrust`` to apply to a new connection's requests, or None when proxy
        headers are off or ``peer`` may not send them. Memoized per address: parsing one costs
        ~6 us, a noticeable share of a connection that carries a single request."""
        trust = self.proxy_trust
        if trust is None or not peer:
            return None
        trusted = self._trusted_peers.get(peer[0])
        if trusted is None:
            trusted = trust.is_trusted(peer[0])
            if len(self._trusted_peers) >= 4096:  # bounded: many distinct clients
                self._trusted_peers.clear()
            self._trusted_peers[peer[0]] = trusted
        return trust if trusted else None

    def log_access(self, scope: dict[str, Any], status: int, started_at: float) -> None:
        """Write the access-log line of one response."""
        access_logger.info("%s", access_line(scope, status, started_at))

    def log_websocket(self, scope: dict[str, Any], outcome: str) -> None:
        """Write an access-log line of a WebSocket (accepted, refused with a status, closed)."""
        access_logger.info("%s", websocket_line(scope, outcome))


class Server:
    """The server: ``serve()`` runs until ``should_exit`` is set, then shuts down gracefully."""

    def __init__(self, config: Config, app: Any = None) -> None:
        self.config = config
        self.app = app
        self.logger = error_logger
        self.started = asyncio.Event()
        self.should_exit = False
        self.force_exit = False
        self.exit_code = 0
        self.bound_addresses: list[Any] = []
        self.ssl_context: ssl.SSLContext | None = None
        self.state: ServerState | None = None
        self._servers: list[Listener] = []

    async def serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Start up, serve until told to exit, shut down. Sets ``exit_code``."""
        try:
            app = as_asgi3(self.app) if self.app is not None else self._load()
        except AppLoadError as exc:
            self.logger.error("%s", exc)
            self.exit_code = EXIT_STARTUP_FAILED
            return
        if self.config.threads is not None:
            executor = ThreadPoolExecutor(self.config.threads, thread_name_prefix="asgi-sync")
            asyncio.get_running_loop().set_default_executor(executor)
        try:
            self.ssl_context = create_ssl_context(self.config)
        except TLSConfigError as exc:
            self.logger.error("%s", exc)
            self.exit_code = EXIT_STARTUP_FAILED
            return
        self.state = state = ServerState(self.config, app)
        state.loop = asyncio.get_running_loop()
        lifespan = Lifespan(app, self.config.lifespan, self.logger, state.lifespan_state)
        if not await lifespan.startup():
            self.exit_code = EXIT_STARTUP_FAILED
            return
        try:
            await self._bind(state, sockets)
        except OSError as exc:
            self.logger.error(
                "Could not bind: %s. Pick another --port or stop the other server.", exc
            )
            self.exit_code = EXIT_STARTUP_FAILED
            await lifespan.shutdown()
            return
        self.started.set()
        try:
            await self._main_loop(state)
        finally:
            await self._shutdown(state)
            await lifespan.shutdown()

    def _load(self) -> Any:
        config = self.config
        return load_app(config.app, factory=config.factory, app_dir=config.app_dir)

    async def _bind(self, state: ServerState, sockets: Sequence[socket.socket] | None) -> None:
        loop = asyncio.get_running_loop()
        config = self.config

        def factory() -> ServerConnection:
            return ServerConnection(state)

        tls: dict[str, Any] = {}
        if self.ssl_context is not None:
            tls = {"ssl": self.ssl_context, "ssl_handshake_timeout": config.timeout_tls_handshake}
        if sockets is None:
            if config.uds is not None:
                if os.path.exists(config.uds):
                    os.unlink(config.uds)
                listener = await loop.create_unix_server(
                    factory, path=config.uds, backlog=config.backlog, **tls
                )
                self._servers.append(listener)
            elif config.fd is not None:
                sock = socket.socket(fileno=config.fd)
                self._servers.append(
                    await loop.create_server(factory, sock=sock, backlog=config.backlog, **tls)
                )
            else:
                listener = await loop.create_server(
                    factory, host=config.host, port=config.port, backlog=config.backlog, **tls
                )
                self._servers.append(listener)
        else:
            for sock in sockets:
                listener = await loop.create_server(
                    factory, sock=sock, backlog=config.backlog, **tls
                )
                self._servers.append(listener)
        for bound in self._servers:
            for sock in getattr(bound, "sockets", ()):  # asyncio.Server's
                self.bound_addresses.append(sock.getsockname())
                self.logger.info("Serving on %s", _describe(sock, tls=bool(tls)))
        state.sockname = _fixed_sockname(self.bound_addresses)

    async def _main_loop(self, state: ServerState) -> None:
        # A coarse tick: cheap, and lets another thread (tests, a supervisor) set should_exit.
        last_second = int(time.time())
        while not self.should_exit:
            await asyncio.sleep(0.05)
            now = int(time.time())
            if now != last_second:
                last_second = now
                state.refresh_default_headers()
            if state.max_requests_reached:
                self.logger.info("Served --limit-max-requests requests; shutting down.")
                self.should_exit = True

    async def _shutdown(self, state: ServerState) -> None:
        """Stop accepting, close idle connections, wait for in-flight ones, then cancel."""
        self.logger.info("Shutting down")
        for listener in self._servers:
            listener.close()
        for connection in list(state.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.config.timeout_graceful_shutdown
        while (state.connections or state.tasks) and not self.force_exit:
            if time.monotonic() >= deadline:
                self.logger.warning("Graceful shutdown timed out; cancelling in-flight requests.")
                break
            await asyncio.sleep(0.02)
        for task in list(state.tasks):
            task.cancel()
        for connection in list(state.connections):
            connection.transport.abort()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=1.0)
        if self.config.uds is not None and os.path.exists(self.config.uds):
            os.unlink(self.config.uds)

    def handle_exit(self, sig: int | None = None) -> None:
        """First signal: graceful shutdown. Second: stop waiting for in-flight requests."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    def run(self, sockets: Sequence[socket.socket] | None = None) -> int:
        """Run on a fresh event loop (uvloop when chosen and installed); return the exit code."""
        return asyncio_run(self._run_with_signals(sockets), self.config.loop)

    async def _run_with_signals(self, sockets: Sequence[socket.socket] | None) -> int:
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig)
        await self.serve(sockets)
        return self.exit_code


def loop_factory(loop_name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The --loop choice: uvloop's for 'uvloop', and for 'auto' when installed; None means
    asyncio's own. The one place the choice is made (the Twisted transport asks here too)."""
    if loop_name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if loop_name == "uvloop":
                raise SystemExit("--loop uvloop needs uvloop: pip install uvloop") from None
        else:
            return uvloop.new_event_loop
    return None


def asyncio_run(coro: Any, loop_name: str) -> int:
    """``asyncio.run`` on the loop --loop chose (see ``loop_factory``)."""
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        result: int = runner.run(coro)
        return result


def _fixed_sockname(addresses: list[Any]) -> tuple[str, int] | None:
    """The local address of every accepted connection, when one listener bound to one IP
    address (not a wildcard) takes them all; else None (each connection asks its socket)."""
    if len(addresses) != 1 or not isinstance(addresses[0], tuple):
        return None
    host, port = addresses[0][:2]
    if host in ("0.0.0.0", "::", ""):
        return None
    return (str(host), int(port))


def _describe(sock: socket.socket, tls: bool = False) -> str:
    return listen_url(sock.getsockname(), tls)
