"""The site's ASGI application: Django over HTTP (plus autobahn.js), the WAMP router at ``/ws``
behind ``AuthMiddlewareStack``, so the handshake's Django session is the WAMP identity.

Realm ``site`` lets in logged-in users only; realm ``open`` lets anyone else in as ``guest``.
Roles: ``editors`` (a Django group), ``authenticated`` (users without a group), ``guest``.
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


async def http(scope: Any, receive: Any, send: Any) -> None:
    """autobahn.js at /autobahn.min.js, everything else Django."""
    app = autobahn_js if scope["path"] == "/autobahn.min.js" else django_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {"http": http, "websocket": AuthMiddlewareStack(URLRouter([path("ws", router.as_asgi())]))}
)
