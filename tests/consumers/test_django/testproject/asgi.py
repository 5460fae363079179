"""The test project's ASGI application: Django views, and consumers behind AuthMiddlewareStack."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
django_application = get_asgi_application()

from consumers.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from consumers.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter, path  # noqa: E402
from consumers.sessions import SessionMiddlewareStack  # noqa: E402

from . import consumers  # noqa: E402
from .wamp import wamp_router  # noqa: E402

http_consumers = {
    "/counter/": SessionMiddlewareStack(consumers.SessionCounter.as_asgi()),
    "/login/": AuthMiddlewareStack(consumers.HttpLogin.as_asgi()),
}


async def http_application(scope, receive, send):  # type: ignore[no-untyped-def]
    """A few paths are consumers; everything else is Django."""
    app = http_consumers.get(scope["path"], django_application)
    await app(scope, receive, send)


websocket_routes = [
    path("ws/whoami/", consumers.WhoAmI.as_asgi()),
    path("ws/auth/", consumers.AsyncAuth.as_asgi()),
    path("ws/sync-auth/", consumers.SyncAuth.as_asgi()),
    path("ws/session/", consumers.SessionNotes.as_asgi()),
    path("ws/wamp/", wamp_router.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_routes)),
        "channel": ChannelNameRouter(
            {
                "users": consumers.UserCounter.as_asgi(),
                "probe": consumers.ConnectionProbe.as_asgi(),
            }
        ),
    }
)
