"""The wsgi path type on the real server: streaming both ways, backpressure, disconnects,
SCRIPT_NAME/PATH_INFO, Content-Length, and Django's get_wsgi_application() in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from consumers.routing import URLRouter, path
from consumers.web import WsgiApp

CHUNK = 64 * 1024
Environ = dict[str, Any]


def connect(server: Any) -> socket.socket:
    """A raw client socket with a small receive buffer (so that it can fall behind)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    return sock


def test_environ_under_a_mount_point(run_server: Callable[..., Any]) -> None:
    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json"), ("X-A", "1")])
        keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "HTTP_X_THING")
        return [json.dumps({key: environ.get(key) for key in keys}).encode()]

    router = URLRouter([path("app/", WsgiApp(app))])
    with run_server(router) as server:
        response = httpx.get(server.url + "/app/a/b%C3%A9?q=1", headers={"x-thing": "t"})
    assert response.headers["x-a"] == "1"
    assert response.json() == {
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/a/bé".encode().decode("latin-1"),  # PEP 3333: bytes as latin-1
        "QUERY_STRING": "q=1",
        "REQUEST_METHOD": "GET",
        "HTTP_X_THING": "t",
    }


def test_request_body_streams_and_stops_at_content_length(
    run_server: Callable[..., Any],
) -> None:
    first_read = threading.Event()
    seen: list[bytes] = []

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"]
        seen.append(body.read(5))
        first_read.set()  # the app has the start while the client still holds the rest
        seen.append(body.readline())
        seen.append(body.read())
        seen.append(body.read(10))  # after the end: empty at once, no wait for more
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"|".join(seen)]

    with run_server(WsgiApp(app)) as server, connect(server) as sock:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n"
        sock.sendall(head + b"hello")
        assert first_read.wait(5), "the app did not get the first part before the rest"
        sock.sendall(b" line\nrest!")
        answer = sock.recv(65536)
    assert b"content-length: 19\r\n" in answer.lower()
    assert answer.endswith(b"\r\n\r\nhello| line\n|rest!|")


def test_response_streams_with_backpressure(run_server: Callable[..., Any]) -> None:
    produced = [0]
    closed = threading.Event()

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            while produced[0] < 4096:  # 256 MiB if nothing held it back
                produced[0] += 1
                yield b"x" * CHUNK
        finally:
            closed.set()

    with run_server(WsgiApp(app)) as server, connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(CHUNK)  # the response has started streaming
        stable_since, last = time.monotonic(), -1
        while time.monotonic() - stable_since < 0.5:  # until the producer stalls
            if produced[0] != last:
                stable_since, last = time.monotonic(), produced[0]
            time.sleep(0.02)
        assert produced[0] < 256, f"{produced[0]} chunks produced for a client that does not read"
        received = 0
        while not closed.is_set() or received < 4000 * CHUNK:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if produced[0] >= 4096 and received >= 4096 * CHUNK:
                break
    assert produced[0] == 4096


def test_disconnect_mid_response_frees_the_thread(run_server: Callable[..., Any]) -> None:
    closed = threading.Event()

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            while True:
                yield b"x" * CHUNK
        finally:
            closed.set()

    with run_server(WsgiApp(app)) as server:
        sock = connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(CHUNK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset
        assert closed.wait(5), "the WSGI iterable was not closed after the client left"


def test_app_errors_become_500(run_server: Callable[..., Any]) -> None:
    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("boom")

    with run_server(WsgiApp(app)) as server:
        assert httpx.get(server.url + "/").status_code == 500


@pytest.fixture
def django_server(run_server_process: Callable[..., Any]) -> Iterator[Any]:
    """The Django site of tests/web/django_site.py under ``python -m asgi_server``."""
    with run_server_process("tests.web.django_site:application") as server:
        yield server


def test_django_through_the_wsgi_path(django_server: Any) -> None:
    base = django_server.url + "/django"
    with httpx.Client(timeout=30) as client:
        assert client.get(base + "/").text == "hello from django"
        assert client.get(base + "/where/").json() == {
            "path": "/django/where/",
            "script_name": "/django",
            "path_info": "/where/",
        }
        streamed = 0
        with client.stream("GET", base + "/stream/?count=64") as response:
            assert "content-length" not in response.headers  # really streamed
            for chunk in response.iter_bytes():
                streamed += len(chunk)
        assert streamed == 64 * CHUNK


def test_django_large_upload(django_server: Any) -> None:
    payload = os.urandom(1 << 20) * 48  # 48 MiB, written by Django to a temporary file
    digest = hashlib.sha256(payload).hexdigest()
    with httpx.Client(timeout=60) as client:
        response = client.post(
            django_server.url + "/django/upload/", files={"file": ("big.bin", payload)}
        )
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {"size": len(payload), "sha256": digest}
