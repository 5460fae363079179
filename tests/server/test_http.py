"""Normal HTTP traffic against the real server: httpx and raw sockets, once per parser."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import pytest

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_responses(sock: socket.socket, count: int, timeout: float = 5.0) -> bytes:
    """Read until ``count`` whole responses (each ending in its body) have arrived."""
    sock.settimeout(timeout)
    data = b""
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"!"):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"Hello " + scope["path"].encode() + b"!"})


def test_hello_with_default_headers(run_server: Any, http_parser: str) -> None:
    with run_server(hello, http=http_parser) as server:
        response = httpx.get(server.url + "/world")
    assert response.status_code == 200
    assert response.text == "Hello /world!"
    assert response.headers["server"] == "crossway"
    assert response.headers["date"].endswith(" GMT")
    assert response.headers["content-length"] == "13"


def test_default_headers_are_configurable(run_server: Any) -> None:
    config = {"server_header": False, "date_header": False, "headers": ("X-Served-By: node-1",)}
    with run_server(hello, **config) as server:
        response = httpx.get(server.url)
    assert "server" not in response.headers and "date" not in response.headers
    assert response.headers["x-served-by"] == "node-1"


def test_scope(run_server: Any, http_parser: str) -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["pool"] = "shared"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(scope)
        if len(scopes) == 1:
            scope["state"]["per-request"] = True  # must not leak into the next request's state
        await hello(scope, receive, send)

    with run_server(app, http=http_parser, root_path="/mount") as server:
        headers = {"X-Custom": "Value"}
        httpx.get(server.url + "/caf%C3%A9/a%2Fb?q=%20x&y", headers=headers)
        httpx.get(server.url + "/again")
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/mount/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"q=%20x&y"
    assert scope["root_path"] == "/mount"
    assert (b"x-custom", b"Value") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["state"] == {"pool": "shared", "per-request": True}
    assert scopes[1]["state"] == {"pool": "shared"}


async def echo_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers with its length and the number of receive() calls."""
    if scope["type"] != "http":
        return
    size = calls = 0
    while True:
        message = await receive()
        calls += 1
        size += len(message["body"])
        if not message["more_body"]:
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % size})


def test_request_bodies_whole_and_chunked(run_server: Any, http_parser: str) -> None:
    big = b"x" * (3 * 1024 * 1024)

    def chunks() -> Any:
        for _ in range(30):
            yield b"y" * 1000

    with run_server(echo_body, http=http_parser) as server, httpx.Client() as client:
        assert client.post(server.url, content=big).text == str(len(big))
        assert client.post(server.url, content=chunks()).text == "30000"
        assert client.get(server.url).text == "0"


def test_streamed_response_with_backpressure(run_server: Any, http_parser: str) -> None:
    """send() waits while the client does not read; everything arrives once it does."""
    sent = [0]
    chunk = b"z" * 65536

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(320):  # 20 MiB
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent[0] += len(chunk)
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, http=http_parser) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(REQUEST)
        time.sleep(0.5)
        assert 0 < sent[0] < 16 * 1024 * 1024  # the app was held back, not buffered in full
        body = read_chunked(sock)
        sock.close()
    assert len(body) == 320 * 65536 and sent[0] == len(body)


def read_chunked(sock: socket.socket) -> bytes:
    """Read one chunked response and return its decoded body."""
    sock.settimeout(10)
    data = bytearray()
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        assert chunk
        data += chunk
    head_end = data.index(b"\r\n\r\n") + 4
    assert b"transfer-encoding: chunked" in data[:head_end]
    body = bytearray()
    view = memoryview(data)
    position = head_end
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end], 16)
        if size == 0:
            return bytes(body)
        body += view[line_end + 2 : line_end + 2 + size]
        position = line_end + 4 + size


def test_head_request_has_no_body(run_server: Any, http_parser: str) -> None:
    with run_server(hello, http=http_parser) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + REQUEST)
        data = read_responses(sock, 2)
        sock.close()
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.endswith(b"\r\n\r\n") and b"content-length: 8" in first
    assert second.endswith(b"Hello /!")


