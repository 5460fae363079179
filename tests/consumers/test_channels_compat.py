"""Behaviour Channels users rely on, found by running Channels' own test suite on Crossway.

Each test here stands for a difference that suite showed (benchmarks/compat_channels.py): a
message type with a leading dot, routers' return values, a nested URLRouter that matches nothing,
include() in a URLRouter, and the communicators with Django's TestCase.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.urls import include
from django.urls import path as django_path

import channel_layers
from consumers import AsyncHttpConsumer, AsyncWebsocketConsumer
from consumers.base import Receive, Scope, Send
from consumers.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter
from consumers.testing import HttpCommunicator, WebsocketCommunicator

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_a_leading_dot_type_never_reaches_a_private_method(memory_layer: Any) -> None:
    """The type ".secret" becomes "_secret" once dots are underscores: refuse it, never call."""
    called: list[str] = []

    class Guarded(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=self.channel_name)

        async def _secret(self, event: dict[str, Any]) -> None:
            called.append(event["type"])

    communicator = WebsocketCommunicator(Guarded.as_asgi(), "/")
    assert (await communicator.connect())[0]
    channel = await communicator.receive_from()
    await memory_layer.send(channel, {"type": ".secret"})
    with pytest.raises(ValueError, match=r"Malformed type in message \(leading underscore\)"):
        await communicator.receive_output()
    assert called == []


class Returns:
    """An application that returns a value, as Channels' router tests' applications do."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> str:
        return self.value


async def test_routers_return_what_the_application_returns() -> None:
    """Channels' routers hand back the routed application's return value; wrappers use it."""
    by_type = ProtocolTypeRouter({"http": Returns("http"), "websocket": Returns("ws")})
    assert await by_type({"type": "websocket"}, None, None) == "ws"  # type: ignore[func-returns-value,arg-type]
    by_path = URLRouter([django_path("a/", Returns("a")), django_path("b/", Returns("b"))])
    assert await by_path({"type": "http", "path": "/b/"}, None, None) == "b"  # type: ignore[func-returns-value,arg-type]
    by_name = ChannelNameRouter({"thumbs": Returns("thumbs")})  # type: ignore[dict-item]
    assert await by_name({"type": "channel", "channel": "thumbs"}, None, None) == "thumbs"  # type: ignore[func-returns-value,arg-type]


class Says(AsyncHttpConsumer):
    """Answers with its ``word`` attribute."""

    word = ""

    async def handle(self, body: bytes) -> None:
        await self.send_response(200, self.word.encode())


async def test_a_route_after_a_mount_point_that_matches_nothing_is_reached() -> None:
    """A nested URLRouter with no match lets its parent try the next route (Channels does)."""
    application = URLRouter(
        [
            django_path("", URLRouter([django_path("other/", Says.as_asgi(word="other"))])),
            django_path(
                "prefix/",
                URLRouter([django_path("nothing-here/", Says.as_asgi(word="inner"))]),
            ),
            django_path("prefix/stuff/", Says.as_asgi(word="stuff")),
        ]
    )
    response = await HttpCommunicator(application, "GET", "/prefix/stuff/").get_response()
    assert (response["status"], response["body"]) == (200, b"stuff")
    inner = await HttpCommunicator(application, "GET", "/prefix/nothing-here/").get_response()
    assert (inner["status"], inner["body"]) == (200, b"inner")
    missing = await HttpCommunicator(application, "GET", "/prefix/missing/").get_response()
    assert missing["status"] == 404
    assert b"/prefix/missing/" in missing["body"]


def test_include_in_a_url_router_is_refused_with_advice() -> None:
    """include() gives a route without an application; say so when the router is built."""
    sys.modules.setdefault("crossway_compat_empty_urls", type(sys)("crossway_compat_empty_urls"))
    sys.modules["crossway_compat_empty_urls"].urlpatterns = []  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"include\(\) is not supported.*nest a URLRouter"):
        URLRouter([django_path("api/", include("crossway_compat_empty_urls"))])


def test_set_cookie_spells_samesite_as_browsers_expect_and_refuses_nonsense() -> None:
    """SESSION_COOKIE_SAMESITE = "lax" is fine (Channels accepts any case); "Hello" is an error
    at once, not a cookie attribute browsers would ignore."""
    from consumers.middleware import CookieMiddleware

    message: dict[str, Any] = {"type": "http.response.start", "status": 200}
    CookieMiddleware.set_cookie(message, "k", "v", samesite="lax")  # type: ignore[arg-type]
    assert message["headers"] == [(b"set-cookie", b"k=v; Path=/; SameSite=Lax")]
    with pytest.raises(ValueError, match="SameSite must be 'Strict', 'Lax' or 'None'"):
        CookieMiddleware.set_cookie(message, "k", "v", samesite="Hello")  # type: ignore[arg-type]
    assert len(message["headers"]) == 1


