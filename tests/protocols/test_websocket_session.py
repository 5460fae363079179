"""The ASGI WebSocket state machine (asgi/websocket.py) with a recording shell, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_server.asgi.websocket import ClientDisconnected, WebsocketSession


class RecordingShell:
    """Records what the session asks of the transport."""

    def __init__(self) -> None:
        self.writing_paused = False
        self.calls: list[tuple[Any, ...]] = []

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("accept", subprotocol, headers))

    def send_message(self, data: str | bytes) -> None:
        self.calls.append(("send", data))

    def close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def send_http_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("http", status))

    def send_http_body(self, body: bytes, more_body: bool) -> None:
        self.calls.append(("body", body, more_body))

    def pause_reading(self) -> None:
        self.calls.append(("pause",))

    def resume_reading(self) -> None:
        self.calls.append(("resume",))

    async def wait_writable(self) -> None:
        self.calls.append(("wait",))


def session(max_queue: int = 32) -> tuple[WebsocketSession, RecordingShell]:
    shell = RecordingShell()
    return WebsocketSession({"type": "websocket"}, shell, max_queue), shell


async def test_reading_pauses_only_past_the_queue_limit_and_resumes_at_half() -> None:
    ws, shell = session(max_queue=32)
    assert await ws.receive() == {"type": "websocket.connect"}
    for i in range(100):
        ws.message_received(f"m{i}")
    assert shell.calls == [("pause",)]  # once, when the 33rd message arrived
    for i in range(100):
        assert await ws.receive() == {"type": "websocket.receive", "text": f"m{i}"}
        if i < 100 - 17:
            assert ("resume",) not in shell.calls
    assert shell.calls == [("pause",), ("resume",)]


async def test_messages_before_disconnect_are_delivered_first() -> None:
    ws, _ = session()
    await ws.receive()
    ws.message_received(b"last words")
    ws.disconnected(1001, "bye")
    assert await ws.receive() == {"type": "websocket.receive", "bytes": b"last words"}
    disconnect = {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}
    assert await ws.receive() == disconnect
    assert await ws.receive() == disconnect  # again, not a hang


async def test_order_is_enforced() -> None:
    ws, shell = session()
    with pytest.raises(RuntimeError, match=r"websocket\.accept"):
        await ws.send({"type": "websocket.send", "text": "too early"})
    await ws.send({"type": "websocket.accept", "subprotocol": "chat"})
    with pytest.raises(RuntimeError, match=r"websocket\.send"):
        await ws.send({"type": "websocket.accept"})
    with pytest.raises(TypeError, match="'bytes' or a 'text'"):
        await ws.send({"type": "websocket.send"})
    await ws.send({"type": "websocket.close", "code": 4000, "reason": "done"})
    await ws.send({"type": "websocket.close"})  # closing twice is harmless
    with pytest.raises(ClientDisconnected):
        await ws.send({"type": "websocket.send", "text": "after close"})
    assert shell.calls == [("accept", "chat", []), ("close", 4000, "done")]


async def test_close_before_accept_is_a_403_and_denial_streams_a_body() -> None:
    ws, shell = session()
    await ws.send({"type": "websocket.close"})
    assert shell.calls == [("http", 403), ("body", b"Forbidden", False)]
    ws, shell = session()
    await ws.send({"type": "websocket.http.response.start", "status": 401, "headers": []})
    await ws.send({"type": "websocket.http.response.body", "body": b"a", "more_body": True})
    await ws.send({"type": "websocket.http.response.body", "body": b"b"})
    assert shell.calls == [("http", 401), ("body", b"a", True), ("body", b"b", False)]


async def test_send_waits_while_writing_is_paused() -> None:
    ws, shell = session()
    await ws.send({"type": "websocket.accept"})
    shell.writing_paused = True
    await ws.send({"type": "websocket.send", "bytes": b"x"})
    assert shell.calls[-2:] == [("send", b"x"), ("wait",)]


async def test_an_idle_session_keeps_no_inbox() -> None:
    """Issue 18: an empty deque is ~700 bytes per idle connection; the inbox exists only while
    messages wait, and flow control still resumes reading when it drains."""
    ws, shell = session(max_queue=2)
    assert not hasattr(ws, "__dict__") and ws._inbox is None  # private: read for this test
    await ws.receive()  # websocket.connect
    for n in range(4):
        ws.message_received(str(n))
    assert [(await ws.receive())["text"] for _ in range(4)] == ["0", "1", "2", "3"]
    assert shell.calls == [("pause",), ("resume",)] and ws._inbox is None


async def test_a_text_send_keeps_the_checks_of_every_send() -> None:
    """The fast path for text sends: bytes still win over text, a non-str text still goes the
    checked way (bytes in "text" are sent as bytes, anything else is a TypeError), and a paused
    writer still makes the sender wait."""
    ws, shell = session()
    await ws.send({"type": "websocket.accept"})
    await ws.send({"type": "websocket.send", "text": "hi"})
    await ws.send({"type": "websocket.send", "text": ""})
    await ws.send({"type": "websocket.send", "text": "t", "bytes": b"b"})
    await ws.send({"type": "websocket.send", "text": b"raw"})
    await ws.send({"type": "websocket.send", "text": "again", "bytes": None})
    with pytest.raises(TypeError, match="'bytes' or a 'text'"):
        await ws.send({"type": "websocket.send", "text": 5})
    shell.writing_paused = True
    await ws.send({"type": "websocket.send", "text": "slow"})
    sends = [("send", "hi"), ("send", ""), ("send", b"b"), ("send", b"raw"), ("send", "again")]
    assert shell.calls[1:] == [*sends, ("send", "slow"), ("wait",)]
    await ws.send({"type": "websocket.close"})
    with pytest.raises(ClientDisconnected):
        await ws.send({"type": "websocket.send", "text": "after close"})
