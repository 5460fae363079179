"""The Crossway side of benchmarks/wamp.py: a WAMP router (realm1, anonymous) at /ws and a
plain 200 at / (the readiness probe). Over several processes it joins them through the channel
layer that CHANNEL_LAYERS_URL names."""

from __future__ import annotations

from typing import Any

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router

router = Router(realms=[Realm("realm1")], sync_interval=0.5)


async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 OK for the benchmark's readiness probe."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter(
    {"http": URLRouter([path("", ok)]), "websocket": URLRouter([path("ws", router.as_asgi())])}
)
