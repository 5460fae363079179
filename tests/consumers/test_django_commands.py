"""``manage.py runserver`` through Crossway and ``manage.py runworker``, as real subprocesses of
the test project (tests/consumers/test_django/), talked to over real sockets and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from channel_layers import build_channel_layer
from tests.conftest import get_free_port, wait_until_accepting

PROJECT = Path(__file__).resolve().parent / "test_django"
REPO_ROOT = PROJECT.parents[2]


def project_environment(sqlite_dir: Path, **extra: str) -> dict[str, str]:
    """The test project's environment: its own SQLite file, no PostgreSQL, no Redis."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CROSSWAY_TEST_SQLITE_DIR": str(sqlite_dir)}
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite directory whose database is migrated and holds one user, "worker-admin"."""
    directory = tmp_path_factory.mktemp("django-db")
    env = project_environment(directory, DJANGO_SUPERUSER_PASSWORD="pw")
    manage = [sys.executable, "manage.py"]
    for command in (
        ["migrate", "--noinput", "-v", "0"],
        [
            "createsuperuser",
            "--noinput",
            "--username",
            "worker-admin",
            "--email",
            "admin@example.com",
        ],
    ):
        result = subprocess.run(
            manage + command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    return directory


@contextlib.contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = PROJECT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``manage.py <args>`` in its own process group (the reloader forks a child) and stop
    the whole group on exit."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def whoami_over_websocket(port: int) -> dict[str, object]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/whoami/", open_timeout=10) as ws:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert isinstance(reply, dict)
        return reply


def test_runserver_serves_websocket_http_and_static_files(migrated: Path, tmp_path: Path) -> None:
    port = get_free_port()
    log = tmp_path / "runserver.log"
    with running(["runserver", "--noreload", str(port)], project_environment(migrated), log) as p:
        wait_until_accepting("127.0.0.1", port, p)
        reply = asyncio.run(whoami_over_websocket(port))
        assert reply == {"user": "anonymous", "session_key": None}
        page = httpx.get(f"http://127.0.0.1:{port}/whoami/", timeout=10)
        assert (page.status_code, page.text) == (200, "anonymous")
        assert page.headers["server"] == "crossway"
        static = httpx.get(f"http://127.0.0.1:{port}/static/testproject/hello.txt", timeout=10)
        assert (static.status_code, static.text) == (200, "hello static\n")
    output = log.read_text()
    assert f"Starting ASGI/Crossway development server at http://127.0.0.1:{port}/" in output
    assert '"GET /whoami/ HTTP/1.1" 200' in output  # the access log, as Django's server has one
    assert "Traceback" not in output


def test_runserver_noasgi_is_djangos_own_server(migrated: Path, tmp_path: Path) -> None:
    port = get_free_port()
    args = ["runserver", "--noreload", "--noasgi", str(port)]
    with running(args, project_environment(migrated), tmp_path / "log") as process:
        wait_until_accepting("127.0.0.1", port, process)
        page = httpx.get(f"http://127.0.0.1:{port}/whoami/", timeout=10)
        assert (page.status_code, page.text) == (200, "anonymous")
        assert page.headers["server"].startswith("WSGIServer/")


def test_runserver_without_asgi_application_serves_django_over_http(
    migrated: Path, tmp_path: Path
) -> None:
    port = get_free_port()
    env = project_environment(migrated, CROSSWAY_TEST_NO_ASGI_APPLICATION="1")
    log = tmp_path / "runserver.log"
    with running(["runserver", "--noreload", str(port)], env, log) as process:
        wait_until_accepting("127.0.0.1", port, process)
        page = httpx.get(f"http://127.0.0.1:{port}/whoami/", timeout=10)
        assert (page.status_code, page.text, page.headers["server"]) == (
            200,
            "anonymous",
            "crossway",
        )
    assert "settings.ASGI_APPLICATION is not set" in log.read_text()


def test_runserver_reloads_when_code_changes(migrated: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    port = get_free_port()
    log = tmp_path / "runserver.log"
    with running(["runserver", str(port)], project_environment(migrated), log, project) as p:
        wait_until_accepting("127.0.0.1", port, p)
        url = f"http://127.0.0.1:{port}/whoami/"
        assert httpx.get(url, timeout=10).text == "anonymous"
        urls = project / "testproject" / "urls.py"
        urls.write_text(urls.read_text().replace('else "anonymous"', 'else "reloaded"'))
        deadline = time.monotonic() + 30
        next_touch = time.monotonic() + 1
        text = ""
        while time.monotonic() < deadline and text != "reloaded":
            # Touch it again each second: Django's StatReloader polls mtimes once a second and
            # takes the first mtime it sees as the baseline, which may already be the new one.
            if time.monotonic() >= next_touch:
                urls.touch()
                next_touch += 1
            time.sleep(0.2)
            with contextlib.suppress(httpx.TransportError):
                text = httpx.get(url, timeout=5).text
        assert text == "reloaded", log.read_text()
    assert "changed, reloading" in log.read_text()


async def test_runworker_consumes_a_named_channel(
    migrated: Path, tmp_path: Path, redis_url: str
) -> None:
    prefix = f"runworker-{uuid.uuid4().hex[:8]}"
    env = project_environment(migrated, REDIS_URL=redis_url, CROSSWAY_TEST_LAYER_PREFIX=prefix)
    layer = build_channel_layer(
        {
            "BACKEND": "channel_layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": prefix},
        }
    )
    log = tmp_path / "runworker.log"
    try:
        with running(["runworker", "users"], env, log) as process:
            reply_to = "replies." + uuid.uuid4().hex
            await layer.send("users", {"type": "count.users", "reply_to": reply_to})
            async with asyncio.timeout(20):
                reply = await layer.receive(reply_to)
            assert reply == {"type": "users.counted", "count": 1, "channel": "users"}
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        await layer.close()
    output = log.read_text()
    assert "Worker consuming channels users" in output
    assert "Traceback" not in output


def test_runserver_on_a_busy_port_exits_once_with_an_error(migrated: Path, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "runserver", str(port)],  # with the reloader
            cwd=PROJECT,
            env=project_environment(migrated),
            capture_output=True,
            text=True,
            timeout=60,
        )
    # Exit code 1, not 3: the reloader would take 3 as "restart" and retry forever.
    assert result.returncode == 1, result.stderr
    assert "Could not bind" in result.stderr
    assert "Pick another --port" in result.stderr
