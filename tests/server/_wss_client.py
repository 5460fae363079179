"""A one-thread wss client for the TLS tests: websockets' sans-I/O client protocol over an
``ssl.SSLSocket`` that only this thread reads and writes.

Why not ``websockets.sync.client``: it reads the socket on a thread of its own while the caller's
thread writes the handshake request, so one OpenSSL ``SSL`` object is used by two threads at
once, which OpenSSL does not support (openssl/openssl#20446) and CPython's ``ssl`` does not
serialize (the per-socket lock 3.13.6 added deadlocked this very pattern and was taken out again,
python/cpython#137583). Over TLS 1.3 the server's NewSessionTicket messages arrive right after
the handshake, just as the request is written; when the reader thread's SSL_read processes them
during the writer's SSL_write, the request can be lost inside the client: it never reaches the
kernel, the server never sees it, and the client times out "waiting for handshake response"
(about 1 connection in 300 to 1,500 here, none on TLS 1.2, none with the server sending no
tickets). A test using that client over wss is flaky whatever the server does.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri


@dataclass
class WssResult:
    """What one wss connection saw, from the TLS handshake to the closed socket."""

    status: int | None = None  # of the handshake response; None if none came
    messages: list[bytes] = field(default_factory=list)  # text and binary payloads
    close_code: int | None = None  # from the server's close frame
    tls_unique: bytes | None = None  # the client's channel binding, read after the handshake
    tls_version: str | None = None


def wss_session(
    port: int, context: ssl.SSLContext, path: str = "/", timeout: float = 10
) -> WssResult:
    """Open ``wss://127.0.0.1:{port}{path}``, read every message until the server closes (the
    client answers the close frame), and report what came. Raises on a socket timeout."""
    result = WssResult()
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        result.tls_unique = tls.get_channel_binding("tls-unique")
        result.tls_version = tls.version()
        protocol = ClientProtocol(parse_uri(f"wss://127.0.0.1:{port}{path}"))
        protocol.send_request(protocol.connect())
        while protocol.state is not State.CLOSED:
            for chunk in protocol.data_to_send():
                if chunk:  # an empty chunk asks for a half-close; the server closes anyway
                    tls.sendall(chunk)
            try:
                data = tls.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError):
                data = b""
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                _record(result, event)
    return result


def _record(result: WssResult, event: Response | Frame) -> None:
    if isinstance(event, Response):
        result.status = event.status_code
    elif event.opcode in (Opcode.TEXT, Opcode.BINARY):
        result.messages.append(bytes(event.data))
    elif event.opcode is Opcode.CLOSE and result.close_code is None:
        result.close_code = int.from_bytes(event.data[:2], "big") if event.data else 1005
