"""Checks the chat without a browser or a server: ``python -m examples.chat.check``.

Two members of #garden and one of #lobby talk through ``consumers.testing``'s communicators,
which call the application directly (an in-memory layer, no socket). Exits non-zero, saying
what went wrong, when a message reaches the wrong room or none arrives.
"""

from __future__ import annotations

import asyncio

from consumers.testing import WebsocketCommunicator
from examples.chat.app import application

ORIGIN = [(b"origin", b"http://localhost:8000")]


async def join(room: str) -> WebsocketCommunicator:
    """A member of ``room``: connected, and past the room's greeting."""
    member = WebsocketCommunicator(application, f"/ws/chat/{room}/", headers=ORIGIN)
    connected, _ = await member.connect()
    assert connected, f"the consumer refused to join #{room}"
    assert await member.receive_json_from() == {"type": "joined", "room": room}
    return member


async def main() -> None:
    """alice and bob in #garden, carol in #lobby: only bob and alice see alice's message."""
    alice, bob, carol = await join("garden"), await join("garden"), await join("lobby")
    await alice.send_json_to({"name": "alice", "text": "hello, garden"})
    expected = {"type": "message", "name": "alice", "text": "hello, garden"}
    assert await bob.receive_json_from() == expected, "bob did not get alice's message"
    assert await alice.receive_json_from() == expected, "alice did not get her own message"
    assert await carol.receive_nothing(), "a message crossed from #garden into #lobby"
    for member in (alice, bob, carol):
        await member.disconnect()
    print("the chat works: #garden heard alice, #lobby heard nothing")


if __name__ == "__main__":
    asyncio.run(main())
