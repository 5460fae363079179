"""docs/tutorials/chat.md runs as written: the check script, one server, then two servers that
share a room through a private Redis; real WebSocket clients talk through them."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.docs._tutorial import shell_lines, tutorial_run, wait_for_line

PAGE = "tutorials/chat.md"


def join(tabs: contextlib.ExitStack, port: int, room: str) -> ClientConnection:
    """A tab in ``room`` on the server at ``port``, past the room's greeting."""
    url, origin = f"ws://127.0.0.1:{port}/ws/chat/{room}/", f"http://127.0.0.1:{port}"
    socket = tabs.enter_context(connect(url, origin=origin, open_timeout=30))  # type: ignore[arg-type]
    assert json.loads(socket.recv(timeout=30)) == {"type": "joined", "room": room}
    return socket


def say(socket: ClientConnection, name: str, text: str) -> dict[str, Any]:
    """Send a line; return the message it becomes."""
    socket.send(json.dumps({"name": name, "text": text}))
    return {"type": "message", "name": name, "text": text}


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_chat_tutorial_runs_as_written(redis_url: str) -> None:
    lines = shell_lines(PAGE)
    assert any("examples.chat.check" in line for line in lines)
    assert sum("--port 800" in line for line in lines) == 3
    with tutorial_run(TUTORIAL_CHANNEL_LAYERS_URL=redis_url) as run, contextlib.ExitStack() as tabs:
        for line in lines:
            run.run(line)
        assert "the chat works" in run.outputs[0]
        one, first, second = (run.ports[port] for port in ("8000", "8001", "8002"))

        alice, bob = join(tabs, one, "lobby"), join(tabs, one, "lobby")
        expected = say(alice, "alice", "hi")
        assert json.loads(bob.recv(timeout=30)) == expected

        carol, dave = join(tabs, first, "garden"), join(tabs, second, "garden")
        expected = say(carol, "carol", "across processes")
        assert json.loads(dave.recv(timeout=30)) == expected
        for log, (server, _) in zip(run.logs[-2:], run.servers[-2:], strict=True):
            wait_for_line(log, "default: RedisChannelLayer redis://", server)
