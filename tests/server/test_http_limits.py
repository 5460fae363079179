"""Every limit and malformed input against the real server on raw sockets, once per parser.

Each refused request gets the right 4xx, ``connection: close``, and a closed connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

BIG = b"a" * 17000


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, then answers; ``/slow`` waits a while first."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def exchange(port: int, data: bytes, pieces: int = 0) -> bytes:
    """Send ``data`` (whole, or in pieces of ``pieces`` bytes) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(5)
        try:
            if pieces:
                for start in range(0, len(data), pieces):
                    sock.sendall(data[start : start + pieces])
                    time.sleep(0.002)
            else:
                sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse and close before everything is sent
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def assert_refused(response: bytes, status: int) -> None:
    assert response.startswith(b"HTTP/1.1 %d " % status), response[:200]
    head = response.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nconnection: close\r\n" in head + b"\r\n"


MALFORMED = {
    "content-length-and-chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    "duplicate-equal-content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        400,
    ),
    "signed-content-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    "hex-content-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    "lf-in-name": (b"GET / HTTP/1.1\r\nHost: a\r\nX\nY: v\r\n\r\n", 400),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "target-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "too-many-headers": (
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: v\r\n" * 100 + b"\r\n",
        431,
    ),
    "head-too-large": (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + BIG + b"\r\n\r\n", 431),
}
MALFORMED.update(
    {
        f"control-{byte:#04x}-in-value": (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a" + bytes([byte]) + b"b\r\n\r\n",
            400,
        )
        for byte in (0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x7F, 0x85)
    }
)


def test_malformed_requests(run_server: Any, http_parser: str) -> None:
    """One server per parser, every malformed request in turn; the server survives them all."""
    with run_server(app, http=http_parser) as server:
        for name, (data, status) in MALFORMED.items():
            response = exchange(server.port, data)
            assert response.startswith(b"HTTP/1.1 %d " % status), (name, response[:100])
            assert_refused(response, status)
        assert httpx.get(server.url).text == "ok"


@pytest.mark.parametrize("pieces", [0, 1000, 100])
def test_large_head_whole_or_in_pieces(run_server: Any, http_parser: str, pieces: int) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + BIG + b"\r\n\r\n"
    with run_server(app, http=http_parser) as server:
        assert_refused(exchange(server.port, data, pieces), 431)


