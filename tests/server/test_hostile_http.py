"""Hostile HTTP clients against the real server on raw sockets: slowloris, idle hordes, uploads
nobody reads, responses nobody reads, half-closes, resets, pipelined floods and storms.

After every attack the same server must still answer a normal request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

RunServer = Callable[..., contextlib.AbstractContextManager[Any]]
MIB = 1024 * 1024
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


class Attacked:
    """The app under attack: echoes the path, or does what the path asks, and records it."""

    def __init__(self) -> None:
        self.release = threading.Event()  # lets /hold finish
        self.holding = 0  # requests waiting in /hold
        self.polling = 0  # requests waiting in /poll
        self.sent = 0  # response body bytes /stream has handed to send()
        self.outcome: list[str] = []  # how /stream ended: "done", "disconnect" or "oserror"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/hold":  # never reads the body; answers once released
            self.holding += 1
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        elif path == "/stream":
            await self._stream(send)
            return
        elif path == "/poll":  # a long poll: waits for an event or the client leaving
            self.polling += 1
            while (await receive())["type"] != "http.disconnect":
                pass
            self.outcome.append("disconnect")
            return
        elif path == "/slow":
            await asyncio.sleep(0.3)
        else:
            while (await receive()).get("more_body"):
                pass
        body = path.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, send: Any) -> None:
        """64 MiB in 64 KiB chunks: far more than any buffer between us and the client."""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        try:
            for _ in range(1024):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.sent += len(chunk)
            await send({"type": "http.response.body", "body": b""})
            self.outcome.append("done")
        except OSError:  # ASGI: send() after the client left raises OSError
            self.outcome.append("oserror")


@pytest.fixture
def attacked() -> Attacked:
    return Attacked()


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def assert_still_serving(port: int) -> None:
    """A fresh client gets a normal answer: the attack did not take the server down."""
    with connect(port) as sock:
        sock.sendall(b"GET /alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"/alive"), response


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def wait_until_stable(value: Callable[[], int], quiet: float = 0.3, timeout: float = 5.0) -> int:
    """Wait until ``value()`` has not changed for ``quiet`` seconds; return it."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "still changing"
        time.sleep(0.02)
        if (current := value()) != last:
            last, since = current, time.monotonic()
    return last


@pytest.fixture
def serve(run_server: RunServer, attacked: Attacked) -> Callable[..., Any]:
    """``with serve(**config) as port:`` the attacked app, with short timeouts for speed."""

    @contextlib.contextmanager
    def factory(**config: Any) -> Iterator[int]:
        config = {"timeout_request_head": 1.0, "access_log": False, **config}
        with run_server(attacked, **config) as server:
            yield server.port
            attacked.release.set()
            assert_still_serving(server.port)

    return factory


def test_slowloris_one_byte_every_half_second_is_cut_off(serve: Any) -> None:
    with serve() as port, connect(port) as sock:
        started = time.monotonic()
        closed = False
        for byte in GET[:-2]:  # never completes the head
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
        assert closed, "the head timeout should close a client that trickles its head"
        # Counted from accept (1 s), not from the last byte: trickling does not extend it.
        assert time.monotonic() - started < 2.5


def test_slowloris_on_a_kept_alive_connection_is_cut_off(serve: Any) -> None:
    # The head timeout counts again from the first byte of each later request.
    with serve(timeout_keep_alive=5.0) as port, connect(port) as sock:
        sock.sendall(GET)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in GET[:-2]:
                sock.sendall(bytes([byte]))
                time.sleep(0.25)
                if time.monotonic() - started > 3:
                    break
        assert read_until_closed(sock) == b""
        assert time.monotonic() - started < 3, "the keep-alive slowloris was not cut off"


def test_many_idle_connections_are_closed_and_others_served(serve: Any) -> None:
    with serve(timeout_request_head=0.5) as port:
        # A 0.9 s connect timeout: a SYN dropped by a full listen backlog is retried only after
        # 1 s (Twisted listened with a backlog of 50 instead of --backlog).
        idle = [connect(port, timeout=0.9) for _ in range(200)]
        try:
            assert_still_serving(port)  # served while 200 sockets sit idle
            for sock in idle:  # each is closed by the head timeout, without a byte sent
                assert read_until_closed(sock) == b""
        finally:
            for sock in idle:
                sock.close()


