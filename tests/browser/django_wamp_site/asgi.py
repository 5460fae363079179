"""The site's ASGI application: Django over HTTP (plus autobahn.js), the WAMP router at ``/ws``
behind ``AuthMiddlewareStack``, so the handshake's Django session is the WAMP identity.

Realm ``site`` lets in logged-in users only; realm ``open`` lets anyone else in as ``guest``.
Roles: ``editors`` (a Django group), ``authenticated`` (users without a group), ``guest``.
The router is bound at startup (lifespan), so its cluster feed runs before any WAMP client
came; ``/feed-ready`` answers 200 once it does (or when there is no cluster).
"""

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.browser.django_wamp_site.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from consumers.auth import AuthMiddlewareStack  # noqa: E402
from consumers.routing import ProtocolTypeRouter, URLRouter, path  # noqa: E402
from consumers.wamp import Realm, Router  # noqa: E402
from consumers.wamp.auth import Anonymous  # noqa: E402
from consumers.wamp.auth.django import DjangoUser  # noqa: E402
from consumers.wamp.browser import autobahn_js  # noqa: E402
from consumers.wamp.roles import Permission, Role  # noqa: E402

roles = [
    Role("editors", [Permission("com.site.", "prefix", call=True)]),
    Role("authenticated", [Permission("com.site.whoami", call=True)]),
    Role("guest", [Permission("com.site.whoami", call=True)]),
]
django_user = DjangoUser()  # authmethod "cookie"; one signal handler for both realms
router = Router(
    realms=[
        Realm("site", roles=roles, auth=[django_user]),
        Realm("open", roles=roles, auth=[django_user, Anonymous("guest")]),
    ]
)


@router.register("site", "com.site.whoami")
@router.register("open", "com.site.whoami")
def whoami() -> str:
    """A procedure every role may call."""
    return "served"


async def feed_ready(scope: Any, receive: Any, send: Any) -> None:
    """200 once the router's auth feed has joined the cluster (or there is no cluster), else 503."""
    feed = router.auth_feed
    status = 200 if feed is None or feed.ready.is_set() else 503
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def http(scope: Any, receive: Any, send: Any) -> None:
    """autobahn.js at /autobahn.min.js, the feed's state at /feed-ready, the rest Django."""
    apps = {"/autobahn.min.js": autobahn_js, "/feed-ready": feed_ready}
    await apps.get(scope["path"], django_app)(scope, receive, send)


async def lifespan(scope: Any, receive: Any, send: Any) -> None:
    """Bind the router to the server's loop at startup."""
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
        "websocket": AuthMiddlewareStack(URLRouter([path("ws", router.as_asgi())])),
        "lifespan": lifespan,
    }
)
