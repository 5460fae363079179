"""``manage.py runserver`` through Crossway: serves settings.ASGI_APPLICATION (HTTP and WebSocket).

It keeps what Django's development server does: the autoreloader, system and migration checks,
and (with ``django.contrib.staticfiles`` installed and DEBUG on, or ``--insecure``) static files,
through Django's ASGIStaticFilesHandler. ``--noasgi`` runs Django's own WSGI server instead.

For this command to win over Django's (and staticfiles') runserver, "asgi_server" must come
before "django.contrib.staticfiles" in INSTALLED_APPS: Django takes a command from the first app
that provides it.
"""

from __future__ import annotations

import os
from typing import Any

from django.apps import apps  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import connections  # type: ignore[import-untyped]
from django.utils import autoreload  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from asgi_server.config import Config, LogLevel
from asgi_server.logs import configure_logging
from asgi_server.server import Server


def _base_command() -> Any:
    """staticfiles' runserver when that app is installed (it adds --nostatic and --insecure,
    which we honour), else Django's."""
    if apps.is_installed("django.contrib.staticfiles"):
        module = "django.contrib.staticfiles.management.commands.runserver"
    else:
        module = "django.core.management.commands.runserver"
    return import_string(module + ".Command")


BaseRunserver: Any = _base_command()

_LOG_LEVELS: dict[int, LogLevel] = {0: "warning", 1: "info", 2: "debug"}


class Command(BaseRunserver):  # type: ignore[misc]  # Django ships no type information
    """Django's runserver, serving the ASGI application through Crossway's server."""

    help = (
        "Starts a development server that serves ASGI_APPLICATION (HTTP and WebSocket) through "
        "Crossway, with Django's autoreloader."
    )
    # Django's runserver hides --verbosity; we use it for the server's log level.
    suppressed_base_arguments = {"--traceback"}

    def add_arguments(self, parser: Any) -> None:
        """Django's runserver arguments, plus --noasgi."""
        super().add_arguments(parser)
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's own WSGI development server instead of Crossway.",
        )

    def inner_run(self, *args: Any, **options: Any) -> None:
        """Check the project, then serve until interrupted (in the reloader's child process)."""
        if not options.get("use_asgi", True):
            super().inner_run(*args, **options)
            return
        # An import error raised in the reloader's parent is raised again here, in the child.
        autoreload.raise_last_exception()
        if not options.get("skip_checks"):
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()  # opened by the migration check; the server's threads open theirs
        application = self.get_application(options)
        level = _LOG_LEVELS.get(min(int(options.get("verbosity", 1)), 2), "info")
        configure_logging(level)
        host = "0.0.0.0" if self.addr == "0" else self.addr  # Django's shorthand for all
        config = Config(host=host, port=int(self.port), log_level=level)
        self._print_banner()
        exit_code = Server(config, application).run()
        if exit_code:
            # sys.exit() would only end this thread under the reloader, so leave as Django does,
            # with 1: the reloader takes exit code 3 as "restart me" and would loop.
            self.stderr.write(f"Error: the server stopped (exit code {exit_code}); see above.")
            os._exit(1)
        shutdown_message = options.get("shutdown_message", "")
        if shutdown_message:
            self.stdout.write(shutdown_message)

    def _print_banner(self) -> None:
        address = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        if address == "0":
            address = "0.0.0.0"
        self.stdout.write(
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting ASGI/Crossway development server at http://{address}:{self.port}/\n"
            "Quit the server with CONTROL-C."
        )

    def get_application(self, options: dict[str, Any]) -> Any:
        """settings.ASGI_APPLICATION (else Django's HTTP-only ASGI handler), with static files
        served in DEBUG when django.contrib.staticfiles is installed."""
        application = load_asgi_application(self.stdout.write)
        use_static = options.get("use_static_handler", True)
        serve_static = settings.DEBUG or options.get("insecure_serving", False)
        if apps.is_installed("django.contrib.staticfiles") and use_static and serve_static:
            from django.contrib.staticfiles.handlers import (  # type: ignore[import-untyped]
                ASGIStaticFilesHandler,
            )

            application = ASGIStaticFilesHandler(application)
        return application


def load_asgi_application(warn: Any = None) -> Any:
    """Import settings.ASGI_APPLICATION ('project.asgi.application'); without the setting, fall
    back to ``django.core.asgi.get_asgi_application()`` (HTTP only) and say so through ``warn``."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        if warn is not None:
            warn(
                "settings.ASGI_APPLICATION is not set: serving Django's views over HTTP only "
                "(django.core.asgi.get_asgi_application()). To serve WebSockets too, set "
                "ASGI_APPLICATION = 'yourproject.asgi.application'.\n"
            )
        from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

        return get_asgi_application()
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"settings.ASGI_APPLICATION = {path!r} could not be imported ({exc}); give the "
            "dotted path of the application object, e.g. 'yourproject.asgi.application'"
        ) from exc
