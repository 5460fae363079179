"""Routing: ProtocolTypeRouter, URLRouter (Django's patterns and ours), ChannelNameRouter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from django.urls import path as django_path
from django.urls import re_path as django_re_path

from consumers import AsyncHttpConsumer, AsyncWebsocketConsumer
from consumers.base import Receive, Scope, Send
from consumers.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
    _own_path,
    _own_re_path,
)
from consumers.testing import HttpCommunicator, TypedCommunicator, WebsocketCommunicator


class ShowRoute(AsyncHttpConsumer):
    """Answers with what routing put in the scope."""

    async def handle(self, body: bytes) -> None:
        route = self.scope["url_route"]
        text = repr(
            (route["args"], route["kwargs"], self.scope["path_remaining"], self.scope["root_path"])
        )
        await self.send_response(200, text.encode())


def build_router(path: Any, re_path: Any) -> URLRouter:
    show = ShowRoute.as_asgi()
    return URLRouter(
        [
            path("rooms/<int:number>/", show),
            path("users/<slug:name>/files/<path:rest>", show),
            path("things/<uuid:key>/", show),
            re_path(r"^legacy/(\d+)/(\w+)/$", show),
            re_path(r"^named/(?P<year>[0-9]{4})/$", show),
            path("api/<str:version>/", URLRouter([path("items/<int:item>/", show)])),
            re_path(r"^deep/", URLRouter([path("er/", URLRouter([path("x/", show)]))])),
            path("defaults/", show, {"flavour": "vanilla"}),
        ]
    )


PATTERNS = {"django": (django_path, django_re_path), "own": (_own_path, _own_re_path)}
KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")
CASES = [
    ("/rooms/42/", "((), {'number': 42}, '', '')"),
    ("/users/ann-b/files/a/b.txt", "((), {'name': 'ann-b', 'rest': 'a/b.txt'}, '', '')"),
    (f"/things/{KEY}/", f"((), {{'key': {KEY!r}}}, '', '')"),
    ("/legacy/7/abc/", "(('7', 'abc'), {}, '', '')"),
    ("/named/2024/", "((), {'year': '2024'}, '', '')"),
    ("/api/v2/items/9/", "((), {'version': 'v2', 'item': 9}, '', '/api/v2')"),
    ("/deep/er/x/", "((), {}, '', '/deep/er')"),
    ("/defaults/", "((), {'flavour': 'vanilla'}, '', '')"),
]


@pytest.mark.parametrize("kind", sorted(PATTERNS))
@pytest.mark.parametrize(("url", "expected"), CASES)
async def test_routes_and_captures(kind: str, url: str, expected: str) -> None:
    router = build_router(*PATTERNS[kind])
    response = await HttpCommunicator(router, "GET", url).get_response()
    assert response["status"] == 200, response
    assert response["body"].decode() == expected


@pytest.mark.parametrize("kind", sorted(PATTERNS))
@pytest.mark.parametrize("url", ["/rooms/x/", "/rooms/42/extra", "/nope/", "/api/v2/items/"])
async def test_no_match_is_a_404(kind: str, url: str) -> None:
    router = build_router(*PATTERNS[kind])
    response = await HttpCommunicator(router, "GET", url).get_response()
    assert response["status"] == 404
    assert url.encode() in response["body"]


async def test_root_path_is_stripped_before_matching() -> None:
    router = build_router(_own_path, _own_re_path)
    communicator = HttpCommunicator(router, "GET", "/mount/rooms/3/")
    communicator.scope["root_path"] = "/mount"
    response = await communicator.get_response()
    assert response["body"] == b"((), {'number': 3}, '', '/mount')"


async def test_websocket_no_match_refuses_the_handshake() -> None:
    router = URLRouter([_own_path("ws/", AsyncWebsocketConsumer.as_asgi())])
    communicator = WebsocketCommunicator(router, "/elsewhere/")
    assert await communicator.connect() == (False, 1000)


async def test_websocket_no_match_with_http_response_extension_is_a_404() -> None:
    router = URLRouter([_own_path("ws/", AsyncWebsocketConsumer.as_asgi())])
    communicator = WebsocketCommunicator(router, "/elsewhere/")
    communicator.scope["extensions"] = {"websocket.http.response": {}}
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output()
    assert start["type"] == "websocket.http.response.start" and start["status"] == 404


def test_unknown_converter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown converter 'date'; use one of \['int'"):
        _own_path("day/<date:d>/", ShowRoute.as_asgi())


async def test_protocol_type_router() -> None:
    async def http_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    router = ProtocolTypeRouter({"http": http_app})
    assert (await HttpCommunicator(router, "GET", "/").get_response())["status"] == 204
    communicator = WebsocketCommunicator(router, "/")
    with pytest.raises(ValueError, match="No application configured for scope type 'websocket'"):
        await communicator.wait(1)


async def test_channel_name_router() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "routed", "channel": scope["channel"]})

    router = ChannelNameRouter({"thumbs": app})
    communicator = TypedCommunicator(router, {"type": "channel", "channel": "thumbs"})
    assert await communicator.receive_output() == {"type": "routed", "channel": "thumbs"}
    communicator = TypedCommunicator(router, {"type": "channel", "channel": "other"})
    with pytest.raises(ValueError, match="No application configured for channel name 'other'"):
        await communicator.wait(1)


SCRIPT = """
import asyncio, sys
{setup}
from consumers.routing import URLRouter, path, re_path
from consumers.testing import HttpCommunicator
from consumers import AsyncHttpConsumer

