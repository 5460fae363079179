"""WebSocket limits and protocol errors through the real server, spoken to with raw sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.protocols.test_websocket import client_frame

RunServer = Callable[..., AbstractContextManager[Any]]
Scope = dict[str, Any]
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)
KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


class RawClient:
    """A blocking socket that does the handshake and reads server frames."""

    def __init__(self, port: int, extra_headers: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(UPGRADE + KEY + extra_headers + b"\r\n")
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        self.head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert self.head.startswith(b"HTTP/1.1 101 "), self.head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        return data

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """The next server frame's opcode and payload."""
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        return first & 0x0F, self._take(length)

    def read_close(self, reply: bool = False) -> int:
        """Skip frames up to the close frame; return its code; check TCP closes after it.

        ``reply``: answer with our close frame first (the server started the closing handshake
        and waits for the reply, RFC 6455 §5.5.1).
        """
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                if reply:
                    self.sock.sendall(client_frame(0x8, payload[:2]))
                try:
                    rest = self.sock.recv(1)
                except ConnectionResetError:
                    rest = b""  # it closed with our unread bytes in its buffer: a reset
                assert rest == b"", "the server should close TCP after its close frame"
                return int(struct.unpack("!H", payload[:2])[0])

    def close(self) -> None:
        self.sock.close()


class Recorder:
    """Accepts, drops messages, records the disconnect."""

    def __init__(self) -> None:
        self.calls = 0
        self.disconnect: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        self.calls += 1
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            pass
        self.disconnect = message


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (UPGRADE + b"\r\n", b"400"),  # no key
        (UPGRADE + b"Sec-WebSocket-Key: short\r\n\r\n", b"400"),
        (UPGRADE.replace(b"Sec-WebSocket-Version: 13\r\n", b"") + KEY + b"\r\n", b"400"),
    ],
)
def test_bad_handshakes_get_400_and_app_never_called(
    run_server: RunServer, headers: bytes, status: bytes
) -> None:
    app = Recorder()
    with run_server(app) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(headers)
        assert sock.recv(4096).startswith(b"HTTP/1.1 " + status)
        assert sock.recv(4096) == b""
    assert app.calls == 0


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(0x1, b"hello", masked=False), 1002),
        (client_frame(0x3, b"reserved opcode"), 1002),
        (client_frame(0x9, b"x" * 126), 1002),
        (client_frame(0x9, b"x", fin=False), 1002),
        (client_frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"), 1007),
    ],
    ids=["unmasked", "reserved-opcode", "big-control", "fragmented-control", "bad-utf8"],
)
def test_protocol_errors_close_and_reach_the_app(
    run_server: RunServer, frame: bytes, code: int
) -> None:
    app = Recorder()
    with run_server(app) as server:
        client = RawClient(server.port)
        client.sock.sendall(frame)
        assert client.read_close() == code
        client.close()
        wait_for(lambda: app.disconnect is not None)
    assert app.disconnect is not None and app.disconnect["code"] == code


def test_size_limit_counts_across_continuation_frames(run_server: RunServer, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="asgi_server.error")
    app = Recorder()
    with run_server(app, ws_max_size=1000) as server:
        client = RawClient(server.port)
        client.sock.sendall(client_frame(0x2, b"a" * 1000))  # exactly the limit: fine
        client.sock.sendall(client_frame(0x2, b"a" * 400, fin=False))
        client.sock.sendall(client_frame(0x0, b"a" * 400, fin=False))
        client.sock.sendall(client_frame(0x0, b"a" * 400))
        assert client.read_close() == 1009
        client.close()
        wait_for(lambda: app.disconnect is not None)
    assert app.disconnect is not None and app.disconnect["code"] == 1009
    # The log says which limit and the sizes, not "error in extension".
    assert [
        record.getMessage() for record in caplog.records if "--ws-max-size" in record.getMessage()
    ] == [
        "WebSocket message over --ws-max-size, closing (1009): a message of at least 1200 bytes"
        " exceeds the limit of 1000 bytes"
    ]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_compression_bomb_closes_1009_without_ballooning(
    run_server_process: Callable[..., AbstractContextManager[Any]],
) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = b"\x00" * (1 << 20)
    first = compressor.compress(mib) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # With a sync flush after each MiB of zeros, every later MiB deflates to the same ~1 KiB,
    # so the 256 MiB bomb is built without compressing 256 MiB.
    again = compressor.compress(mib) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = (first + again * 255)[:-4]  # RFC 7692 §7.2.1: drop the trailing 00 00 ff ff
    with run_server_process("benchmarks.websocket:app", "--ws-max-size", "1048576") as server:
        before = peak_rss_mib(server.process.pid)
        client = RawClient(server.port, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert b"permessage-deflate" in client.head.lower()
        client.sock.sendall(client_frame(0x2, bomb, rsv1=True))
        assert client.read_close() == 1009
        client.close()
        after = peak_rss_mib(server.process.pid)
    # The cap is 1 MiB; the compressed frame is ~260 KiB. Inflating it would take 256 MiB.
    assert after - before < 32, f"peak RSS grew from {before:.0f} to {after:.0f} MiB"


def test_ping_timeout_closes_1011(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app, ws_ping_interval=0.05, ws_ping_timeout=0.2) as server:
        client = RawClient(server.port)
        opcode, _ = client.read_frame()
        assert opcode == 0x9  # a ping, which this client never answers
        assert client.read_close() == 1011
        client.close()
        wait_for(lambda: app.disconnect is not None)
    assert app.disconnect is not None and app.disconnect["code"] == 1011


def test_answered_pings_keep_the_connection(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app, ws_ping_interval=0.05, ws_ping_timeout=0.2) as server:
        client = RawClient(server.port)
        for _ in range(6):  # 6 pings answered: longer than one timeout
            opcode, payload = client.read_frame()
            assert opcode == 0x9
            client.sock.sendall(client_frame(0xA, payload))
        assert app.disconnect is None
        client.close()


def test_vanished_client_is_1006(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app) as server:
        client = RawClient(server.port)
        client.sock.sendall(client_frame(0x1, b"hi"))
        client.close()  # no close frame
        wait_for(lambda: app.disconnect is not None)
    assert app.disconnect is not None and app.disconnect["code"] == 1006


def test_slow_reader_blocks_send(run_server: RunServer) -> None:
    sent: list[int] = []
    message = b"m" * (1 << 20)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(64):
            await send({"type": "websocket.send", "bytes": message})
            sent.append(i)
        await send({"type": "websocket.close"})

    with run_server(app) as server:
        client = RawClient(server.port)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        time.sleep(0.5)
        # 64 MiB would be written by now if send() did not wait for the reader.
        assert len(sent) < 32, f"send() did not wait: {len(sent)} MiB written to a non-reader"
        for _ in range(64):
            assert client.read_frame() == (0x2, message)
        assert client.read_close(reply=True) == 1000
        client.close()
    assert len(sent) == 64


def test_frames_sent_with_the_handshake_are_kept_until_accept(run_server: RunServer) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await asyncio.sleep(0.1)  # the frame below arrives while we decide
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "got " + message["text"]})

    with run_server(app) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(UPGRADE + KEY + b"\r\n" + client_frame(0x1, b"early"))
        data = b""
        while b"got early" not in data:
            chunk = sock.recv(4096)
            assert chunk, f"closed before the echo: {data!r}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 101 ")
        sock.close()
