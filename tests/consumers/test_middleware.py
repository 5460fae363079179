"""CookieMiddleware, OriginValidator and AllowedHostsOriginValidator."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from consumers import AsyncHttpConsumer, AsyncWebsocketConsumer
from consumers.middleware import BaseMiddleware, CookieMiddleware, parse_cookie
from consumers.security import AllowedHostsOriginValidator, OriginValidator
from consumers.testing import HttpCommunicator, WebsocketCommunicator


class ShowCookies(AsyncHttpConsumer):
    """Echoes scope["cookies"] and sets two cookies on the response."""

    async def handle(self, body: bytes) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": []}
        CookieMiddleware.set_cookie(start, "theme", "dark", max_age=60, httponly=True)
        CookieMiddleware.delete_cookie(start, "old")
        await self.send(start)
        await self.send_body(repr(sorted(self.scope["cookies"].items())).encode())


async def test_cookie_middleware_parses_and_sets() -> None:
    app = CookieMiddleware(ShowCookies.as_asgi())
    headers = [(b"cookie", b'a=1; b="two words"; broken; c=x=y'), (b"cookie", b"d=4")]
    response = await HttpCommunicator(app, "GET", "/", headers=headers).get_response()
    assert response["body"] == (
        b"[('', 'broken'), ('a', '1'), ('b', 'two words'), ('c', 'x=y'), ('d', '4')]"
    )
    set_cookies = [v.decode() for k, v in response["headers"] if k == b"set-cookie"]
    assert len(set_cookies) == 2
    theme, old = set_cookies
    assert theme.startswith("theme=dark; ")
    for attribute in ("expires=", "HttpOnly", "Max-Age=60", "Path=/", "SameSite=Lax"):
        assert attribute in theme
    assert old.startswith('old=""; ') and "Max-Age=0" in old
    assert "expires=Thu, 01 Jan 1970 00:00:00 GMT" in old


def test_parse_cookie_without_header_values() -> None:
    assert parse_cookie("") == {}
    assert parse_cookie(" ; ;") == {}


async def test_base_middleware_copies_the_scope() -> None:
    class Stamp(BaseMiddleware):
        async def populate_scope(self, scope: dict[str, Any]) -> None:
            scope["stamp"] = "yes"

    class Show(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_response(200, self.scope["stamp"].encode())

    communicator = HttpCommunicator(Stamp(Show.as_asgi()), "GET", "/")
    assert (await communicator.get_response())["body"] == b"yes"
    assert "stamp" not in communicator.scope


ALLOWED = ["https://example.com", ".trusted.org", "localhost:8000", "http://ports.net:8080"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://example.com", True),
        ("https://example.com:443", True),
        ("http://example.com", False),  # scheme given in the pattern must match
        ("https://evil-example.com", False),
        ("https://trusted.org", True),
        ("https://a.b.trusted.org", True),
        ("https://nottrusted.org", False),
        ("http://localhost:8000", True),
        ("http://localhost:9999", True),  # a bare host pattern allows any port
        ("http://ports.net:8080", True),
        ("http://ports.net", False),
        ("null", False),
        (None, False),
    ],
)
async def test_origin_validator(origin: str | None, allowed: bool) -> None:
    app = OriginValidator(AsyncWebsocketConsumer.as_asgi(), ALLOWED)
    headers = [] if origin is None else [(b"origin", origin.encode())]
    communicator = WebsocketCommunicator(app, "/ws/", headers=headers)
    assert await communicator.connect() == ((True, None) if allowed else (False, 1000))
    await communicator.disconnect()


async def test_origin_star_allows_missing_origin_and_http_denial_is_403() -> None:
    communicator = WebsocketCommunicator(
        OriginValidator(AsyncWebsocketConsumer.as_asgi(), ["*"]), "/"
    )
    assert await communicator.connect() == (True, None)
    await communicator.disconnect()

    class Ok(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_response(200, b"ok")

    app = OriginValidator(Ok.as_asgi(), ["https://example.com"])
    headers = [(b"origin", b"https://evil.com")]
    response = await HttpCommunicator(app, "POST", "/", headers=headers).get_response()
    assert response["status"] == 403


def test_allowed_hosts_needs_a_list_without_django() -> None:
    with pytest.raises(ValueError, match=r"pass allowed_hosts=\["):
        AllowedHostsOriginValidator(AsyncWebsocketConsumer.as_asgi())


async def test_allowed_hosts_explicit_list() -> None:
    app = AllowedHostsOriginValidator(AsyncWebsocketConsumer.as_asgi(), [".example.com"])
    for origin, expected in [(b"https://www.example.com", True), (b"https://x.com", False)]:
        communicator = WebsocketCommunicator(app, "/", headers=[(b"origin", origin)])
        assert (await communicator.connect())[0] is expected
        await communicator.disconnect()


DJANGO_SCRIPT = """
import asyncio
import django
from django.conf import settings
settings.configure(ALLOWED_HOSTS={hosts!r}, DEBUG={debug!r})
django.setup()
from consumers import AsyncWebsocketConsumer
from consumers.security import AllowedHostsOriginValidator
from consumers.testing import WebsocketCommunicator

async def main():
    app = AllowedHostsOriginValidator(AsyncWebsocketConsumer.as_asgi())
    for origin in (b"http://chat.example.com", b"http://localhost:8000", b"http://evil.com"):
        communicator = WebsocketCommunicator(app, "/", headers=[(b"origin", origin)])
        print(origin.decode(), (await communicator.connect())[0])

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("hosts", "debug", "expected"),
    [
        ([".example.com"], False, ["True", "False", "False"]),
        ([], True, ["False", "True", "False"]),  # Django's DEBUG defaults: the local hosts
    ],
)
def test_allowed_hosts_from_django_settings(
    hosts: list[str], debug: bool, expected: list[str]
) -> None:
    code = textwrap.dedent(DJANGO_SCRIPT).format(hosts=hosts, debug=debug)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()] == expected
