"""AsyncHttpConsumer through the HttpCommunicator: whole, streamed, and a client leaving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers import AsyncHttpConsumer
from consumers.testing import HttpCommunicator


class Hello(AsyncHttpConsumer):
    """Answers with the method, path, query and body it got."""

    disconnects = 0

    async def handle(self, body: bytes) -> None:
        text = f"{self.scope['method']} {self.scope['path']} {self.scope['query_string']!r} "
        await self.send_response(201, text.encode() + body, headers={"Content-Type": "text/plain"})

    async def disconnect(self) -> None:
        type(self).disconnects += 1


async def test_whole_response_and_disconnect_once() -> None:
    Hello.disconnects = 0
    communicator = HttpCommunicator(Hello.as_asgi(), "POST", "/hi/?x=1", body=b"payload")
    response = await communicator.get_response()
    assert response["status"] == 201
    assert response["headers"] == [(b"content-type", b"text/plain")]
    assert response["body"] == b"POST /hi/ b'x=1' payload"
    await communicator.wait(1)
    assert Hello.disconnects == 1


async def test_body_in_chunks_is_joined() -> None:
    communicator = HttpCommunicator(Hello.as_asgi(), "PUT", "/")
    await communicator.send_input({"type": "http.request", "body": b"ab", "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b"cd", "more_body": False})
    communicator.sent_request = True
    response = await communicator.get_response()
    assert response["body"].endswith(b"abcd")


class Events(AsyncHttpConsumer):
    """Server-sent events: one event per tick until the client leaves."""

    disconnects = 0

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        for number in range(1000):
            await self.send_body(f"data: {number}\n\n".encode(), more_body=True)
            await asyncio.sleep(0.005)
        await self.send_body(b"")

    async def disconnect(self) -> None:
        type(self).disconnects += 1


async def test_streamed_response_and_client_leaving_mid_stream() -> None:
    Events.disconnects = 0
    communicator = HttpCommunicator(Events.as_asgi(), "GET", "/events/")
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output()
    assert start["status"] == 200
    assert start["headers"] == [(b"content-type", b"text/event-stream")]
    first = await communicator.receive_output()
    assert first == {"type": "http.response.body", "body": b"data: 0\n\n", "more_body": True}
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(1)
    assert Events.disconnects == 1


async def test_handle_is_required() -> None:
    communicator = HttpCommunicator(AsyncHttpConsumer.as_asgi(), "GET", "/")
    await communicator.send_input({"type": "http.request"})
    with pytest.raises(NotImplementedError, match="must define async def handle"):
        await communicator.wait(1)


@pytest.mark.parametrize("body", ["text", 42])
async def test_send_body_wants_bytes(body: Any) -> None:
    class Wrong(AsyncHttpConsumer):
        async def handle(self, request_body: bytes) -> None:
            await self.send_headers()
            await self.send_body(body)

    communicator = HttpCommunicator(Wrong.as_asgi(), "GET", "/")
    await communicator.send_input({"type": "http.request"})
    assert (await communicator.receive_output())["type"] == "http.response.start"
    with pytest.raises(TypeError, match="encode it"):
        await communicator.wait(1)
