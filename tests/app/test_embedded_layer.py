"""``asgi-server --workers N`` for any app (not only ``app.run()``): with no layer configured the
supervisor starts an embedded Redis that the workers share, so a group message sent while one
worker serves a request reaches a WebSocket held by the other; it stops the Redis and removes
its directory at shutdown. A configured layer (here Django's CHANNEL_LAYERS) wins."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.conftest import REPO_ROOT, get_free_port

APP = """
import os
from consumers import AsyncHttpConsumer, AsyncJsonWebsocketConsumer
from consumers.routing import ProtocolTypeRouter, URLRouter, path

WORKER = os.environ["ASGI_SERVER_WORKER_INDEX"]


class Shout(AsyncHttpConsumer):
    async def handle(self, body):
        await self.channel_layer.group_send("room", {"type": "room.shout", "sender": WORKER})
        await self.send_response(200, WORKER.encode())


class Listen(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add("room", self.channel_name)
        await self.accept()
        await self.send_json({"worker": WORKER})

    async def room_shout(self, event):
        await self.send_json({"heard": event["sender"]})


application = ProtocolTypeRouter({
    "http": URLRouter([path("shout", Shout.as_asgi())]),
    "websocket": URLRouter([path("listen", Listen.as_asgi())]),
})
"""


def _until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


@contextlib.contextmanager
def serve_two_workers(directory: Path, **env: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m asgi_server shouter:application --workers 2``, with no layer configured
    unless ``env`` configures one; yields the port and the process (SIGTERM-ed at the end)."""
    (directory / "shouter.py").write_text(APP)
    port = get_free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    for name in ("CHANNEL_LAYERS_URL", "DJANGO_SETTINGS_MODULE"):
        if name not in env:
            environment.pop(name, None)
    command = [sys.executable, "-m", "asgi_server", "shouter:application", "--workers", "2"]
    command += ["--app-dir", str(directory), "--port", str(port), "--no-access-log"]
    with (directory / "log.txt").open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
    try:
        try:  # generous: the suite shares a loaded machine
            _until(lambda: _log(directory).count("is serving") >= 2, "two workers", timeout=90)
        except AssertionError:
            raise AssertionError(f"two workers never served; the log:\n{_log(directory)}") from None
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def _log(directory: Path) -> str:
    return (directory / "log.txt").read_text(errors="replace")


def _listener_on(port: int, worker: str) -> ClientConnection:
    """A WebSocket that the kernel handed to ``worker`` (new connections until one is)."""

    def attempt() -> ClientConnection | None:
        with contextlib.ExitStack() as stack:
            socket = stack.enter_context(connect(f"ws://127.0.0.1:{port}/listen", open_timeout=15))
            if json.loads(socket.recv(15))["worker"] == worker:
                stack.pop_all()  # the caller closes it
                return socket
        return None

    found: ClientConnection = _until(attempt, f"a WebSocket on worker {worker}")
    return found


def _shout_from(port: int, worker: str) -> bool:
    answer = httpx.post(f"http://127.0.0.1:{port}/shout", headers={"connection": "close"})
    return answer.text == worker


def test_two_workers_of_any_app_share_an_embedded_redis(tmp_path: Path) -> None:
    with serve_two_workers(tmp_path) as (port, process):
        started = re.search(
            r"Embedded Redis \[(\d+)\] for the worker processes on (\S+)", _log(tmp_path)
        )
        assert started is not None, _log(tmp_path)
        redis_pid, socket_path = int(started.group(1)), started.group(2)
        assert os.stat(os.path.dirname(socket_path)).st_mode & 0o777 == 0o700
        with _listener_on(port, "2") as listener:
            # A request served by worker 1 sends to the group; worker 2's member hears it.
            _until(lambda: _shout_from(port, "1"), "a request served by worker 1")
            while (heard := json.loads(listener.recv(15))) != {"heard": "1"}:
                assert "heard" in heard  # shouts from worker 2 may come first
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    log = _log(tmp_path)
    assert "keeps its channels and groups in this process" not in log  # no memory warning
    assert "Embedded Redis stopped" in log
    assert not os.path.exists(os.path.dirname(socket_path))  # no files left behind
    _until(lambda: not _alive(redis_pid), "the embedded redis-server exited")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_django_channel_layers_setting_wins(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "shout_settings.py").write_text(
        "SECRET_KEY = 'x'\nINSTALLED_APPS = []\n"
        "CHANNEL_LAYERS = {'default': {'BACKEND': 'channels_redis.core.RedisChannelLayer',"
        f" 'CONFIG': {{'hosts': [{redis_url!r}]}}}}}}\n"
    )
    django = {"DJANGO_SETTINGS_MODULE": "shout_settings"}
    with serve_two_workers(tmp_path, **django) as (port, _), _listener_on(port, "2") as listener:
        _until(lambda: _shout_from(port, "1"), "a request served by worker 1")
        while (heard := json.loads(listener.recv(15))) != {"heard": "1"}:
            assert "heard" in heard
    log = _log(tmp_path)
    assert "Embedded Redis" not in log
    assert log.count("default: RedisChannelLayer redis://") == 2, log
