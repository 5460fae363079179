"""--workers: a supervisor process, worker processes on shared sockets, restarts and recycling.

Each test runs ``python -m asgi_server --workers N`` as a subprocess and talks to it over real
sockets, one connection per request so that the kernel may pick any worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from asgi_server.config import Config
from asgi_server.supervisor import with_request_jitter

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_DIR = ("--app-dir", "tests/server")
FAST = ("--timeout-graceful-shutdown", "2", "--no-access-log")


def get_pid(port: int, query: str = "", timeout: float = 5.0) -> int:
    """One request on a fresh connection; the body is the serving worker's pid."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET /{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    return int(body)


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as file:
            found.update(int(child) for child in file.read().split())
    return found


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def serving_pids(port: int, count: int) -> set[int]:
    """Make requests until ``count`` distinct workers have answered."""
    seen: set[int] = set()

    def enough() -> bool:
        seen.add(get_pid(port))
        return len(seen) >= count

    wait_for(enough, f"{count} distinct workers to answer")
    return seen


def test_workers_serve_from_distinct_processes(run_server_process: Any) -> None:
    with run_server_process("_supervisor_apps:pid", "--workers", "2", *APP_DIR, *FAST) as server:
        pids = serving_pids(server.port, 2)
        assert server.process.pid not in pids
        assert pids <= children(server.process.pid)


def test_a_killed_worker_is_replaced(run_server_process: Any) -> None:
    with run_server_process("_supervisor_apps:pid", "--workers", "2", *APP_DIR, *FAST) as server:
        victim, survivor = serving_pids(server.port, 2)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: "replacing it" in server.output(), "the replacement log")
        pids = serving_pids(server.port, 2)
        assert victim not in pids and survivor in pids
        assert pids <= children(server.process.pid)
        assert f"Worker [{victim}] died (exit code -9)" in server.output()


def test_sighup_restarts_every_worker_without_refusing_a_connection(
    run_server_process: Any,
) -> None:
    with run_server_process("_supervisor_apps:pid", "--workers", "2", *APP_DIR, *FAST) as server:
        old = serving_pids(server.port, 2)
        errors: list[BaseException] = []
        answered: list[int] = []
        stop = threading.Event()

        def client_loop() -> None:
            while not stop.is_set():
                try:
                    answered.append(get_pid(server.port))
                except BaseException as exc:
                    errors.append(exc)

        client = threading.Thread(target=client_loop)
        client.start()
        try:
            wait_for(lambda: len(answered) > 5, "the client loop to run")
            server.process.send_signal(signal.SIGHUP)
            # Done when two new workers answer and the old ones have exited.
            wait_for(
                lambda: (
                    len(set(answered[-50:]) - old) >= 2 and not old & children(server.process.pid)
                ),
                "the new workers to replace the old ones",
            )
        finally:
            stop.set()
            client.join(10)
        assert errors == []
        assert len(answered) > 20
        assert "SIGHUP: restarting the workers one at a time" in server.output()


def test_sigterm_finishes_in_flight_requests_and_exits_zero(run_server_process: Any) -> None:
    with run_server_process("_supervisor_apps:pid", "--workers", "2", *APP_DIR, *FAST) as server:
        serving_pids(server.port, 2)  # both workers serve (the socket accepts before they do)
        result: list[int] = []
        request = threading.Thread(target=lambda: result.append(get_pid(server.port, "?sleep=1")))
        request.start()
        time.sleep(0.3)  # the request is in flight in one worker
        server.process.send_signal(signal.SIGTERM)
        request.join(10)
        assert server.process.wait(10) == 0
        assert len(result) == 1  # answered 200, not cut off
        assert server.output().count("lifespan shutdown") == 2


def test_max_requests_recycles_workers(run_server_process: Any) -> None:
    args = ("--workers", "2", "--limit-max-requests", "3", *APP_DIR, *FAST)
    with run_server_process("_supervisor_apps:pid", *args) as server:
        pids = set()
        for _ in range(12):
            pids.add(wait_for(lambda: _try_get_pid(server.port), "an answer"))
            # The quota is checked on the server's 50 ms tick: pace the client past it.
            time.sleep(0.1)
        # 12 requests at 3 per worker need at least 4 worker processes.
        assert len(pids) >= 4
        assert "reached --limit-max-requests; replacing it" in server.output()
        assert len(children(server.process.pid) & pids) <= 2


def _try_get_pid(port: int) -> int | None:
    # A worker that reached its quota closes its listener while the kernel may still hand it a
    # queued connection; such a connection is closed unanswered, and the client retries.
    try:
        return get_pid(port)
    except (OSError, AssertionError, ValueError):
        return None


def test_startup_failure_exits_with_code_3(free_port: int) -> None:
    command = [sys.executable, "-m", "asgi_server", "_supervisor_apps:broken", "--workers", "2"]
    command += ["--port", str(free_port), *APP_DIR, *FAST]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert "database unreachable" in done.stderr
    assert "failed to start (exit code 3)" in done.stderr


def test_jitter_spreads_the_request_limit() -> None:
    config = Config(limit_max_requests=100, limit_max_requests_jitter=10)
    limits = {with_request_jitter(config).limit_max_requests for _ in range(200)}
    assert limits <= set(range(100, 111)) and len(limits) > 5
    assert with_request_jitter(Config(limit_max_requests=100)).limit_max_requests == 100


def test_workers_share_a_unix_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "app.sock")
    command = [sys.executable, "-m", "asgi_server", "_supervisor_apps:pid", "--workers", "2"]
    command += ["--uds", path, *APP_DIR, *FAST]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    try:
        pids: set[int] = set()

        def two_workers_answered() -> bool:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                try:
                    sock.connect(path)
                except OSError:  # not bound yet
                    return False
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            pids.add(int(data.partition(b"\r\n\r\n")[2]))
            return len(pids) == 2

        wait_for(two_workers_answered, "two workers on the Unix socket")
        assert pids <= children(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    assert not os.path.exists(path)  # removed when the supervisor exits


def test_workers_serve_tls(run_server_process: Any, certificates: Any) -> None:
    tls = ("--ssl-certfile", str(certificates.server_cert))
    tls += ("--ssl-keyfile", str(certificates.server_key))
    with run_server_process("_supervisor_apps:pid", "--workers", "2", *tls, *APP_DIR, *FAST) as s:
        context = certificates.client_context()
        pids: set[int] = set()

        def two_workers_answered() -> bool:
            url = f"https://127.0.0.1:{s.port}/"
            pids.add(int(httpx.get(url, verify=context, headers={"connection": "close"}).text))
            return len(pids) == 2

        wait_for(two_workers_answered, "two workers over TLS")
