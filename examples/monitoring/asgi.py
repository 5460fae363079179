"""The monitoring demo's ASGI application:
``asgi-server examples.monitoring.asgi:application`` (or ``python -m examples.monitoring``).

- HTTP: Django (the dashboard at ``/``, the admin, the agents' ``/clients/settings``), with its
  static files.
- ``POST /notify``: the publisher bridge (``{"topic", "args", "kwargs"}``), from this machine
  only: how the admin publishes with MONITORING_PUBLISHER_URL set, as in the tutorial.
- ``/ws``: the WAMP router (realm ``realm1``) for the agents.
- ``/ws/dashboard``: the same router for browsers, for logged-in staff only (their Django
  session cookie); anyone else's handshake is refused with 403.

Composed with ``ProtocolTypeRouter``/``URLRouter``. The router is bound to the server's loop at
startup, so the admin's signal can publish before any WAMP client connected.
"""

import os
from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.monitoring.settings")
django_app = ASGIStaticFilesHandler(get_asgi_application())

from consumers.auth import AuthMiddlewareStack  # noqa: E402
from consumers.routing import ProtocolTypeRouter, URLRouter, path  # noqa: E402
from consumers.wamp import Realm, Router  # noqa: E402
from consumers.web import BridgeSecurity, Publisher  # noqa: E402

router = Router(realms=[Realm("realm1")])
publisher = Publisher("realm1", security=BridgeSecurity(require_ip=["127.0.0.0/8", "::1"]))


async def http(scope: Any, receive: Any, send: Any) -> None:
    """``/notify`` to the publisher bridge, everything else to Django."""
    if scope["path"] == "/notify":
        return await publisher(scope, receive, send)
    return await django_app(scope, receive, send)


class StaffOnly:
    """Lets a WebSocket through only for a logged-in staff user (``scope["user"]``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Refuse the handshake (403) unless the session's user is staff."""
        user = scope.get("user")
        if user is not None and user.is_active and user.is_staff:
            return await self.inner(scope, receive, send)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})
        return None


async def lifespan(scope: Any, receive: Any, send: Any) -> None:
    """Bind the router to the server's loop at startup (publish_sync works from then on)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            router.bind()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": URLRouter(
            [
                path("ws", router.as_asgi()),
                path("ws/dashboard", AuthMiddlewareStack(StaffOnly(router.as_asgi()))),
            ]
        ),
        "lifespan": lifespan,
    }
)
