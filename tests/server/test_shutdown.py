"""Graceful shutdown of a real server process on SIGTERM / SIGINT."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest


def request_in_background(url: str) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def fetch() -> None:
        try:
            result.append(httpx.get(url, timeout=10))
        except httpx.HTTPError as exc:
            result.append(exc)

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread, result


def wait_for_output(server: Any, text: str, timeout: float = 10) -> None:
    """Wait until the subprocess server has printed ``text``."""
    deadline = time.monotonic() + timeout
    while text not in server.output():
        assert time.monotonic() < deadline, f"{text!r} never printed:\n{server.output()}"
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_in_flight_request_finishes_then_exit_0(run_server_process: Any, sig: int) -> None:
    with run_server_process("_apps:slow", "--app-dir", "tests/server") as server:
        idle = socket.create_connection(("127.0.0.1", server.port))
        idle.sendall(b"GET /?seconds=0 HTTP/1.1\r\nHost: a\r\n\r\n")
        idle.settimeout(5)
        assert idle.recv(65536).startswith(b"HTTP/1.1 200 OK")  # now an idle keep-alive
        thread, result = request_in_background(server.url + "/?seconds=1")
        wait_for_output(server, "slow request started: 1.0 s")  # the request is in flight
        server.process.send_signal(sig)
        assert idle.recv(100) == b""  # idle connections are closed at once
        idle.close()
        time.sleep(0.2)
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        thread.join(10)
        assert server.process.wait(timeout=10) == 0
    response = result[0]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 200 and response.text == "done after 1.0"
    assert "lifespan shutdown ran" in server.output()


def test_graceful_timeout_cancels_stuck_requests(run_server_process: Any) -> None:
    args = ("--app-dir", "tests/server", "--timeout-graceful-shutdown", "0.3")
    with run_server_process("_apps:slow", *args) as server:
        thread, result = request_in_background(server.url + "/?seconds=30")
        wait_for_output(server, "slow request started: 30.0 s")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5  # not the 30 s the app wanted
        thread.join(10)
    assert isinstance(result[0], httpx.HTTPError)  # the client saw the connection drop
    assert "lifespan shutdown ran" in server.output()
