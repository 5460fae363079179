"""Live-server tests for Django projects: the project served through a real Crossway server.

``CrosswayLiveServerTestCase`` (also named ``ChannelsLiveServerTestCase``, as in Channels) is a
``TransactionTestCase`` that runs ``asgi-server`` in a subprocess for the test class, serving
settings.ASGI_APPLICATION (HTTP and WebSocket, and static files) against the test database.
Point a browser (Playwright, Selenium) or a client at ``self.live_server_url`` /
``self.live_server_ws_url``. It works under Django's test runner and under pytest-django.

Why a subprocess: the server, its event loop and its database threads stay out of the test
process, and are gone (with their database connections) before the test database is dropped.
Data the test writes is committed (TransactionTestCase), so the server sees it. For the same
reason the test database cannot be SQLite in memory: give it a file, with
``DATABASES["default"]["TEST"] = {"NAME": "/tmp/test.sqlite3"}``.

The listening socket is opened here and handed to the server (no race for a free port).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import connections  # type: ignore[import-untyped]
from django.test import TransactionTestCase  # type: ignore[import-untyped]
from django.utils.functional import classproperty  # type: ignore[import-untyped]

__all__ = [
    "ChannelsLiveServerTestCase",
    "CrosswayLiveServerTestCase",
    "LiveServer",
    "build_live_application",
]

# How the test process tells the server process what to serve (JSON).
_SPEC_VARIABLE = "CROSSWAY_LIVE_SERVER"


def _test_database_names() -> dict[str, str]:
    """Each configured database's name as the test runner set it up (the test database)."""
    names: dict[str, str] = {}
    for alias in connections:
        connection = connections[alias]
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            raise ImproperlyConfigured(
                f"a live server runs in another process and cannot share the in-memory SQLite "
                f"test database {alias!r}: set DATABASES[{alias!r}]['TEST'] = "
                "{'NAME': '/path/to/test.sqlite3'} (a file)"
            )
        names[alias] = str(connection.settings_dict["NAME"])
    return names


class LiveServer:
    """One ``asgi-server`` subprocess serving the Django project on ``host`` and a free port."""

    def __init__(
        self, host: str = "127.0.0.1", serve_static: bool = True, options: tuple[str, ...] = ()
    ) -> None:
        self.host = host
        self.serve_static = serve_static
        self.options = options  # more asgi-server command-line options
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Open the socket, start the server on it, and wait until it serves (or fail with its
        log)."""
        listener = socket.create_server((self.host, 0))
        self.port = listener.getsockname()[1]
        spec = {
            "databases": _test_database_names(),
            "host": self.host,
            "static": self.serve_static,
        }
        env = {**os.environ, _SPEC_VARIABLE: json.dumps(spec)}
        # The server imports what the tests import: the same sys.path (pytest-django, for one,
        # adds the project directory to it).
        env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        env.setdefault("DJANGO_SETTINGS_MODULE", getattr(settings, "SETTINGS_MODULE", None) or "")
        if not env["DJANGO_SETTINGS_MODULE"]:
            raise ImproperlyConfigured(
                "the live server needs a settings module: set DJANGO_SETTINGS_MODULE (settings "
                "made with settings.configure() cannot be handed to another process)"
            )
        app = "consumers.testing_live:build_live_application"
        command = [sys.executable, "-m", "asgi_server", app, "--factory"]
        command += ["--fd", str(listener.fileno()), "--lifespan", "off", *self.options]
        fd, log_name = tempfile.mkstemp(prefix="crossway-live-", suffix=".log")
        self.log_path = Path(log_name)
        try:
            self.process = subprocess.Popen(
                command, env=env, stdout=fd, stderr=subprocess.STDOUT, pass_fds=[listener.fileno()]
            )
        finally:
            os.close(fd)
            listener.close()  # the server holds its own copy now
        self._wait_until_serving(timeout)

    def _wait_until_serving(self, timeout: float) -> None:
        assert self.process is not None and self.log_path is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Serving on" in self.log_path.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = self.output()
        self.stop()
        raise RuntimeError(f"the live server did not start within {timeout:g} s; its log:\n{log}")

    def output(self) -> str:
        """What the server has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM: a graceful shutdown; SIGKILL after 10 s) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None


class CrosswayLiveServerTestCase(TransactionTestCase):  # type: ignore[misc]  # untyped Django
    """A TransactionTestCase with the project served live by Crossway for the whole class."""

    host: ClassVar[str] = "127.0.0.1"
    #: Serve static files through Django's ASGIStaticFilesHandler (staticfiles installed).
    serve_static: ClassVar[bool] = True
    #: More ``asgi-server`` options, e.g. ``("--ws-max-size", "65536")``.
    server_options: ClassVar[tuple[str, ...]] = ()
    live_server: ClassVar[LiveServer]

    @classproperty  # type: ignore[untyped-decorator]
    def live_server_url(cls) -> str:
        """``http://host:port`` of the live server."""
        return f"http://{cls.host}:{cls.live_server.port}"

    @classproperty  # type: ignore[untyped-decorator]
    def live_server_ws_url(cls) -> str:
        """``ws://host:port`` of the live server."""
        return f"ws://{cls.host}:{cls.live_server.port}"

    @classmethod
    def setUpClass(cls) -> None:
        """Start the server once for the class; it is stopped by a class cleanup."""
        super().setUpClass()
        cls.live_server = LiveServer(cls.host, cls.serve_static, cls.server_options)
        cls.live_server.start()
        cls.addClassCleanup(cls.live_server.stop)


#: Channels' name for the same thing, so that migrated tests keep working.
ChannelsLiveServerTestCase = CrosswayLiveServerTestCase


def build_live_application() -> Any:
    """In the server process: point Django at the test databases, set it up, and return
    settings.ASGI_APPLICATION (wrapped to serve static files when asked)."""
    import django  # type: ignore[import-untyped]
    from django.apps import apps  # type: ignore[import-untyped]
    from django.utils.module_loading import import_string  # type: ignore[import-untyped]

    spec = json.loads(os.environ[_SPEC_VARIABLE])
    for alias, name in spec["databases"].items():
        settings.DATABASES[alias]["NAME"] = name
    if spec["host"] not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, spec["host"]]
    django.setup()
    path = getattr(settings, "ASGI_APPLICATION", None)
    if path:
        application = import_string(path)
    else:
        from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

        application = get_asgi_application()
    if spec["static"] and apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import (  # type: ignore[import-untyped]
            ASGIStaticFilesHandler,
        )

        application = ASGIStaticFilesHandler(application)
    return application
