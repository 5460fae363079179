"""What the hot path's shortcuts must not change: proxy handling that skips requests without
X-Forwarded headers, the per-address memo of proxy trust, closed connections freed by
reference counting (not left to the cyclic garbage collector), the named request task that
still yields to a loop's task factory, and the per-server scope base."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import weakref
from typing import Any

from asgi_server.asgi.http import scope_template
from asgi_server.config import Config
from asgi_server.connection.http import TASK_NAME
from asgi_server.server import ServerState

GET = b"GET / HTTP/1.1\r\nHost: a\r\n%s\r\n"


def client_echo(seen: list[Any]) -> Any:
    """An app that answers with the client address and scheme it was given."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(scope)
        body = f"{scope['client'][0]} {scope['scheme']}".encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def read_response(sock: socket.socket) -> bytes:
    """One response with a content-length: head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return body


def test_proxy_headers_are_read_per_request(run_server: Any, http_parser: str) -> None:
    """On one keep-alive connection from a trusted peer, only the request that carries
    X-Forwarded headers is rewritten; the ones before and after keep the peer's address."""
    seen: list[Any] = []
    with (
        run_server(client_echo(seen), http=http_parser) as server,
        socket.create_connection((server.host, server.port), timeout=5) as sock,
    ):
        sock.sendall(GET % b"")
        assert read_response(sock) == b"127.0.0.1 http"
        sock.sendall(GET % b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n")
        assert read_response(sock) == b"1.2.3.4 https"
        sock.sendall(GET % b"")
        assert read_response(sock) == b"127.0.0.1 http"
    assert len(seen) == 3


def test_proxy_trust_is_memoized_per_address() -> None:
    state = ServerState(Config(forwarded_allow_ips="10.0.0.0/8"), None)
    assert state.trusted_proxy(("10.1.2.3", 5)) is state.proxy_trust
    assert state.trusted_proxy(("10.1.2.3", 6)) is state.proxy_trust  # the memo's answer
    assert state.trusted_proxy(("192.168.1.1", 5)) is None
    assert state.trusted_proxy(("192.168.1.1", 5)) is None
    assert state.trusted_proxy(None) is None
    assert ServerState(Config(proxy_headers=False), None).trusted_proxy(("10.1.2.3", 5)) is None


def test_a_closed_connection_is_freed_without_the_cyclic_gc(run_server: Any) -> None:
    """The connection and its handler refer to each other; closing must break that, or every
    closed connection waits for a garbage collection."""
    gc.disable()
    try:
        with run_server(client_echo([])) as server:
            state = server.server.state
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                sock.sendall(GET % b"")
                assert read_response(sock) == b"127.0.0.1 http"
                (connection,) = tuple(state.connections)
                handler = weakref.ref(connection.handler)
                del connection
            deadline = time.monotonic() + 5
            while state.connections and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not state.connections
            deadline = time.monotonic() + 2
            while handler() is not None and time.monotonic() < deadline:
                time.sleep(0.01)  # the loop may hold the last reference until its next turn
            assert handler() is None, gc.get_referrers(handler())
    finally:
        gc.enable()


def test_a_closed_connection_leaves_its_parser_to_reference_counting(
    run_server: Any, http_parser: str
) -> None:
    """llhttp's parser holds our parser's bound callbacks: closing must break that cycle too,
    or each connection leaves its parser (and ten objects with it) to the cyclic GC."""
    gc.disable()
    try:
        with run_server(client_echo([]), http=http_parser) as server:
            state = server.server.state
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                deadline = time.monotonic() + 5
                connection = None
                while connection is None or getattr(connection.handler, "core", None) is None:
                    assert time.monotonic() < deadline, "the connection was not accepted"
                    time.sleep(0.01)  # accepted (the server's thread): taken before it closes
                    connection = next(iter(tuple(state.connections)), None)
                events = weakref.ref(connection.handler.core._raw)  # held by the parser
                del connection
                sock.sendall(GET % b"Connection: close\r\n")
                assert read_response(sock) == b"127.0.0.1 http"
                assert sock.recv(100) == b""  # closed by the server
            deadline = time.monotonic() + 5
            while events() is not None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert events() is None, [type(r) for r in gc.get_referrers(events())]
    finally:
        gc.enable()


def test_the_request_task_is_named_and_a_loop_task_factory_is_honoured(run_server: Any) -> None:
    """The app task is built directly (named, no "Task-<n>" formatted per request) only while
    the loop has no task factory: once the app installs one, requests go through it."""
    names: list[str] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=loop, name="made-by-factory", **kwargs)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        asyncio.get_running_loop().set_task_factory(factory)
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with (
        run_server(app) as server,
        socket.create_connection((server.host, server.port), timeout=5) as sock,
    ):
        sock.sendall(GET % b"")
        assert read_response(sock) == b"ok"
        sock.sendall(GET % b"")
        assert read_response(sock) == b"ok"
    assert names == [TASK_NAME, "made-by-factory"]


def test_scope_templates_share_a_base_per_server_yet_keep_each_connection_s_own() -> None:
    """The part of the scope every connection of a server shares is built once; templates of
    servers with another root path or lifespan state, and of other peers, stay their own."""
    state: dict[str, Any] = {"db": 1}
    first = scope_template(("1.1.1.1", 1), ("0.0.0.0", 80), "http", "/a", state)
    other = scope_template(("2.2.2.2", 2), ("0.0.0.0", 443), "https", "/b", None)
    again = scope_template(("3.3.3.3", 3), ("0.0.0.0", 80), "http", "/a", state)
    assert (first["client"], first["scheme"], first["root_path"], first["state"]) == (
        ("1.1.1.1", 1),
        "http",
        "/a",
        state,
    )
    assert (other["client"], other["server"], other["scheme"]) == (
        ("2.2.2.2", 2),
        ("0.0.0.0", 443),
        "https",
    )
    assert (other["root_path"], other["path"], "state" in other) == ("/b", "/b", False)
    assert again["client"] == ("3.3.3.3", 3) and first["client"] == ("1.1.1.1", 1)
    assert again["state"] is state and again is not first
