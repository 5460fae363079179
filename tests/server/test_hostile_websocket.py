"""Hostile WebSocket clients against the real server on raw sockets: fragmented messages past the
cap, a compression bomb spread over fragments, ping floods, abused close handshakes and frames
after the close. Every attack ends with the right close code (RFC 6455 §7.4.1) and the same
server still echoes for a fresh client.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.server.test_websocket_limits import KEY, UPGRADE, RawClient, client_frame, wait_for

RunServer = Callable[..., contextlib.AbstractContextManager[Any]]
DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


class Echo:
    """Accepts, echoes every message, records what it received and how it ended."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.disconnects: list[int] = []
        self.send_errors = 0  # send() raised OSError: the connection was gone (ASGI)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            self.received.append(message.get("text") or message.get("bytes"))
            try:
                await send({**message, "type": "websocket.send"})
            except OSError:
                self.send_errors += 1
                break
        else:
            self.disconnects.append(message["code"])


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def serve(run_server: RunServer, echo: Echo) -> Callable[..., Any]:
    """``with serve(**config) as port:`` the echo app; on exit, checks the server still echoes."""

    @contextlib.contextmanager
    def factory(**config: Any) -> Iterator[int]:
        with run_server(echo, **{"ws_ping_interval": None, **config}) as server:
            yield server.port
            assert_still_echoes(server.port)

    return factory


def assert_still_echoes(port: int) -> None:
    client = RawClient(port)
    client.sock.sendall(client_frame(TEXT, b"still here"))
    assert client.read_frame() == (TEXT, b"still here")
    client.sock.sendall(client_frame(CLOSE, struct.pack("!H", 1000)))
    assert client.read_close() == 1000
    client.close()


