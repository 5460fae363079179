"""Fixtures for the WAMP tests: a router behind the real server, and autobahn-python clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router
from tests.wamp._autobahn import (
    ApplicationSession,
    CBORSerializer,
    ComponentConfig,
    JsonSerializer,
    MsgPackSerializer,
    WampWebSocketClientFactory,
)

SERIALIZERS: dict[str, Callable[[], Any]] = {
    "json": JsonSerializer,
    "msgpack": MsgPackSerializer,
    "cbor": CBORSerializer,
}
#: The same serializers in batched mode (wamp.2.*.batched): not in the ``serializer`` fixture,
#: tests ask for them by name.
BATCHED: dict[str, Callable[[], Any]] = {
    f"{name}.batched": (lambda make=make: make(batched=True)) for name, make in SERIALIZERS.items()
}


class Client(ApplicationSession):  # type: ignore[misc]  # a class of type Any
    """An autobahn-python session that resolves ``joined`` on join and ``left`` on disconnect."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future[Any] = loop.create_future()
        self.left: asyncio.Future[Any] = loop.create_future()
        self.closed = asyncio.Event()

    async def onJoin(self, details: Any) -> None:
        self.joined.set_result(details)

    def onLeave(self, details: Any) -> None:
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(f"refused: {details.reason} {details.message}"))
        if not self.left.done():
            self.left.set_result(details)
        self.disconnect()

    def onDisconnect(self) -> None:
        self.closed.set()


class Wamp:
    """A running router behind the real server, and a factory of connected clients."""

    def __init__(
        self, router: Router | None, url: str, host: str, port: int, serializer: str
    ) -> None:
        self.router = router
        self.url = url
        self.host = host
        self.port = port
        self.serializer = serializer
        self.clients: list[Client] = []

    async def connect(self, realm: str = "realm1", serializer: str | None = None) -> Client:
        """A client joined to ``realm`` (raises if the router refuses it)."""
        session = await self.transport(realm, serializer)
        await asyncio.wait_for(session.joined, 5)
        return session

    async def transport(self, realm: str = "realm1", serializer: str | None = None) -> Client:
        """A client whose transport is open (joined or not: await ``client.joined``)."""
        made: list[Client] = []

        def make() -> Client:
            made.append(Client(ComponentConfig(realm)))
            return made[-1]

        make_serializer = {**SERIALIZERS, **BATCHED}[serializer or self.serializer]
        factory = WampWebSocketClientFactory(make, url=self.url, serializers=[make_serializer()])
        loop = asyncio.get_running_loop()
        await loop.create_connection(factory, self.host, self.port)
        for _ in range(200):
            if made:
                break
            await asyncio.sleep(0.005)
        self.clients.append(made[0])
        return made[0]

    async def close(self) -> None:
        for client in self.clients:
            if client.is_attached():
                client.leave()
        for client in self.clients:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(client.closed.wait(), 2)

    def in_router_loop(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` in the router's loop thread and return its result (from a thread)."""
        assert self.router is not None and self.router.loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(function), self.router.loop)
        return future.result(5)

    async def run_in_router(self, function: Callable[[], Any]) -> Any:
        """``in_router_loop`` for async tests."""
        return await asyncio.to_thread(self.in_router_loop, function)

    def _realms(self) -> list[Any]:
        assert self.router is not None
        return list(self.router._realms.values())

    async def idle_calls(self, timeout: float = 5.0) -> bool:
        """Wait until no call is pending in any realm."""
        for _ in range(int(timeout / 0.02)):
            realms = await self.run_in_router(self._realms)
            if not any(realm.dealer.pending for realm in realms):
                return True
            await asyncio.sleep(0.02)
        return False

    async def idle(self, timeout: float = 5.0) -> bool:
        """Wait until no remote client has left anything behind: no session, subscription,
        registration or call in any realm except those of the router's in-process components."""
        for _ in range(int(timeout / 0.02)):
            if await self.run_in_router(self._only_components_left):
                return True
            await asyncio.sleep(0.02)
        return False

    def _only_components_left(self) -> bool:
        assert self.router is not None
        components = {component.id for component in self.router.components}
        for realm in self.router._realms.values():
            if not set(realm.sessions) <= components or realm.dealer.pending:
                return False
            owners = set(realm.state._by_session)  # type: ignore[attr-defined]
            if not owners <= components:
                return False
        return True


async def _call(function: Callable[[], Any]) -> Any:
    result = function()
    if asyncio.iscoroutine(result):
        result = await result
    return result


def application(router: Router) -> Any:
    """The router mounted at /ws in a URLRouter, as a project would."""
    return ProtocolTypeRouter({"websocket": URLRouter([path("ws", router.as_asgi())])})


@pytest.fixture(params=list(SERIALIZERS))
def serializer(request: pytest.FixtureRequest) -> str:
    """Each WAMP serializer in turn: json, msgpack, cbor."""
    return str(request.param)


@pytest.fixture
def wamp_server(
    run_server: Callable[..., Any], serializer: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[Wamp]]:
    """Factory: ``async with wamp_server(Router(...)) as wamp:`` serves the router at /ws on
    the real server; ``wamp.connect()`` gives autobahn-python clients on this test's serializer."""

    @contextlib.asynccontextmanager
    async def factory(router: Router | None = None, **config: Any) -> AsyncIterator[Wamp]:
        router = router or Router(realms=[Realm("realm1")])
        with run_server(application(router), **config) as server:
            url = f"ws://127.0.0.1:{server.port}/ws"
            wamp = Wamp(router, url, "127.0.0.1", server.port, serializer)
            try:
                yield wamp
            finally:
                await wamp.close()

    return factory
