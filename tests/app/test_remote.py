"""A remote component: the same decorated handlers, as an autobahn-python client of a router in
another process, reconnecting after the router restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.app import Application, Context
from tests.app._wamp_client import close, connect
from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting
from tests.wamp._autobahn import PublishOptions

ROUTER = """
from consumers.app import Application
app = Application("router")
"""


class RouterProcess:
    """A router app served by asgi-server in its own process, on a fixed port."""

    def __init__(self, directory: Path) -> None:
        (directory / "router_app.py").write_text(ROUTER)
        self.directory = directory
        self.port = get_free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "asgi_server", "router_app:app"]
        command += ["--port", str(self.port), "--app-dir", str(self.directory)]
        command += ["--timeout-graceful-shutdown", "1"]
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(command, env=environment, cwd=REPO_ROOT)
        wait_until_accepting("127.0.0.1", self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[RouterProcess]:
    running = RouterProcess(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


async def _call_when_registered(port: int, procedure: str, *args: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        client = await connect("127.0.0.1", port)
        try:
            return await client.call(procedure, *args)
        except Exception as exc:  # no_such_procedure until the component has (re)joined
            if "no_such_procedure" not in str(exc) or time.monotonic() > deadline:
                raise
        finally:
            await close(client)
        await asyncio.sleep(0.05)


async def test_remote_component_serves_calls_and_reconnects(router: RouterProcess) -> None:
    auth = Application("auth", connect_to=f"ws://127.0.0.1:{router.port}/ws", realm="realm1")
    seen: list[str] = []

    @auth.wamp.register()
    async def signin(ctx: Context, username: str) -> str:
        return f"welcome {username}"

    @auth.wamp.subscribe("auth.audit")
    def audit(ctx: Context, text: str) -> None:
        seen.append(text)

    await auth.startup()
    try:
        assert await _call_when_registered(router.port, "auth.signin", "ada") == "welcome ada"
        await auth.wamp.publish("auth.audit", "not to myself")  # excluded: its own publication
        client = await connect("127.0.0.1", router.port)
        acknowledged = PublishOptions(acknowledge=True)
        await client.publish("auth.audit", "from a client", options=acknowledged)
        await close(client)
        while not seen:
            await asyncio.sleep(0.02)
        assert seen == ["from a client"]
        router.stop()
        router.start()  # same port: the component reconnects with backoff
        assert await _call_when_registered(router.port, "auth.signin", "bob") == "welcome bob"
        assert auth.remote is not None and auth.remote.joins == 2
    finally:
        await auth.shutdown()