def wait_until_stable(value: Callable[[], int], quiet: float = 0.3, timeout: float = 10.0) -> int:
    """Wait until ``value()`` has not changed for ``quiet`` seconds; return it."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "still changing"
        time.sleep(0.02)
        if (current := value()) != last:
            last, since = current, time.monotonic()
    return last


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0])


def test_many_tiny_fragments_past_the_cap_close_1009(serve: Any, echo: Echo) -> None:
    with serve(ws_max_size=1000) as port:
        client = RawClient(port)
        frames = [client_frame(TEXT, b"a", fin=False)]
        frames += [client_frame(CONTINUATION, b"a", fin=False) for _ in range(1500)]
        client.sock.sendall(b"".join(frames))
        assert client.read_close() == 1009
        client.close()
        wait_for(lambda: echo.disconnects == [1009])
        assert echo.received == []  # no part of the oversized message reached the app


def test_compression_bomb_over_fragments_closes_1009(serve: Any, echo: Echo) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (16 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692 §7.2.1: the trailing 00 00 ff ff is left off
    half = len(bomb) // 2
    with serve(ws_max_size=64 * 1024) as port:
        client = RawClient(port, DEFLATE)
        assert b"permessage-deflate" in client.head.lower()
        # RFC 7692 §6.1: RSV1 on the first frame only; the deflate stream spans the fragments.
        client.sock.sendall(
            client_frame(BINARY, bomb[:half], fin=False, rsv1=True)
            + client_frame(CONTINUATION, bomb[half:])
        )
        assert client.read_close() == 1009
        client.close()
        wait_for(lambda: echo.disconnects == [1009])
        assert echo.received == []


def test_ping_flood_from_a_client_that_does_not_read(serve: Any) -> None:
    ping = client_frame(PING, b"p" * 125)
    total = 200_000  # 26 MB of pings asking for 25 MB of pongs
    with serve() as port:
        client = RawClient(port)
        pushed = [0]

        def flood() -> None:
            with contextlib.suppress(OSError):
                for _ in range(total):
                    client.sock.sendall(ping)
                    pushed[0] += 1

        threading.Thread(target=flood, daemon=True).start()
        # We read nothing: once its writes back up, the server must stop reading pings rather
        # than queue their pongs in memory. What it took fits the kernel's socket buffers.
        stalled_at = wait_until_stable(lambda: pushed[0])
        assert stalled_at < total, "the server kept reading pings it could not answer"
        for _ in range(100):  # what was answered is answered right (RFC 6455 §5.5.3)
            assert client.read_frame() == (PONG, b"p" * 125)
        client.close()  # and the flooder leaves without a close frame


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (struct.pack("!H", 1005), 1002),  # "no status": never sent on the wire (§7.4.1)
        (struct.pack("!H", 1006), 1002),  # "abnormal closure": never sent on the wire
        (struct.pack("!H", 1015), 1002),  # TLS failure: never sent on the wire
        (struct.pack("!H", 999), 1002),  # below the defined range
        (struct.pack("!H", 1004), 1002),  # reserved
        (struct.pack("!H", 2999), 1002),  # reserved for extensions' specs, unassigned
        (struct.pack("!H", 5000), 1002),  # beyond the range of codes
        (b"\x03", 1002),  # a one-byte close payload cannot hold a code
        (struct.pack("!H", 1000) + b"\xff\xfe", 1007),  # the reason is not UTF-8
        (struct.pack("!H", 1000) + b"\xed\xa0\x80", 1007),  # a UTF-16 surrogate, not UTF-8
        (struct.pack("!H", 4000) + "bye ✓".encode(), 4000),  # private use, valid reason
    ],
)
def test_close_handshake_abuse(serve: Any, echo: Echo, payload: bytes, expected: int) -> None:
    with serve() as port:
        client = RawClient(port)
        client.sock.sendall(client_frame(CLOSE, payload))
        assert client.read_close() == expected
        client.close()
        wait_for(lambda: len(echo.disconnects) == 1)
        # The app hears the code of the close that ended the connection.
        assert echo.disconnects == [expected]


def test_frames_after_close_are_ignored(serve: Any, echo: Echo) -> None:
    with serve() as port:
        client = RawClient(port)
        client.sock.sendall(
            client_frame(TEXT, b"before")
            + client_frame(CLOSE, struct.pack("!H", 1000))
            + client_frame(TEXT, b"after")
            + client_frame(PING, b"after")
            + client_frame(CLOSE, struct.pack("!H", 1001))
        )
        frames = []
        while (frame := client.read_frame())[0] != CLOSE:
            frames.append(frame)
        # No echo of "after" and no pong; the echo of "before" may lose the race with the
        # close the server answers at once (no data frame follows a close, RFC 6455 §5.5.1).
        assert frames in ([], [(TEXT, b"before")]), frames
        assert close_code(frame[1]) == 1000
        assert read_rest(client.sock) == b""  # then TCP closes
        client.close()
        # The app hears of the close from receive(), or from send() if its echo came after it.
        wait_for(lambda: echo.disconnects == [1000] or echo.send_errors == 1)
        assert echo.received == ["before"]


def test_close_without_the_tcp_close_then_silence(serve: Any, echo: Echo) -> None:
    # The client sends its close and then neither reads nor closes TCP: the server still
    # answers, closes its side and tells the app once.
    with serve() as port:
        client = RawClient(port)
        client.sock.sendall(client_frame(CLOSE, struct.pack("!H", 1001)))
        wait_for(lambda: echo.disconnects == [1001])
        assert client.read_close() == 1001
        client.close()


def read_rest(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def test_utf8_split_across_fragments(serve: Any, echo: Echo) -> None:
    check = "✓".encode()  # three bytes: cut inside the character, the message is still valid
    with serve() as port:
        client = RawClient(port)
        client.sock.sendall(
            client_frame(TEXT, b"ok " + check[:1], fin=False)
            + client_frame(CONTINUATION, check[1:])
        )
        assert client.read_frame() == (TEXT, "ok ✓".encode())
        # A sequence that can never become UTF-8 fails at once, before the message ends (§8.1).
        client.sock.sendall(
            client_frame(TEXT, b"bad \xc3", fin=False)
            + client_frame(CONTINUATION, b"\x28 rest", fin=False)
        )
        assert client.read_close() == 1007
        client.close()
        wait_for(lambda: echo.disconnects == [1007])
        assert echo.received == ["ok ✓"]


def test_websocket_storm_beyond_limit_concurrency(run_server: RunServer, echo: Echo) -> None:
    with run_server(echo, limit_concurrency=2, ws_ping_interval=None) as server:
        held = [RawClient(server.port) for _ in range(2)]
        for _ in range(8):  # upgrades past the limit: a 503 that closes, the app never called
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(UPGRADE + KEY + b"\r\n")
                response = read_all(sock)
            assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), response
            assert b"\r\nconnection: close\r\n" in response
        for client in held:  # the connections that had a slot still work
            client.sock.sendall(client_frame(TEXT, b"held"))
            assert client.read_frame() == (TEXT, b"held")
            client.sock.sendall(client_frame(CLOSE, struct.pack("!H", 1000)))
            assert client.read_close() == 1000
            client.close()
        wait_for(lambda: len(echo.disconnects) == 2)
        wait_for(lambda: len(server.server.state.connections) == 0)
        assert_still_echoes(server.port)


def read_all(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received