# Channels' import paths with "channels" replaced by "consumers" (and the names they give),
# so that a search and replace is the whole migration of these imports.
CHANNELS_IMPORTS = {
    "consumers.consumer": ["AsyncConsumer", "SyncConsumer", "get_handler_name"],
    "consumers.generic.websocket": [
        "AsyncJsonWebsocketConsumer",
        "AsyncWebsocketConsumer",
        "JsonWebsocketConsumer",
        "WebsocketConsumer",
    ],
    "consumers.generic.http": ["AsyncHttpConsumer"],
    "consumers.routing": [
        "ChannelNameRouter",
        "ProtocolTypeRouter",
        "URLRouter",
        "get_default_application",
    ],
    "consumers.layers": [
        "DEFAULT_CHANNEL_LAYER",
        "BaseChannelLayer",
        "InMemoryChannelLayer",
        "get_channel_layer",
    ],
    "consumers.exceptions": [
        "AcceptConnection",
        "ChannelFull",
        "DenyConnection",
        "InvalidChannelLayerError",
        "RequestAborted",
        "StopConsumer",
    ],
    "consumers.security.websocket": ["AllowedHostsOriginValidator", "OriginValidator"],
    "consumers.middleware": ["BaseMiddleware"],
    "consumers.testing": ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"],
    "consumers.sync": ["aclose_old_connections", "database_sync_to_async"],
}


@pytest.mark.parametrize("module", sorted(CHANNELS_IMPORTS))
def test_channels_import_paths_work_under_consumers(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in CHANNELS_IMPORTS[module] if not hasattr(imported, name)]
    assert missing == [], f"{module} lacks {missing}"


def test_the_aliases_are_the_same_objects() -> None:
    """An alias path gives the very class, so isinstance() and subclassing agree across paths."""
    from channel_layers.base import ChannelFull
    from consumers import AsyncJsonWebsocketConsumer, exceptions, security
    from consumers.generic import websocket
    from consumers.layers import get_channel_layer
    from consumers.security import websocket as security_websocket

    assert websocket.AsyncJsonWebsocketConsumer is AsyncJsonWebsocketConsumer
    assert exceptions.ChannelFull is ChannelFull
    assert security_websocket.OriginValidator is security.OriginValidator
    assert get_channel_layer() is channel_layers.get_channel_layer()


# Runs in a subprocess: it configures Django settings, which must not leak into this session.
DJANGO_TESTCASE_SCRIPT = textwrap.dedent(
    """
    import sys, tempfile, unittest
    import django
    from django.conf import settings

    database = tempfile.mktemp(suffix=".sqlite3")
    settings.configure(
        SECRET_KEY="compat",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        # A file, not SQLite in memory: closing a connection to it is what used to break.
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database,
                               "TEST": {"NAME": database}}},
        CHANNEL_LAYERS={"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer",
                                    "CONFIG": {"capacity": 3}}},
        ASGI_APPLICATION="__main__.application",
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.test import TestCase, override_settings
    from django.test.runner import DiscoverRunner
    from channel_layers import get_channel_layer
    from consumers import AsyncWebsocketConsumer
    from consumers.db import database_sync_to_async
    from consumers.routing import get_default_application
    from consumers.testing import WebsocketCommunicator

    @database_sync_to_async
    def user_names():
        return ",".join(User.objects.order_by("username").values_list("username", flat=True))

    class Names(AsyncWebsocketConsumer):
        async def connect(self):
            await self.accept()
            await self.send(text_data=await user_names())

    application = Names.as_asgi()

    class InTestCase(TestCase):
        def setUp(self):
            User.objects.create(username="ada")

        async def test_consumer_sees_the_test_transaction(self):
            for _ in range(2):  # the second connection proves the first closed nothing
                communicator = WebsocketCommunicator(Names.as_asgi(), "/")
                self.assertTrue((await communicator.connect())[0])
                self.assertEqual(await communicator.receive_from(), "ada")
                await communicator.disconnect()
            self.assertEqual(await User.objects.acount(), 1)

        def test_override_settings_changes_the_layer(self):
            self.assertEqual(get_channel_layer().capacity, 3)
            layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                  "CONFIG": {"capacity": 7}}}
            with override_settings(CHANNEL_LAYERS=layers):
                self.assertEqual(get_channel_layer().capacity, 7)
            self.assertEqual(get_channel_layer().capacity, 3)

        def test_get_default_application(self):
            self.assertIs(get_default_application(), application)

    runner = DiscoverRunner(verbosity=0)
    old = runner.setup_databases()
    suite = unittest.TestLoader().loadTestsFromTestCase(InTestCase)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    runner.teardown_databases(old)
    sys.exit(0 if result.wasSuccessful() and result.testsRun == 3 else 1)
    """
)


def test_communicators_and_override_settings_in_a_django_testcase(tmp_path: Path) -> None:
    """In a Django TestCase a consumer's database calls share the test's transaction (the
    communicators leave connections open), override_settings(CHANNEL_LAYERS) applies, and
    get_default_application() finds ASGI_APPLICATION."""
    script = tmp_path / "django_testcase.py"
    script.write_text(DJANGO_TESTCASE_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 3 tests" in done.stderr
