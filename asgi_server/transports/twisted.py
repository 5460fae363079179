"""The Twisted shell: Twisted endpoints feeding the same connection handlers as the asyncio shell.

Daphne-style endpoint descriptions (``tcp:8000``, ``ssl:8443:privateKey=key.pem``,
``unix:/run/app.sock``, ``systemd:domain=INET:index=0``) are listened on with Twisted's
``serverFromString``, on an ``AsyncioSelectorReactor`` that runs on the server's asyncio loop. So
Twisted code (treq, autobahn, twisted.web resources) runs in the same process and loop as the
ASGI app, and every connection is served by the very ``ServerConnection`` of
``transports/asyncio.py`` and the drivers of ``connection/``: this module only adapts Twisted's
``ITransport`` to the small ``StreamTransport`` interface those handlers use, and Twisted's
producer/consumer flow control to their ``pause_writing`` / ``resume_writing``.

``run_on_reactor`` (the CLI path) installs the global reactor on a fresh loop before the app is
imported. A ``TwistedServer`` started on a loop that already runs (tests, embedding) uses that
global reactor when it is bound to the loop, else a private reactor on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import weakref
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import asyncioreactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLContextFactory,
    IProtocolNegotiationFactory,
    IPushProducer,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from asgi_server.logs import listen_url
from asgi_server.server import Server, loop_factory
from asgi_server.tls import alpn_protocols, openssl_tls_extension
from asgi_server.transports.asyncio import ServerConnection

if TYPE_CHECKING:
    from asgi_server.config import Config
    from asgi_server.connection.base import ServerContext

_private_reactors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)


def _address(address: Any) -> Any:
    """A Twisted address as asyncio's get_extra_info would give it."""
    if isinstance(address, IPv4Address | IPv6Address):
        return (address.host, address.port)
    if isinstance(address, UNIXAddress):
        name = address.name
        return name.decode() if isinstance(name, bytes) else (name or "")
    return None


class TransportAdapter:
    """A Twisted ``ITransport`` seen through the ``StreamTransport`` interface."""

    def __init__(self, transport: Any, tls: dict[str, Any] | None) -> None:
        self._transport = transport
        self._tls = tls
        self._closing = False

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer."""
        if not self._closing:
            self._transport.write(data)

    def close(self) -> None:
        """Close once the queued bytes are written."""
        if not self._closing:
            self._closing = True
            # Twisted's TLS layer defers its close while a producer is registered.
            self._transport.unregisterProducer()
            self._transport.loseConnection()

    def abort(self) -> None:
        """Close now."""
        self._closing = True
        self._transport.abortConnection()

    def is_closing(self) -> bool:
        """True once closed, aborted or lost."""
        return self._closing

    def connection_lost(self) -> None:
        """The connection is gone: no more writes."""
        self._closing = True

    def pause_reading(self) -> None:
        """Stop reading (the transport is the producer of our incoming bytes)."""
        if not self._closing:
            self._transport.pauseProducing()

    def resume_reading(self) -> None:
        """Read again."""
        if not self._closing:
            self._transport.resumeProducing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """'peername', 'sockname', 'sslcontext' (a marker) and 'asgi.tls', as the handlers ask."""
        if name == "peername":
            return _address(self._transport.getPeer())
        if name == "sockname":
            return _address(self._transport.getHost())
        if name == "sslcontext":
            return True if self._tls is not None else default
        if name == "asgi.tls":
            return self._tls
        if name == "alpn_protocol":
            protocol = getattr(self._transport, "negotiatedProtocol", None)
            return protocol.decode("ascii") if protocol else default
        return default


@implementer(IPushProducer)
class _WriteFlow:
    """Twisted tells a registered producer to pause when the peer reads slowly."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    def pauseProducing(self) -> None:
        """The transport's write buffer is full: the app's send() waits."""
        if self.connection.handler is not None:
            self.connection.pause_writing()

    def resumeProducing(self) -> None:
        """The buffer drained: release the app's send()."""
        if self.connection.handler is not None:
            self.connection.resume_writing()

    def stopProducing(self) -> None:
        """The connection is going away; connectionLost tells the handler."""


