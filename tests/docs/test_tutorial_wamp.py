"""docs/tutorials/wamp-quickstart.md runs as written: the router served by asgi-server, the
autobahn-python client, the autobahn.js client on Node (npm installs the pinned autobahn), and
a publish from HTTP that a subscriber and the in-process subscriber receive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.docs._tutorial import shell_lines, tutorial_run, wait_for_line
from tests.wamp.conftest import Wamp

PAGE = "tutorials/wamp-quickstart.md"


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
async def test_the_wamp_quickstart_runs_as_written() -> None:
    lines = shell_lines(PAGE)
    (curl,) = [line for line in lines if line.startswith("curl")]
    with tutorial_run() as run:
        for line in lines:
            if line != curl:
                await asyncio.to_thread(run.run, line)
        assert "com.example.add(2, 3) = 5" in run.outputs[0]
        assert "event: hello from autobahn-python" in run.outputs[0]
        assert "com.example.add(2, 3) = 5" in run.outputs[2]
        assert "event: hello from autobahn.js" in run.outputs[2]
        # Python's warnings at exit (a task destroyed pending) print no traceback but this:
        assert "Exception ignored" not in run.errors[0], run.errors[0]

        port = run.ports["8000"]
        wamp = Wamp(None, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", port, "json")
        subscriber = await wamp.connect()
        notices: asyncio.Queue[Any] = asyncio.Queue()
        await subscriber.subscribe(notices.put_nowait, "com.example.notice")
        await asyncio.to_thread(run.run, curl)
        assert int(run.outputs[-1]) >= 1  # the publication's id
        assert await asyncio.wait_for(notices.get(), 5) == "hello from curl"
        server, _ = run.servers[0]
        wait_for_line(run.logs[0], "notice: hello from curl", server)  # the in-process subscriber
        await wamp.close()
