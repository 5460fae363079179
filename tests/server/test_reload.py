"""--reload: editing a watched module makes the new code serve; other files do not reload."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asgi_server.config import Config
from asgi_server.reload import PathFilter, PollingWatcher

APP_TEMPLATE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""


def write_module(path: Path, text: str) -> None:
    """Write ``text`` and move the mtime forward, so even a coarse clock sees a change."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def get_body(port: int) -> bytes | None:
    """The body of GET / on a fresh connection, or None while no worker answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return None
    return data.partition(b"\r\n\r\n")[2] if data.startswith(b"HTTP/1.1 200") else None


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_editing_a_module_serves_the_new_code(run_server_process: Any, tmp_path: Path) -> None:
    module = tmp_path / "reloadable.py"
    write_module(module, APP_TEMPLATE.format(version="v1"))
    args = ("--reload", "--reload-dir", str(tmp_path), "--app-dir", str(tmp_path))
    args += ("--reload-delay", "0.1", "--timeout-graceful-shutdown", "1")
    with run_server_process("reloadable:app", *args) as server:
        wait_for(lambda: get_body(server.port) == b"v1", "v1 to serve")
        (tmp_path / "notes.txt").write_text("not a *.py file: no reload")
        write_module(module, APP_TEMPLATE.format(version="v2"))
        wait_for(lambda: get_body(server.port) == b"v2", "v2 to serve after the edit")
        # A broken edit leaves the running code serving; fixing it reloads again.
        write_module(module, "this is not python")
        wait_for(lambda: "did not start; the old one keeps serving" in server.output(), "error")
        assert get_body(server.port) == b"v2"
        write_module(module, APP_TEMPLATE.format(version="v3"))
        wait_for(lambda: get_body(server.port) == b"v3", "v3 to serve after the fix")
        assert "notes.txt" not in server.output()
        assert server.output().count("Reloading:") == 3


def test_polling_watcher_reports_changes_by_pattern(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / ".git").mkdir()
    watched, ignored = tmp_path / "pkg" / "views.py", tmp_path / ".git" / "hook.py"
    watched.write_text("a = 1")
    ignored.write_text("b = 1")
    config = Config(reload_dirs=(str(tmp_path),), reload_delay=0.0)
    watcher = PollingWatcher(config)
    assert watcher.changes() == set()
    write_module(watched, "a = 2")
    write_module(ignored, "b = 2")
    (tmp_path / "data.json").write_text("{}")
    assert watcher.changes() == {str(watched)}
    watched.unlink()
    assert watcher.changes() == {str(watched)}


@pytest.mark.parametrize(
    ("path", "reloads"),
    [
        ("/src/app/views.py", True),
        ("/src/app/views.pyc", False),
        ("/src/app/.views.py.swp", False),
        ("/src/.venv/lib/x.py", False),
        ("/src/app/templates/x.html", False),
    ],
)
def test_path_filter_defaults(path: str, reloads: bool) -> None:
    config = Config()
    assert PathFilter(config.reload_includes, config.reload_excludes)(path) is reloads


def test_watchfiles_watcher_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")  # optional: without it the poller above is used
    from asgi_server.reload import WatchfilesWatcher, make_watcher

    watcher = make_watcher(Config(reload_dirs=(str(tmp_path),)))
    assert isinstance(watcher, WatchfilesWatcher)
    seen: set[str] = set()
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "views.py").write_text("a = 1")

    def noticed() -> bool:
        seen.update(watcher.changes())
        return str(tmp_path / "views.py") in seen

    wait_for(noticed, "watchfiles to report views.py")
    assert seen == {str(tmp_path / "views.py")}


def test_reload_with_a_twisted_endpoint(tmp_path: Path) -> None:
    """An endpoint cannot be shared with the next worker: the old one stops, then the new one
    binds it again."""
    module = tmp_path / "reloadable.py"
    write_module(module, APP_TEMPLATE.format(version="v1"))
    port = _free_port()
    command = [sys.executable, "-m", "asgi_server", "reloadable:app", "--reload"]
    command += ["--reload-dir", str(tmp_path), "--app-dir", str(tmp_path)]
    command += ["--reload-delay", "0.1", "-e", f"tcp:{port}:interface=127.0.0.1"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: get_body(port) == b"v1", "v1 to serve")
        write_module(module, APP_TEMPLATE.format(version="v2"))
        wait_for(lambda: get_body(port) == b"v2", "v2 to serve after the edit")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