@implementer(IHandshakeListener)
class TwistedConnection(Protocol):
    """A Twisted protocol that drives one ``ServerConnection`` (and its handlers)."""

    def __init__(self, state: ServerContext) -> None:
        self.connection = ServerConnection(state)
        self.adapter: TransportAdapter | None = None
        self._early: list[bytes] = []
        self._handshake_timer: asyncio.TimerHandle | None = None

    def connectionMade(self) -> None:
        """Register for write flow control; over TLS, wait (bounded) for the handshake."""
        transport: Any = self.transport
        transport.registerProducer(_WriteFlow(self.connection), True)
        if isinstance(transport, TLSMemoryBIOProtocol):
            timeout = self.connection.config.timeout_tls_handshake
            loop = asyncio.get_running_loop()
            # On timeout close the TCP connection under the TLS layer: no TLS alert to send.
            tcp: Any = transport.transport
            self._handshake_timer = loop.call_later(timeout, tcp.loseConnection)
        else:
            self._start(None)

    def handshakeCompleted(self) -> None:
        """TLS is up: the peer's certificate is known, so the connection can start."""
        transport: Any = self.transport
        self._start(openssl_tls_extension(transport.getHandle()))

    def _start(self, tls: dict[str, Any] | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.adapter = TransportAdapter(self.transport, tls)
        self.connection.connection_made(self.adapter)  # type: ignore[arg-type]
        early, self._early = self._early, []
        for data in early:
            self.connection.data_received(data)

    def dataReceived(self, data: bytes) -> None:
        """Bytes from the peer."""
        if self.adapter is None:
            self._early.append(data)
        else:
            self.connection.data_received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection closed (cleanly or not)."""
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self.adapter is None:
            return  # the TLS handshake never finished: no handler to tell
        self.adapter.connection_lost()
        self.connection.connection_lost(None)


@implementer(IProtocolNegotiationFactory)
class _ConnectionFactory(Factory):
    noisy = False  # no "Starting factory" log lines

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN (RFC 7301): h2 (when on) and HTTP/1.1. Twisted's ssl: endpoints fail a handshake
        whose client offers ALPN when the factory names no protocol, so name them."""
        return [name.encode() for name in alpn_protocols(self.state.config)]

    def __init__(self, state: ServerContext) -> None:
        self.state = state

    def buildProtocol(self, addr: Any) -> TwistedConnection:
        return TwistedConnection(self.state)


class _Port:
    """A listening Twisted port as the server's ``Listener``."""

    def __init__(self, port: Any) -> None:
        self.port = port

    def close(self) -> None:
        self.port.stopListening()


def reactor_for(loop: asyncio.AbstractEventLoop) -> Any:
    """The Twisted reactor on ``loop``: the global one if it runs there, else a private one."""
    installed = sys.modules.get("twisted.internet.reactor")
    if isinstance(installed, asyncioreactor.AsyncioSelectorReactor) and (
        installed._asyncioEventloop is loop
    ):
        return installed
    reactor = _private_reactors.get(loop)
    if reactor is None:
        reactor = _private_reactors[loop] = asyncioreactor.AsyncioSelectorReactor(loop)
    return reactor


def _default_endpoint(config: Config) -> str:
    """The endpoint description for --host/--port or --uds when no --endpoint is given."""
    # --backlog as well: Twisted's own default of 50 drops SYNs in a burst of connections,
    # and each dropped one costs its client a retransmit (1 s, then 3 s).
    if config.uds is not None:
        return f"unix:{_escape(config.uds)}:backlog={config.backlog}"
    return f"tcp:{config.port}:interface={_escape(config.host)}:backlog={config.backlog}"


def _escape(value: str) -> str:
    # Endpoint descriptions separate fields with ':' and escape with '\\'.
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


@implementer(IOpenSSLContextFactory)
class _ServerTLS:
    """The --ssl-* options as a pyOpenSSL server context (Twisted's TLS needs pyOpenSSL)."""

    def __init__(self, config: Config) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from OpenSSL import SSL

        from asgi_server.tls import parse_cert_reqs

        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        assert config.ssl_certfile is not None
        context.use_certificate_chain_file(config.ssl_certfile)
        with open(config.ssl_keyfile or config.ssl_certfile, "rb") as file:
            password = config.ssl_keyfile_password
            key = load_pem_private_key(file.read(), password.encode() if password else None)
        context.use_privatekey(key)  # type: ignore[arg-type]  # any key OpenSSL serves with
        context.check_privatekey()
        if config.ssl_ca_certs is not None:
            context.load_verify_locations(config.ssl_ca_certs)
        modes = {0: SSL.VERIFY_NONE, 1: SSL.VERIFY_PEER}
        required = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        context.set_verify(modes.get(int(parse_cert_reqs(config.ssl_cert_reqs)), required))
        if config.ssl_ciphers is not None:
            context.set_cipher_list(config.ssl_ciphers.encode())
        offered = [name.encode() for name in alpn_protocols(config)]

        def select_protocol(connection: Any, client_protocols: list[bytes]) -> Any:
            # ALPN (RFC 7301 §3.2): our preference among the client's; none in common is fine.
            chosen = [name for name in offered if name in client_protocols]
            return chosen[0] if chosen else SSL.NO_OVERLAPPING_PROTOCOLS

        context.set_alpn_select_callback(select_protocol)
        self.context = context

    def getContext(self) -> Any:
        """The context (Twisted's old-style context factory interface)."""
        return self.context


def _with_tls(config: Config, factory: Any, reactor: Any) -> Any:
    """``factory`` wrapped in TLS when --ssl-certfile is given."""
    if config.ssl_certfile is None:
        return factory
    # The clock flushes coalesced small writes; it must be the reactor on our loop, not
    # whatever global reactor the process may have.
    context_factory: Any = _ServerTLS(config)  # mypy cannot see zope implementer
    return TLSMemoryBIOFactory(context_factory, False, factory, clock=reactor)


def _release_private_reactor(loop: asyncio.AbstractEventLoop) -> None:
    """Close the self-pipe of a private reactor whose loop is done (else 2 fds leak per server)."""
    reactor = _private_reactors.pop(loop, None)
    waker = getattr(reactor, "waker", None)
    if reactor is not None and waker is not None:
        reactor.removeReader(waker)
        waker.connectionLost(None)
        reactor.waker = None


class TwistedServer(Server):
    """The ``Server`` (lifespan, limits, graceful shutdown) listening through Twisted endpoints."""

    async def serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """``Server.serve``, then release the loop's private reactor, if it has one."""
        try:
            await super().serve(sockets)
        finally:
            _release_private_reactor(asyncio.get_running_loop())

    async def _bind(self, state: ServerContext, sockets: Sequence[socket.socket] | None) -> None:
        loop = asyncio.get_running_loop()
        reactor = reactor_for(loop)
        config = self.config
        factory = _ConnectionFactory(state)
        ports = []
        if config.fd is not None and not sockets:
            sockets = [socket.socket(fileno=config.fd)]
        if sockets:
            # Sockets bound by a supervisor or inherited: adopt them (Twisted dups each fd).
            for sock in sockets:
                sock.listen(config.backlog)  # an inherited socket may be bound, not listening
                sock.setblocking(False)  # Twisted adopts it as is: a blocking accept() would hang
                wrapped = _with_tls(config, factory, reactor)
                ports.append(reactor.adoptStreamPort(sock.fileno(), sock.family, wrapped))
        elif config.endpoints:  # ssl: endpoints carry their own TLS options
            for description in config.endpoints:
                ports.append(await self._listen(reactor, description, factory))
        else:
            ports.append(
                await self._listen(
                    reactor, _default_endpoint(config), _with_tls(config, factory, reactor)
                )
            )
        for port in ports:
            self._servers.append(_Port(port))
            address = _address(port.getHost())
            self.bound_addresses.append(address)
            tls = isinstance(getattr(port, "factory", None), TLSMemoryBIOFactory)
            self.logger.info("Serving on %s (Twisted)", listen_url(address, tls))

    async def _listen(self, reactor: Any, description: str, factory: Any) -> Any:
        try:
            endpoint = serverFromString(reactor, description)  # type: ignore[no-untyped-call]
            deferred: Deferred[Any] = endpoint.listen(factory)
            return await deferred.asFuture(asyncio.get_running_loop())
        except Exception as exc:
            raise OSError(f"cannot listen on {description!r}: {exc}") from exc


def run_on_reactor(main: Coroutine[Any, Any, int], loop_name: str = "auto") -> int:
    """Install the global Twisted reactor on a fresh asyncio loop, run ``main`` on it, return
    its result. The reactor runs (so Twisted startup/shutdown triggers fire) until ``main`` ends.
    """
    factory = loop_factory(loop_name)
    loop = factory() if factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    except Exception as exc:  # twisted.internet.error.ReactorAlreadyInstalledError
        raise SystemExit(
            f"Cannot install Twisted's asyncio reactor ({exc}); do not import "
            "twisted.internet.reactor before the server starts."
        ) from exc
    from twisted.internet import reactor as installed
    from twisted.python.log import PythonLoggingObserver

    # Twisted's own log messages (e.g. a failed TLS handshake) go to our logging setup.
    PythonLoggingObserver("asgi_server.twisted").start()  # type: ignore[no-untyped-call]
    chatty = logging.getLogger("asgi_server").getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("asgi_server.twisted").setLevel(logging.DEBUG if chatty else logging.WARNING)

    reactor: Any = installed
    task = loop.create_task(main)
    task.add_done_callback(lambda _: reactor.stop())
    reactor.run(installSignalHandlers=False)
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return task.result()
