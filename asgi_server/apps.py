"""The Django app "asgi_server": list it first in INSTALLED_APPS so that ``manage.py runserver``
serves the project's ASGI_APPLICATION (HTTP and WebSocket) through Crossway."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class AsgiServerConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    """Provides the ``runserver`` command that replaces Django's (``--noasgi`` gives it back)."""

    name = "asgi_server"
    verbose_name = "Crossway ASGI server"
