"""The monitoring demo's ASGI application:
``asgi-server examples.monitoring.asgi:application`` (or ``python -m examples.monitoring``).

- HTTP: Django (the dashboard at ``/``, the admin, the agents' ``/clients/settings``), with its
  static files.
- ``POST /notify``: the publisher bridge (``{"topic", "args", "kwargs"}``), from this machine
  only: how the admin publishes with MONITORING_PUBLISHER_URL set, as in the tutorial.
- ``/ws``: the WAMP router (realm ``realm1``). Browsers of logged-in staff join as their Django
  user (authmethod ``cookie``: the session cookie of the handshake) in the role ``staff``, which
  may read the stats; anyone else joins anonymously as ``agent``, which may only report.

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
from consumers.wamp.auth import Anonymous  # noqa: E402
from consumers.wamp.auth.django import DjangoUser  # noqa: E402
from consumers.wamp.roles import Permission, Role  # noqa: E402
from consumers.web import BridgeSecurity, Publisher  # noqa: E402


def staff_role(user: Any) -> str | None:
    """Staff read the dashboard; other users are not let in by their login."""
    return "staff" if user.is_active and user.is_staff else None


staff = Role(
    "staff",
    [
        Permission("clientstats", subscribe=True),
        Permission("clientconfig", "prefix", subscribe=True),
    ],
)
agent = Role(
    "agent",
    [
        Permission("clientstats", publish=True),
        Permission("clientconfig", "prefix", subscribe=True),
    ],
)
# The HTTP publisher bridge's in-process session: it may only publish settings.
publisher_role = Role("publisher", [Permission("clientconfig", "prefix", publish=True)])
realm = Realm(
    "realm1",
    roles=[staff, agent, publisher_role],
    auth=[DjangoUser(role_for=staff_role), Anonymous("agent")],
)
router = Router(realms=[realm])
publisher = Publisher(
    "realm1",
    role=publisher_role,
    security=BridgeSecurity(require_ip=["127.0.0.0/8", "::1"]),  # this machine only
)


async def http(scope: Any, receive: Any, send: Any) -> None:
    """``/notify`` to the publisher bridge, everything else to Django."""
    if scope["path"] == "/notify":
        return await publisher(scope, receive, send)
    return await django_app(scope, receive, send)


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
                path("ws", AuthMiddlewareStack(router.as_asgi())),
            ]
        ),
        "lifespan": lifespan,
    }
)
