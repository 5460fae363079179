"""Failed logins are counted by the whole cluster (consumers/wamp/auth/shared.py): two routers
on one channel layer, as two processes would be, on each backend (the memory layer shared by
two routers of one process; the durable and the pub/sub Redis layers, one layer object per
router). Failures on either router add up on both, none is counted twice, and the block
holds on the router the attacker did not use, while other users keep logging in."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from channel_layers.base import BaseChannelLayer
from channel_layers.memory import InMemoryChannelLayer
from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router
from consumers.wamp.auth import Principal, Ticket
from consumers.wamp.roles import Role
from consumers.wamp.settings import AuthLimits
from tests.channel_layers.test_registry import redis_layer
from tests.wamp._auth_client import login, outcome
from tests.wamp.conftest import Wamp

pytestmark = pytest.mark.transports("asyncio")

LIMIT = 4  # failures per authid


@pytest.fixture(params=["memory", "redis", "pubsub"])
async def two_layers(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[BaseChannelLayer, BaseChannelLayer]]:
    """The layers of two routers that share one bus."""
    if request.param == "memory":
        shared = InMemoryChannelLayer()
        yield shared, shared
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"authfail-{os.urandom(4).hex()}"
    layers = (redis_layer(request.param, url, prefix), redis_layer(request.param, url, prefix))
    yield layers
    for layer in layers:
        await layer.close()


def router(layer: BaseChannelLayer) -> Router:
    principals = {name: Principal("user", secret=f"{name}-pw") for name in ("joe", "ann")}
    limits = AuthLimits(failure_delay=0, max_failures_per_authid=LIMIT, max_failures_per_address=0)
    realm = Realm("realm1", roles=[Role("user")], auth=[Ticket(principals)], auth_limits=limits)
    return Router([realm], channel_layer=layer, sync_interval=0.5)


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "the failures did not reach the other router"
        await asyncio.sleep(0.01)


async def test_failed_logins_add_up_across_routers(
    run_server: Any, two_layers: tuple[BaseChannelLayer, BaseChannelLayer]
) -> None:
    a, b = router(two_layers[0]), router(two_layers[1])
    app = ProtocolTypeRouter(
        {"websocket": URLRouter([path("a", a.as_asgi()), path("b", b.as_asgi())])}
    )
    with run_server(app) as server:
        on: dict[str, Wamp] = {}
        for name, made in (("a", a), ("b", b)):
            url = f"ws://127.0.0.1:{server.port}/{name}"
            on[name] = Wamp(made, url, "127.0.0.1", server.port, "json")
            ann = await login(on[name], ["ticket"], "ann", lambda c: "ann-pw")
            assert (await outcome(ann)).authid == "ann"  # the router is bound now
            feed = made.auth_feed
            assert feed is not None
            await on[name].run_in_router(feed.ready.wait)

        def joe_failures(name: str) -> Callable[[], Any]:
            made = a if name == "a" else b

            def count() -> int:
                realm = made.realm("realm1")
                assert realm is not None
                return realm.auth_failures.by_authid.recent("joe")

            return lambda: on[name].run_in_router(count)

        async def fail_on(name: str, times: int) -> None:
            for _ in range(times):
                client = await login(on[name], ["ticket"], "joe", lambda c: "wrong")
                assert await outcome(client) == "wamp.error.not_authorized"

        await fail_on("a", LIMIT // 2)
        await until(lambda: _equals(joe_failures("b"), LIMIT // 2))
        assert await joe_failures("a")() == LIMIT // 2  # its own failures, counted once
        right = await login(on["b"], ["ticket"], "joe", lambda c: "joe-pw")
        assert (await outcome(right)).authid == "joe"  # below the limit: still let in
        await fail_on("b", LIMIT // 2)
        await until(lambda: _equals(joe_failures("a"), LIMIT))
        for name in ("a", "b"):  # the limit holds on both: even the right ticket is refused
            blocked = await login(on[name], ["ticket"], "joe", lambda c: "joe-pw")
            assert await outcome(blocked) == "wamp.error.not_authorized", name
            ann = await login(on[name], ["ticket"], "ann", lambda c: "ann-pw")
            assert (await outcome(ann)).authid == "ann"  # others keep logging in
        for wamp in on.values():
            await wamp.close()
        for name, made in (("a", a), ("b", b)):
            assert made.node is not None and made.auth_feed is not None
            await on[name].run_in_router(made.node.stop)
            await on[name].run_in_router(made.auth_feed.stop)


async def _equals(read: Callable[[], Any], expected: int) -> bool:
    return bool(await read() == expected)
