"""Roles and dynamic authorizers through the real server, with autobahn-python clients."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.wamp import Realm, Router
from consumers.wamp.roles import Permission, Role
from tests.wamp._autobahn import ApplicationError, PublishOptions

pytestmark = pytest.mark.transports("asyncio")

NOT_AUTHORIZED = "wamp.error.not_authorized"


def static_router() -> Router:
    frontend = Role(
        "anonymous",
        [
            Permission("com.app.", match="prefix", publish=True, subscribe=True, call=True),
            Permission("com.app.rpc.", match="prefix", register=True, call=True),
            Permission("com.app.secret", subscribe=False),
        ],
    )
    return Router(realms=[Realm("realm1", roles=[frontend])])


async def test_static_permissions(wamp_server: Any) -> None:
    async with wamp_server(static_router()) as wamp:
        client = await wamp.connect()
        await client.register(lambda: "ok", "com.app.rpc.ping")
        assert await client.call("com.app.rpc.ping") == "ok"
        await client.subscribe(lambda: None, "com.app.news")
        await client.publish("com.app.news", options=PublishOptions(acknowledge=True))
        for attempt in (
            client.register(lambda: None, "com.app.other"),
            client.subscribe(lambda: None, "com.app.secret"),
            client.call("org.elsewhere"),
            client.publish("org.elsewhere", options=PublishOptions(acknowledge=True)),
        ):
            with pytest.raises(ApplicationError) as info:
                await attempt
            assert info.value.error == NOT_AUTHORIZED
        assert await client.call("com.app.rpc.ping") == "ok"  # still served after refusals


async def test_authorizer_registered_as_a_wamp_procedure(wamp_server: Any) -> None:
    asked: list[tuple[str, str, str]] = []
    router = Router(
        realms=[Realm("realm1", roles=[Role("anonymous", authorizer="com.example.authorize")])]
    )

    @router.register("realm1", "com.example.authorize")
    def authorize(details: dict[str, Any], uri: str, action: str) -> dict[str, Any]:
        asked.append((details["authrole"], uri, action))
        return {"allow": uri.startswith("com.open."), "cache": 60, "disclose": True}

    async with wamp_server(router) as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()
        seen: list[Any] = []

        def whoami(**kwargs: Any) -> Any:
            seen.append(kwargs)
            return "hi"

        await callee.register(whoami, "com.open.whoami")
        assert await caller.call("com.open.whoami") == "hi"
        assert await caller.call("com.open.whoami") == "hi"
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.closed.x")
        assert info.value.error == NOT_AUTHORIZED
        # Each (session, URI, action) was asked once: the second call was cached.
        assert asked == [
            ("anonymous", "com.open.whoami", "register"),
            ("anonymous", "com.open.whoami", "call"),
            ("anonymous", "com.closed.x", "call"),
        ]