def test_keep_alive_and_pipelining_in_order(run_server: Any, http_parser: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":  # the first answer takes longest: order must hold
            await asyncio.sleep(0.2)
        await hello(scope, receive, send)

    with run_server(app, http=http_parser) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        pipeline = b"".join(
            b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % path for path in (b"slow", b"1", b"2")
        )
        sock.sendall(pipeline)
        data = read_responses(sock, 3)
        sock.sendall(b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        data += read_responses(sock, 1)
        sock.close()
    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"Hello /slow!", b"Hello /1!", b"Hello /2!", b"Hello /3!"]


def test_http10_and_connection_close(run_server: Any, http_parser: str) -> None:
    with run_server(hello, http=http_parser) as server:
        for request in (
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(request)
                data = read_until_closed(sock)  # the server closes after the response
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"Hello /!")
            assert b"connection: close\r\n" in data


def test_expect_100_continue_only_when_the_app_reads(run_server: Any, http_parser: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/read":
            await echo_body(scope, receive, send)
        else:  # refuse without reading the body
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})

    head = b"POST /%s HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    with run_server(app, http=http_parser) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(5)
            sock.sendall(head % b"read")
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"hello")
            assert sock.recv(1000).endswith(b"\r\n\r\n5")
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head % b"refuse")
            data = read_until_closed(sock)  # the unread body means the connection closes
            assert data.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in data


def test_disconnect_reaches_the_app(run_server: Any, http_parser: str) -> None:
    received: list[str] = []
    done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            received.append(message["type"])
            if message["type"] == "http.disconnect":
                done.set()
                return

    with run_server(app, http=http_parser) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
            time.sleep(0.1)
        assert done.wait(5)
    assert received == ["http.request", "http.disconnect"]


def test_asgi2_app_is_wrapped(run_server: Any) -> None:
    class App:
        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            if self.scope["type"] == "http":
                await hello(self.scope, receive, send)

    with run_server(App) as server:
        assert httpx.get(server.url + "/two").text == "Hello /two!"


def test_unix_domain_socket(run_server: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "server.sock")
    with run_server(hello, uds=path):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            assert client.get("http://localhost/uds").text == "Hello /uds!"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_event_loops(run_server: Any, loop: str) -> None:
    with run_server(hello, loop=loop, threads=2) as server:
        assert httpx.get(server.url).status_code == 200


def test_threads_set_the_default_executor(run_server: Any) -> None:
    from asgiref.sync import sync_to_async

    def thread_name() -> str:
        return threading.current_thread().name

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        name = await sync_to_async(thread_name, thread_sensitive=False)()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    with run_server(app, threads=3) as server:
        assert httpx.get(server.url).text.startswith("asgi-sync")


def test_serves_on_an_inherited_file_descriptor(run_server: Any) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with run_server(hello, fd=sock.detach()):
        assert httpx.get(f"http://127.0.0.1:{port}/fd").text == "Hello /fd!"


def test_request_body_flow_control(run_server: Any, http_parser: str) -> None:
    """While the app does not read, the server stops reading: the client's send blocks."""
    release = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        loops.append(asyncio.get_running_loop())
        await release.wait()
        await echo_body(scope, receive, send)

    total = 64 * 1024 * 1024
    with run_server(app, http=http_parser) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
        sock.setblocking(False)
        chunk, sent = b"x" * 65536, 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        assert sent < total // 2  # held back by the server, not swallowed into memory
        loops[0].call_soon_threadsafe(release.set)
        sock.setblocking(True)
        while sent < total:
            sent += sock.send(chunk[: total - sent])
        sock.settimeout(10)
        response = b""
        while not response.endswith(b"%d" % total):
            data = sock.recv(65536)
            assert data
            response += data
        sock.close()
    assert response.startswith(b"HTTP/1.1 200 OK")


def test_send_after_disconnect_raises_oserror(run_server: Any, http_parser: str) -> None:
    """ASGI HTTP spec 2.4: send() on a closed connection raises an OSError subclass."""
    raised: list[BaseException] = []
    done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(1000):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            raised.append(exc)
        finally:
            done.set()

    with run_server(app, http=http_parser) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(REQUEST)
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert done.wait(5)
    assert len(raised) == 1 and isinstance(raised[0], OSError)