def test_limits_are_config_options(run_server: Any, http_parser: str) -> None:
    config = {"limit_request_line": 100, "limit_request_headers": 3, "limit_request_head": 500}
    with run_server(app, http=http_parser, **config) as server:
        long_target = b"GET /" + b"a" * 101 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
        assert_refused(exchange(server.port, long_target), 414)
        headers = b"Host: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
        assert_refused(exchange(server.port, b"GET / HTTP/1.1\r\n" + headers + b"\r\n"), 431)
        big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 500 + b"\r\n\r\n"
        assert_refused(exchange(server.port, big), 431)
        response = exchange(server.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 200 OK")


def test_body_limit(run_server: Any, http_parser: str) -> None:
    with run_server(app, http=http_parser, limit_request_body=10) as server:
        data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
        assert_refused(exchange(server.port, data), 413)
        data = (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n"
        )
        assert_refused(exchange(server.port, data), 413)
        assert httpx.post(server.url, content=b"0123456789").text == "ok"


def test_head_timeout_closes_silent_and_slow_clients(run_server: Any, http_parser: str) -> None:
    with run_server(app, http=http_parser, timeout_request_head=0.3) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(5)
            assert sock.recv(100) == b""  # silent: closed
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
            closed = False
            for _ in range(50):  # slowloris: one header line every 50 ms, for up to 2.5 s
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            sock.settimeout(5)
            try:
                closed = closed or sock.recv(100) == b""
            except ConnectionResetError:
                closed = True
            assert closed


def test_keep_alive_timeout(run_server: Any, http_parser: str) -> None:
    with (
        run_server(app, http=http_parser, timeout_keep_alive=0.2) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        sock.settimeout(5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        response = sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"ok")
        assert sock.recv(100) == b""  # closed by the server once idle


def test_limit_concurrency_answers_503(run_server: Any, http_parser: str) -> None:
    with (
        run_server(app, http=http_parser, limit_concurrency=1) as server,
        socket.create_connection(("127.0.0.1", server.port)) as busy,
    ):
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.1)
        assert_refused(exchange(server.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 503)
        busy.settimeout(5)
        assert busy.recv(65536).endswith(b"ok")


def test_body_timeout_frees_the_slots_of_trickling_clients(
    run_server: Any, http_parser: str, caplog: Any
) -> None:
    """Clients that send a body slower than --timeout-request-body (between chunks) get 408 and
    lose their --limit-concurrency slots, so normal requests get 200 again; a client that
    trickles faster than the timeout is served, however long its body takes in all."""
    caplog.set_level(logging.INFO, logger="asgi_server.error")
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
    posts: list[str] = []

    async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            posts.append(scope["path"])
        await app(scope, receive, send)

    with run_server(
        counting_app, http=http_parser, limit_concurrency=3, timeout_request_body=0.4
    ) as server:
        tricklers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        for sock in tricklers:
            sock.settimeout(5)
            sock.sendall(head + b"x")  # then nothing more: idle past the timeout
        deadline = time.monotonic() + 5
        while len(posts) < 3:  # every trickler's app runs (and waits for the body)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # They hold every slot: a normal request is refused.
        assert_refused(exchange(server.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 503)
        for sock in tricklers:
            with sock:
                response = b""
                while chunk := sock.recv(65536):  # until the server closes
                    response += chunk
                assert_refused(response, 408)
        get = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        for _ in range(5):
            assert exchange(server.port, get).startswith(b"HTTP/1.1 200 ")
        # One byte every 0.1 s: 1 s in all, never 0.4 s idle: served.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(5)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
            for _ in range(10):
                time.sleep(0.1)
                sock.sendall(b"x")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    messages = [record.getMessage() for record in caplog.records]
    assert sum("--timeout-request-body" in message for message in messages) == 3


def test_limit_max_requests_exits_cleanly(run_server_process: Any) -> None:
    with run_server_process("examples.hello:app", "--limit-max-requests", "2") as server:
        with httpx.Client() as client:
            assert client.get(server.url).status_code == 200
            assert client.get(server.url).status_code == 200
        assert server.process.wait(timeout=10) == 0


def test_app_header_injection_is_refused(run_server: Any, http_parser: str, caplog: Any) -> None:
    async def bad(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"x-evil", b"1\r\nset-cookie: stolen=1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with caplog.at_level(logging.ERROR), run_server(bad, http=http_parser) as server:
        response = httpx.get(server.url)
    assert response.status_code == 500
    assert "set-cookie" not in response.headers
    assert any("x-evil" in record.getMessage() for record in caplog.records)


def test_app_breaking_its_content_length(run_server: Any, http_parser: str, caplog: Any) -> None:
    async def liar(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["path"] == "/more":
            await send({"type": "http.response.body", "body": b"hello", "more_body": True})
            await send({"type": "http.response.body", "body": b" and more"})
        else:
            await send({"type": "http.response.body", "body": b"hel"})

    with caplog.at_level(logging.ERROR), run_server(liar, http=http_parser) as server:
        more = exchange(server.port, b"GET /more HTTP/1.1\r\nHost: a\r\n\r\n")
        fewer = exchange(server.port, b"GET /fewer HTTP/1.1\r\nHost: a\r\n\r\n")
    # The announced 5 bytes and nothing more, then the connection closes.
    assert more.startswith(b"HTTP/1.1 200 OK\r\n") and more.endswith(b"\r\n\r\nhello")
    assert fewer.startswith(b"HTTP/1.1 500 ")  # nothing was sent yet: a clean 500
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "more body bytes" in messages and "short of its Content-Length" in messages


def test_app_errors_and_the_server_survives(run_server: Any, http_parser: str, caplog: Any) -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/before":
            raise ValueError("boom before")
        if path == "/nothing":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        if path == "/after":
            raise ValueError("boom after")
        await send({"type": "http.response.body", "body": b""})

    with caplog.at_level(logging.ERROR), run_server(broken, http=http_parser) as server:
        assert exchange(server.port, b"GET /before HTTP/1.1\r\nHost: a\r\n\r\n").startswith(
            b"HTTP/1.1 500 "
        )
        assert exchange(server.port, b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n").startswith(
            b"HTTP/1.1 500 "
        )
        after = exchange(server.port, b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        assert after.endswith(b"7\r\npartial\r\n")  # no final chunk: visibly incomplete
        assert httpx.get(server.url + "/fine").text == "partial"
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 2  # each raise logged once, with its traceback
    assert "returned without sending a response" in caplog.text


def test_limit_concurrency_flag_in_cli_help() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "asgi_server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--limit-concurrency", "--limit-request-head", "--timeout-request-head"):
        assert flag in output
