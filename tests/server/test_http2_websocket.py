"""WebSocket over HTTP/2 (RFC 8441, extended CONNECT) on a real server, both transports, over
TLS (ALPN h2) and h2c: a raw h2 client on a socket opens the stream, and wsproto's client-side
frame protocol writes and reads the WebSocket frames its DATA frames carry."""

from __future__ import annotations

import json
import queue
import socket
import ssl
from typing import Any

import h2.events as ev
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from wsproto.frame_protocol import CloseReason, Frame, FrameProtocol, Opcode

from tests.server.test_tls import tls_options

disconnects: queue.Queue[int] = queue.Queue()


async def ws_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reports its scope, then echoes; ``close`` makes it close with 4000; ``/deny`` refuses.
    Each disconnect code it hears goes to ``disconnects``."""
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    report = {k: scope[k] for k in ("http_version", "scheme", "path", "subprotocols")}
    report["extensions"] = sorted(scope["extensions"])
    await send({"type": "websocket.send", "text": json.dumps(report)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            disconnects.put(message["code"])
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
            continue
        echo = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
        await send({"type": "websocket.send", **echo})


class H2WebSocket:
    """An extended CONNECT on stream 1 of a raw h2 client connection."""

    def __init__(
        self, port: int, tls: ssl.SSLContext | None, path: str = "/ws", extra: Any = ()
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.ws = FrameProtocol(client=True, extensions=[])
        self.frames: list[Frame] = []
        self.ended = self.reset = False
        self.status = b""
        self.body = b""
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.flush()
        self.until(lambda e: isinstance(e, ev.RemoteSettingsChanged))
        # RFC 8441 §3: the server announces extended CONNECT before we may use it.
        assert self.conn.remote_settings.enable_connect_protocol == 1
        headers = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"https" if tls is not None else b"http"),
            (b":path", path.encode()),
            (b":authority", b"127.0.0.1"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-protocol", b"chat"),
            *extra,
        ]
        self.conn.send_headers(1, headers)
        self.flush()
        events = self.until(lambda e: isinstance(e, ev.ResponseReceived))
        response = next(e for e in events if isinstance(e, ev.ResponseReceived))
        self.headers = dict(response.headers or [])

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def until(self, predicate: Any) -> list[ev.Event]:
        """Read until an event matches ``predicate``; return the events up to it."""
        seen: list[ev.Event] = []
        while not any(predicate(e) for e in seen):
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):
                seen.append(event)
                if isinstance(event, ev.ResponseReceived):
                    self.status = dict(event.headers or [])[b":status"]
                if isinstance(event, ev.DataReceived) and event.stream_id == 1:
                    self.conn.acknowledge_received_data(event.flow_controlled_length or 0, 1)
                    if self.status != b"200":  # a refusal's body
                        self.body += event.data or b""
                        continue
                    self.ws.receive_bytes(event.data or b"")
                    self.frames += list(self.ws.received_frames())
                self.ended = self.ended or isinstance(event, ev.StreamEnded)
                self.reset = self.reset or isinstance(event, ev.StreamReset)
            self.flush()
        return seen

    def send(self, data: str | bytes) -> None:
        self.send_frames(bytes(self.ws.send_data(data, fin=True)))

    def send_close(self, code: int, end: bool = False) -> None:
        """A close frame; ``end``: and END_STREAM with it (RFC 8441 §5's end of the stream)."""
        self.send_frames(bytes(self.ws.close(code, "")), end)

    def send_frames(self, data: bytes, end: bool = False) -> None:
        """DATA frames as the server's window allows: waits for its WINDOW_UPDATEs."""
        while data:
            size = min(self.conn.local_flow_control_window(1), self.conn.max_outbound_frame_size)
            if not size:
                self.until(lambda e: isinstance(e, ev.WindowUpdated))
                continue
            data, chunk = data[size:], data[:size]
            self.conn.send_data(1, chunk, end_stream=end and not data)
            self.flush()

    def wait_ended(self) -> None:
        """Until the server has ended stream 1 (END_STREAM, perhaps read already)."""
        if not self.ended:
            self.until(lambda e: isinstance(e, ev.StreamEnded))

    def receive(self) -> Frame:
        """The next WebSocket frame from the server."""
        if not self.frames:
            self.until(lambda e: bool(self.frames) or isinstance(e, ev.StreamReset))
        return self.frames.pop(0)


def connect(port: int, certificates: Any, tls: bool, path: str = "/ws") -> H2WebSocket:
    return H2WebSocket(port, certificates.client_context() if tls else None, path)


def options(certificates: Any, tls: bool, **extra: Any) -> dict[str, Any]:
    return tls_options(certificates, **extra) if tls else {"h2c": True, **extra}


def payload(frame: Frame) -> str | bytes:
    assert isinstance(frame.payload, str | bytes)
    return frame.payload


def close_code(frame: Frame) -> int:
    assert frame.opcode is Opcode.CLOSE
    payload = frame.payload
    assert isinstance(payload, CloseReason | tuple)
    return int(payload.code if isinstance(payload, CloseReason) else payload[0])


TLS = pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])