def test_huge_body_to_an_app_that_never_reads_it_pauses_reading(
    serve: Any, attacked: Attacked
) -> None:
    with serve() as port, connect(port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(b"POST /hold HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (64 * MIB))
        sock.setblocking(False)
        pushed, chunk, stalled_since = 0, b"y" * 65536, time.monotonic()
        while time.monotonic() - stalled_since < 0.5:  # until the server stopped taking bytes
            try:
                pushed += sock.send(chunk)
                stalled_since = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        # The server stops reading past 256 KiB of unread body: what it took sits in its
        # buffer (bounded) plus the kernel's socket buffers, far from the 64 MiB offered.
        assert pushed < 16 * MIB, f"the server kept reading: {pushed} bytes taken"
        sock.setblocking(True)
        attacked.release.set()  # the app answers without reading; the rest is never read
        response = read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"/hold")


def test_client_that_never_reads_the_response_blocks_the_app(
    serve: Any, attacked: Attacked
) -> None:
    with serve() as port:
        with connect(port) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
            wait_for(lambda: attacked.sent > 0)
            held = wait_until_stable(lambda: attacked.sent)  # flow control stopped the app
            # send() waits while the client does not read: bounded by the socket buffers and
            # the transport's write buffer, nowhere near the 64 MiB the app would send.
            assert held < 16 * MIB, held
            assert not attacked.outcome
        # The client went away without reading: the app's next send() raises OSError.
        wait_for(lambda: attacked.outcome == ["oserror"])


def test_reset_in_the_middle_of_a_streamed_response(serve: Any, attacked: Attacked) -> None:
    with serve() as port:
        sock = connect(port)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_for(lambda: attacked.outcome == ["oserror"])


def test_half_closed_client_is_taken_as_gone(serve: Any, attacked: Attacked) -> None:
    # A client that closes sends the same FIN as one that only half-closes: we take both as
    # gone (as nginx and Go do), so a long-polling app hears http.disconnect at once.
    with serve() as port, connect(port) as sock:
        sock.sendall(b"GET /poll HTTP/1.1\r\nHost: a\r\n\r\n")
        wait_for(lambda: attacked.polling == 1)
        sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: attacked.outcome == ["disconnect"])
        assert read_until_closed(sock) == b""  # and the connection is closed


def test_pipelined_flood_is_answered_in_order(serve: Any) -> None:
    count = 2000
    requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(count))
    with serve() as port, connect(port, timeout=10) as sock:
        writer = threading.Thread(target=sock.sendall, args=(requests,))
        writer.start()  # sent while we read: neither side may wait for the other to finish
        received = b""
        while received.count(b"HTTP/1.1 200 OK\r\n") < count or not received.endswith(
            b"/%d" % (count - 1)
        ):
            chunk = sock.recv(65536)
            assert chunk, "the server closed during the flood"
            received += chunk
        writer.join()
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in received.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"/%d" % i for i in range(count)]


def test_pipelined_flood_from_a_client_that_never_reads(serve: Any) -> None:
    request = b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % (b"p" * 200)
    with serve() as port, connect(port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        pushed, batch = 0, request * 256
        stalled_since = time.monotonic()
        while time.monotonic() - stalled_since < 0.5 and pushed < 64 * MIB:
            try:
                pushed += sock.send(batch)
                stalled_since = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        # Responses back up, then pipelined requests past 256 KiB wait unread: the server stops
        # reading instead of parsing (and answering into memory) everything it is sent.
        assert pushed < 32 * MIB, f"the server kept reading: {pushed} bytes taken"


def test_connection_storm_beyond_limit_concurrency(serve: Any, attacked: Attacked) -> None:
    def storm(index: int) -> bytes:
        with connect(port, timeout=10) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            return read_until_closed(sock)

    with serve(limit_concurrency=4) as port:
        held = [connect(port) for _ in range(4)]
        for sock in held:  # four requests in the app take every slot
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        wait_for(lambda: attacked.holding == 4)
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(storm, range(64)))
        for response in responses:  # each a whole 503 that closes, never a hang or a reset
            assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), response
            assert b"\r\nconnection: close\r\n" in response
        attacked.release.set()
        for sock in held:  # the requests that had a slot complete normally
            with sock:
                assert read_until_closed(sock).endswith(b"\r\n\r\n/hold")


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
ON_THE_WIRE = [
    # The body of an upgrade request was parsed as a second request by httptools.
    b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
    b"\r\n0\r\n\r\n" + SMUGGLED,  # obs-fold hiding Transfer-Encoding
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc" + SMUGGLED,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 client without negotiation
    b"GET /\r\n\r\n",  # HTTP/0.9
    b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n",  # authority-form without CONNECT
]


def test_hostile_heads_on_the_wire_get_one_400_and_a_close(
    serve: Any, attacked: Attacked, http_parser: str
) -> None:
    with serve(http=http_parser) as port:
        for data in ON_THE_WIRE:
            with connect(port) as sock:
                sock.sendall(data)
                response = read_until_closed(sock)
            # Exactly one response, a 400 that says it closes, and nothing smuggled behind it.
            assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (data, response)
            assert response.count(b"HTTP/1.1 ") == 1 and b"/smuggled" not in response, response
            assert b"\r\nconnection: close\r\n" in response
