"""What authentication shares across a cluster (consumers/wamp/auth/shared.py), with two routers
on one channel layer, as two processes would be, on each backend (the memory layer shared by two
routers of one process; the durable and the pub/sub Redis layers, one layer object per router).

- Failed logins on either router add up on both, none is counted twice, and the block holds on
  the router the attacker did not use, while other users keep logging in.
- A WAMP cookie remembered by one router lets the browser in on the other, when both sign
  cookies with the same secret.
"""

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
from consumers.wamp.auth import Cookie, Principal, Ticket
from consumers.wamp.auth.transport import issued_by
from consumers.wamp.roles import Role
from consumers.wamp.settings import AuthLimits
from tests.channel_layers.test_registry import redis_layer
from tests.wamp._auth_client import login, outcome
from tests.wamp.conftest import Wamp

pytestmark = pytest.mark.transports("asyncio")

LIMIT = 4  # failures per authid
Routers = dict[str, tuple[Router, Wamp]]


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
    prefix = f"authfeed-{os.urandom(4).hex()}"
    layers = (redis_layer(request.param, url, prefix), redis_layer(request.param, url, prefix))
    yield layers
    for layer in layers:
        await layer.close()


def router(layer: BaseChannelLayer) -> Router:
    principals = {name: Principal("user", secret=f"{name}-pw") for name in ("joe", "ann")}
    limits = AuthLimits(failure_delay=0, max_failures_per_authid=LIMIT, max_failures_per_address=0)
    auth = [Ticket(principals), Cookie(secret="the cluster's cookie secret")]
    realm = Realm("realm1", roles=[Role("user")], auth=auth, auth_limits=limits)
    return Router([realm], channel_layer=layer, sync_interval=0.5)


@pytest.fixture
async def two_routers(
    run_server: Any, two_layers: tuple[BaseChannelLayer, BaseChannelLayer]
) -> AsyncIterator[Routers]:
    """Routers "a" and "b" at /a and /b of one server, bound, their auth feeds running."""
    a, b = router(two_layers[0]), router(two_layers[1])
    app = ProtocolTypeRouter(
        {"websocket": URLRouter([path("a", a.as_asgi()), path("b", b.as_asgi())])}
    )
    with run_server(app) as server:
        on: Routers = {}
        for name, made in (("a", a), ("b", b)):
            url = f"ws://127.0.0.1:{server.port}/{name}"
            on[name] = (made, Wamp(made, url, "127.0.0.1", server.port, "json"))
            ann = await login(on[name][1], ["ticket"], "ann", lambda c: "ann-pw")
            assert (await outcome(ann)).authid == "ann"  # the router is bound now
            assert made.auth_feed is not None
            await on[name][1].run_in_router(made.auth_feed.ready.wait)
        yield on
        for made, wamp in on.values():
            await wamp.close()
            assert made.node is not None and made.auth_feed is not None
            await wamp.run_in_router(made.node.stop)
            await wamp.run_in_router(made.auth_feed.stop)


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "the news did not reach the other router"
        await asyncio.sleep(0.01)


def realm_of(made: Router) -> Any:
    realm = made.realm("realm1")
    assert realm is not None
    return realm


async def test_failed_logins_add_up_across_routers(two_routers: Routers) -> None:
    on = two_routers

    async def joe_failures(name: str) -> int:
        made, wamp = on[name]
        count: int = await wamp.run_in_router(
            lambda: realm_of(made).auth_failures.by_authid.recent("joe")
        )
        return count

    async def fail_on(name: str, times: int) -> None:
        for _ in range(times):
            client = await login(on[name][1], ["ticket"], "joe", lambda c: "wrong")
            assert await outcome(client) == "wamp.error.not_authorized"

    await fail_on("a", LIMIT // 2)
    await until(lambda: _equals(joe_failures("b"), LIMIT // 2))
    assert await joe_failures("a") == LIMIT // 2  # its own failures, counted once
    right = await login(on["b"][1], ["ticket"], "joe", lambda c: "joe-pw")
    assert (await outcome(right)).authid == "joe"  # below the limit: still let in
    await fail_on("b", LIMIT // 2)
    await until(lambda: _equals(joe_failures("a"), LIMIT))
    for name in ("a", "b"):  # the limit holds on both: even the right ticket is refused
        blocked = await login(on[name][1], ["ticket"], "joe", lambda c: "joe-pw")
        assert await outcome(blocked) == "wamp.error.not_authorized", name
        ann = await login(on[name][1], ["ticket"], "ann", lambda c: "ann-pw")
        assert (await outcome(ann)).authid == "ann"  # others keep logging in


async def test_a_cookie_set_by_one_router_logs_in_on_the_other(two_routers: Routers) -> None:
    on = two_routers
    first = await login(on["a"][1], ["cookie", "ticket"], "joe", lambda c: "joe-pw")
    assert (await outcome(first)).authmethod == "ticket"
    cookie = first._transport.http_headers["set-cookie"].split(";")[0]
    cookie_id = cookie.split("=", 1)[1]
    made_b, wamp_b = on["b"]

    async def b_knows_it() -> bool:
        store = realm_of(made_b).authenticators["cookie"].store
        return bool(await wamp_b.run_in_router(lambda: store.lookup("realm1", cookie_id)))

    await until(b_knows_it)
    again = await login(wamp_b, ["cookie", "ticket"], headers={"Cookie": cookie})
    details = await outcome(again)
    assert (details.authid, details.authmethod, details.authrole) == ("joe", "cookie", "user")
    assert "set-cookie" not in again._transport.http_headers  # b accepts a's signature


def test_refusals_of_a_blocked_client_are_not_told_again() -> None:
    """Only real failures go to the cluster: a storm against a blocked authid sends nothing
    more (the other processes hold the block from the failures that made it)."""
    from tests.wamp._core import feed
    from tests.wamp.test_auth_core import core, hello, start

    c = core(failure_delay=0.0, max_failures_per_authid=3, max_failures_per_address=0)
    told: list[tuple[str | None, str | None]] = []
    c.realm.auth_failures.on_failure = lambda authid, address: told.append((authid, address))
    for _ in range(3):
        session, peer = start(c, *hello(["ticket"], "joe"))
        feed(session, [5, "wrong", {}])
    assert len(told) == 3
    for _ in range(20):
        _, peer = start(c, *hello(["ticket"], "joe"))
        assert "too many" in peer.take()[0][1]["message"]
    assert len(told) == 3 and c.realm.auth_failures.blocked("joe", None)


def test_cookie_ids_are_signed_with_the_methods_secret() -> None:
    """Workers with one secret accept each other's cookie IDs; without one, each process has
    its own key and replaces the others' cookies (the browser logs in again there)."""
    from consumers.wamp.auth.transport import _signed

    shared, peer = Cookie(secret="s"), Cookie(secret="s")
    cookie_id = _signed(shared.key, "token")
    assert issued_by(peer, cookie_id)
    assert not issued_by(Cookie(), cookie_id) and not issued_by(
        Cookie(), _signed(Cookie().key, "t")
    )


async def _equals(read: Any, expected: int) -> bool:
    return bool(await read == expected)
