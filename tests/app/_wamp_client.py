"""An autobahn-python asyncio client for the Application tests."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.wamp._autobahn import (
    ApplicationSession,
    ComponentConfig,
    JsonSerializer,
    WampWebSocketClientFactory,
)


class Client(ApplicationSession):  # type: ignore[misc]  # a class of type Any
    """A session whose ``joined`` resolves on join and ``closed`` is set on disconnect."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.joined: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()

    async def onJoin(self, details: Any) -> None:
        self.joined.set_result(details)

    def onLeave(self, details: Any) -> None:
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(f"refused: {details.reason}"))
        self.disconnect()

    def onDisconnect(self) -> None:
        self.closed.set()


async def connect(host: str, port: int, path: str = "/ws", realm: str = "realm1") -> Client:
    """A client joined to ``realm`` at ws://host:port/path."""
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(ComponentConfig(realm)))
        return made[-1]

    url = f"ws://{host}:{port}{path}"
    factory = WampWebSocketClientFactory(make, url=url, serializers=[JsonSerializer()])
    await asyncio.get_running_loop().create_connection(factory, host, port)
    while not made:  # the factory builds the session once the handshake is done
        await asyncio.sleep(0.005)
    await asyncio.wait_for(made[0].joined, 5)
    return made[0]


async def close(client: Client) -> None:
    """Leave and wait for the disconnect."""
    if client.is_attached():
        client.leave()
    await asyncio.wait_for(client.closed.wait(), 5)
