"""The chat example's application, through the communicators (the browser test drives it live)."""

from __future__ import annotations

from consumers.testing import HttpCommunicator, WebsocketCommunicator
from examples.chat.app import application

ORIGIN = [(b"origin", b"http://127.0.0.1:8000")]


async def test_pages_are_served_and_nothing_else() -> None:
    page = await HttpCommunicator(application, "GET", "/").get_response()
    assert page["status"] == 200
    assert (b"content-type", b"text/html; charset=utf-8") in page["headers"]
    assert b'<ul id="messages"' in page["body"]
    script = await HttpCommunicator(application, "GET", "/static/chat.js").get_response()
    assert script["status"] == 200 and b"new WebSocket" in script["body"]
    for path in ("/static/missing.js", "/static/..%2Fapp.py", "/elsewhere"):
        response = await HttpCommunicator(application, "GET", path).get_response()
        assert response["status"] == 404, path
    response = await HttpCommunicator(application, "POST", "/").get_response()
    assert response["status"] == 405


async def test_rooms_are_separate() -> None:
    alice = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=ORIGIN)
    bob = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=ORIGIN)
    carol = WebsocketCommunicator(application, "/ws/chat/other/", headers=ORIGIN)
    for communicator in (alice, bob, carol):
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from())["type"] == "joined"
    await alice.send_json_to({"name": "alice", "text": " hi <b>all</b> "})
    expected = {"type": "message", "name": "alice", "text": "hi <b>all</b>"}
    assert await alice.receive_json_from() == expected
    assert await bob.receive_json_from() == expected
    assert await carol.receive_nothing()
    await bob.send_json_to({"text": "", "name": "bob"})  # empty messages are dropped
    await bob.send_json_to(["not", "an", "object"])
    assert await alice.receive_nothing()
    for communicator in (alice, bob, carol):
        await communicator.disconnect()


async def test_foreign_origin_is_refused() -> None:
    evil = [(b"origin", b"http://evil.example")]
    communicator = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=evil)
    assert await communicator.connect() == (False, 1000)
