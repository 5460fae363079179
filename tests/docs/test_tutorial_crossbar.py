"""docs/tutorials/crossbar.md runs as written: asgi-server --crossbar-config serves the example
node's config.json; its backend component (autobahn-python) registers a procedure that the
quickstart's client calls through the router; the static page and the HTTP publisher answer,
and a subscriber of the topic gets what curl published."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.docs._tutorial import shell_lines, tutorial_run, wait_for_line
from tests.wamp.conftest import Wamp

PAGE = "tutorials/crossbar.md"


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
async def test_the_crossbar_tutorial_runs_as_written() -> None:
    lines = shell_lines(PAGE)
    (publish_line,) = [line for line in lines if "/notify" in line]
    with tutorial_run() as run:
        for line in lines[: lines.index(publish_line)]:
            await asyncio.to_thread(run.run, line)
            if "crossbar_node.backend" in line:
                wait_for_line(run.logs[-1], "backend ready", run.servers[-1][0])
        client, page = run.outputs
        assert "com.example.add(2, 3) = 5" in client
        assert "event: hello from autobahn-python" in client
        assert "Exception ignored" not in run.errors[0], run.errors[0]  # a clean exit
        assert "Served by asgi-server from the node's own config" in page

        port = run.ports["8080"]
        wamp = Wamp(None, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", port, "json")
        subscriber = await wamp.connect()
        notices: asyncio.Queue[Any] = asyncio.Queue()
        await subscriber.subscribe(notices.put_nowait, "com.example.notice")
        await asyncio.to_thread(run.run, publish_line)
        assert json.loads(run.outputs[-1])["id"] >= 1
        assert await asyncio.wait_for(notices.get(), 10) == "hello from curl"
        await wamp.close()
