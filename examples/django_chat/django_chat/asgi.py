"""The ASGI application: Django's views over HTTP, the chat consumer over WebSocket.

Serve it with ``python manage.py runserver`` (development) or, in as many processes as you like,
``asgi-server django_chat.asgi:application --app-dir examples/django_chat`` from the repository
root (they share rooms through the Redis layer). docs/guide/django.md has the steps.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_chat.settings")
# Set Django up before importing anything that touches models (the consumers' auth does).
django_asgi_app = get_asgi_application()

from chat.routing import websocket_urlpatterns  # noqa: E402

from consumers.auth import AuthMiddlewareStack  # noqa: E402
from consumers.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from consumers.security import AllowedHostsOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Only pages from ALLOWED_HOSTS may open the socket; the session cookie gives the user.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