@pytest.fixture(autouse=True)
def no_stale_disconnects() -> None:
    while not disconnects.empty():
        disconnects.get_nowait()


@TLS
def test_echo_text_and_binary(run_server: Any, certificates: Any, tls: bool) -> None:
    with run_server(ws_app, **options(certificates, tls)) as server:
        client = connect(server.port, certificates, tls)
        assert client.headers[b":status"] == b"200"  # RFC 8441 §5: 200, not 101
        assert b"sec-websocket-accept" not in client.headers
        assert client.headers[b"sec-websocket-protocol"] == b"chat"
        report = json.loads(payload(client.receive()))
        assert report == {
            "http_version": "2",
            "scheme": "wss" if tls else "ws",
            "path": "/ws",
            "subprotocols": ["chat"],
            "extensions": ["tls", "websocket.http.response"]
            if tls
            else ["websocket.http.response"],
        }
        client.send("héllo")
        frame = client.receive()
        assert frame.opcode is Opcode.TEXT and frame.payload == "héllo"
        # More than both initial windows (64 KiB) each way: flow control per stream.
        big = bytes(range(256)) * 1200
        client.send(big)
        received = b""
        while len(received) < len(big):
            frame = client.receive()
            assert frame.opcode in (Opcode.BINARY, Opcode.CONTINUATION)
            received += bytes(payload(frame))
        assert received == big
        client.send_close(1000)
        assert close_code(client.receive()) == 1000
        client.wait_ended()  # then our side ends
        assert disconnects.get(timeout=10) == 1000


@TLS
def test_oversized_message_closes_with_1009(run_server: Any, certificates: Any, tls: bool) -> None:
    with run_server(ws_app, **options(certificates, tls, ws_max_size=1000)) as server:
        client = connect(server.port, certificates, tls)
        client.receive()  # the report
        client.send(b"x" * 1000)  # at the limit: fine
        assert client.receive().payload == b"x" * 1000
        client.send(b"x" * 1001)
        assert close_code(client.receive()) == 1009
        client.wait_ended()
        assert disconnects.get(timeout=10) == 1009


@TLS
def test_server_close_and_client_reset(run_server: Any, certificates: Any, tls: bool) -> None:
    with run_server(ws_app, **options(certificates, tls)) as server:
        client = connect(server.port, certificates, tls)
        client.receive()
        client.send("close")
        assert close_code(client.receive()) == 4000
        client.send_close(4000, end=True)
        client.wait_ended()
        assert client.ended and not client.reset
        assert disconnects.get(timeout=10) == 4000
        # A stream reset by the client (no close frame): the app hears 1006.
        other = connect(server.port, certificates, tls)
        other.receive()
        other.conn.reset_stream(1)
        other.flush()
        assert disconnects.get(timeout=10) == 1006
        # The connection still serves plain requests after a WebSocket stream.
        client.conn.send_headers(
            3,
            [
                (b":method", b"GET"),
                (b":path", b"/"),
                (b":scheme", b"http" if not tls else b"https"),
                (b":authority", b"t"),
            ],
            end_stream=True,
        )
        client.flush()
        client.until(lambda e: isinstance(e, ev.StreamEnded) and e.stream_id == 3)


@TLS
def test_app_refusal_is_403(run_server: Any, certificates: Any, tls: bool) -> None:
    with run_server(ws_app, **options(certificates, tls)) as server:
        client = connect(server.port, certificates, tls, "/deny")
        assert client.headers[b":status"] == b"403"
        client.wait_ended()
        assert client.body == b"Forbidden"


def test_plain_connect_is_still_501(run_server: Any) -> None:
    with run_server(ws_app, h2c=True) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, [(b":method", b"CONNECT"), (b":authority", b"example:443")])
        sock.sendall(conn.data_to_send())
        status = None
        while status is None:
            for event in conn.receive_data(sock.recv(65536)):
                if isinstance(event, ev.ResponseReceived):
                    status = dict(event.headers or [])[b":status"]
            sock.sendall(conn.data_to_send())
        assert status == b"501"


def test_permessage_deflate_is_negotiated(run_server: Any, certificates: Any) -> None:
    offer = (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")
    with run_server(ws_app, h2c=True) as server:
        client = H2WebSocket(server.port, None, extra=[offer])
        accepted = client.headers[b"sec-websocket-extensions"]
        assert accepted.startswith(b"permessage-deflate")
    with run_server(ws_app, h2c=True, ws_per_message_deflate=False) as server:
        client = H2WebSocket(server.port, None, extra=[offer])
        assert b"sec-websocket-extensions" not in client.headers