class Show(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_response(200, repr(self.scope["url_route"]["kwargs"]).encode())

router = URLRouter([path("a/<int:n>/", URLRouter([re_path(r"^b/(?P<w>\\w+)/$", Show.as_asgi())]))])

async def main():
    response = await HttpCommunicator(router, "GET", "/a/5/b/zz/").get_response()
    print("django" if "django" in repr(path) else "own", response["body"].decode())

asyncio.run(main())
"""
WITHOUT_DJANGO = "sys.modules['django'] = None  # as if Django were not installed"
DJANGO_CONFIGURED = (
    "import django; from django.conf import settings; settings.configure(); django.setup()"
)


@pytest.mark.parametrize(
    ("setup", "module"),
    [(WITHOUT_DJANGO, "own"), (DJANGO_CONFIGURED, "django")],
)
def test_path_with_and_without_django(setup: str, module: str) -> None:
    code = textwrap.dedent(SCRIPT).format(setup=setup)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [module, "{'n':", "5,", "'w':", "'zz'}"]


async def test_a_routed_consumer_runs_without_a_frame_of_the_routers_around_it() -> None:
    """Issue 18: each router, the origin check and as_asgi()'s wrapper used to await the next
    application, so an idle WebSocket held five coroutine frames (~1.4 KiB) for nothing. They
    return the consumer's coroutine itself, and stay coroutine functions to asgiref's checks."""
    from asgiref.compatibility import is_double_callable

    from consumers.security import OriginValidator

    consumer_app = AsyncWebsocketConsumer.as_asgi()
    application = ProtocolTypeRouter(
        {
            "websocket": OriginValidator(
                URLRouter([_own_path("ws/<slug:room>/", consumer_app)]), ["*"]
            )
        }
    )
    scope = {"type": "websocket", "path": "/ws/lobby/", "headers": [], "subprotocols": []}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        pass

    running = application(scope, receive, send)
    assert running.cr_code is AsyncWebsocketConsumer.__call__.__code__  # type: ignore[attr-defined]
    await running
    assert not is_double_callable(application)  # type: ignore[no-untyped-call]
    assert not is_double_callable(consumer_app)  # type: ignore[no-untyped-call]
    with pytest.raises(ValueError, match="No application configured for scope type 'http'"):
        await application({"type": "http", "path": "/"}, receive, send)
