"""Twisted endpoints from the command line: tcp:, unix:, ssl: and systemd: (an inherited socket),
several at once, with Twisted code running in the app's loop, and under --workers."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
APP_DIR = ("--app-dir", "tests/server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """A server subprocess and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: str) -> None:
        self.process = process
        self.log_path = log_path
        self.final_output: str | None = None  # kept when the log file is gone

    def output(self) -> str:
        """Everything the server has logged so far."""
        if self.final_output is not None:
            return self.final_output
        return Path(self.log_path).read_text(errors="replace")


@contextmanager
def serve(
    *args: str, ready: str = "Serving on", pass_fds: tuple[int, ...] = (), shell: str = ""
) -> Iterator[Served]:
    """Run ``python -m asgi_server *args`` until its log says ``ready``; SIGTERM it after."""
    command = [sys.executable, "-m", "asgi_server", *args]
    if shell:  # e.g. to set LISTEN_PID to the server's own pid before exec
        command = ["bash", "-c", shell + " exec " + " ".join(command)]
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds
        )
        served = Served(process, log.name)
        try:
            deadline = time.monotonic() + 15
            while ready not in served.output():
                assert process.poll() is None, f"the server exited: {served.output()}"
                assert time.monotonic() < deadline, f"no start: {served.output()}"
                time.sleep(0.05)
            yield served
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            served.final_output = served.output()


def unix_get(path: str, target: str = "/") -> bytes:
    """GET over a Unix socket; the whole response."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_tcp_and_unix_endpoints_at_once_with_twisted_code_in_the_app(tmp_path: Path) -> None:
    port, path = free_port(), str(tmp_path / "app.sock")
    args = ("_supervisor_apps:twisted_clock", *APP_DIR, "-e", f"tcp:{port}:interface=127.0.0.1")
    with serve(*args, "--endpoint", f"unix:{path}", ready=f"Serving on unix:{path}") as served:
        response = httpx.get(f"http://127.0.0.1:{port}/")
        assert response.text == (
            f"twisted AsyncioSelectorReactor on ['127.0.0.1', {port}] via http"
        ).replace("[", "(").replace("]", ")")
        assert unix_get(path).endswith(b"twisted AsyncioSelectorReactor on None via http")
    assert served.process.returncode == 0
    assert "Shutting down" in served.output()
    assert not os.path.exists(path)  # Twisted removes its Unix socket


def test_transport_flag_serves_websockets_through_twisted() -> None:
    port = free_port()
    args = ("_supervisor_apps:pid", *APP_DIR, "--transport", "twisted", "--port", str(port))
    with (
        serve(*args) as served,
        websockets.sync.client.connect(f"ws://127.0.0.1:{port}/") as ws,
    ):
        assert ws.recv(timeout=5) == str(served.process.pid)
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    assert "(Twisted)" in served.output()


def test_ssl_endpoint(certificates: Any) -> None:
    port = free_port()
    description = (
        f"ssl:{port}:interface=127.0.0.1:privateKey={certificates.server_key}"
        f":certKey={certificates.server_cert}"
    )
    with serve("_supervisor_apps:twisted_clock", *APP_DIR, "-e", description):
        context = ssl.create_default_context(cafile=str(certificates.ca))
        response = httpx.get(f"https://127.0.0.1:{port}/", verify=context)
    assert response.text.endswith("via https")


def test_systemd_endpoint_serves_an_inherited_socket() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port, fd = listener.getsockname()[1], listener.fileno()
    # systemd passes sockets from fd 3 on, naming the receiving pid: sh's $$ survives exec.
    shell = f"exec 3<&{fd}; export LISTEN_FDS=1 LISTEN_FDNAMES=http LISTEN_PID=$$;"
    args = ("_supervisor_apps:twisted_clock", *APP_DIR, "-e", "systemd:domain=INET:index=0")
    with serve(*args, pass_fds=(fd,), shell=shell):
        listener.close()  # only the server holds the socket now
        response = httpx.get(f"http://127.0.0.1:{port}/")
    assert response.text.startswith("twisted AsyncioSelectorReactor")


def test_workers_on_the_twisted_transport() -> None:
    port = free_port()
    args = ("_supervisor_apps:pid", *APP_DIR, "--transport", "twisted", "--workers", "2")
    with serve(*args, "--port", str(port), ready="is serving") as served:
        pids = set()
        deadline = time.monotonic() + 15
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.add(
                int(httpx.get(f"http://127.0.0.1:{port}/", headers={"connection": "close"}).text)
            )
        assert len(pids) == 2 and served.process.pid not in pids


def test_bad_endpoint_fails_startup_with_the_reason() -> None:
    command = [sys.executable, "-m", "asgi_server", "examples.hello:app", "-e", "nonsense:1"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert "cannot listen on 'nonsense:1'" in done.stderr


@pytest.mark.parametrize(
    ("options", "advice"),
    [
        (("--workers", "2"), "use --host/--port, --uds or --fd with --transport twisted"),
        (("--transport", "asyncio"), "--endpoint needs the Twisted transport"),
    ],
)
def test_endpoints_refuse_options_they_cannot_work_with(
    options: tuple[str, ...], advice: str
) -> None:
    command = [sys.executable, "-m", "asgi_server", "examples.hello:app", *options]
    command += ["-e", f"tcp:{free_port()}"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert advice in done.stderr


@pytest.mark.transports("twisted")
def test_in_process_twisted_servers_release_their_descriptors(run_server: Any) -> None:
    """Each in-process Twisted server gets a private reactor on its loop; its self-pipe must
    not outlive it (a test suite starts hundreds of them)."""

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    with run_server(_hello) as server:  # first use imports and sets up what stays
        httpx.get(server.url)
    before = open_descriptors()
    for _ in range(3):
        with run_server(_hello) as server:
            assert httpx.get(server.url).text == "hello"
    assert open_descriptors() <= before


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})
