"""The HTTP bridge on the real server: POSTs reaching autobahn-python sessions, calls, errors,
signing, IP allow-list, body limit."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router
from consumers.web import BridgeSecurity, Caller, Publisher, Webhook
from consumers.web.permissions import Permission, Role
from consumers.web.signing import sign, signed_query
from tests.wamp._autobahn import ApplicationError
from tests.wamp.conftest import Wamp

# Both transports: the bridge must not depend on which one carries it.

KEY, SECRET = "foobar", "kkjH68GiuUZ"
LIMITED = Role(
    "limited",
    (
        Permission("com.public.", "prefix", frozenset({"publish", "call"})),
        Permission("com.public.secret.", "prefix", frozenset({"subscribe"})),
    ),
)


def bridge_app(router: Router) -> Any:
    """Every bridge path beside the router's WebSocket endpoint, as a project composes them."""
    signed = BridgeSecurity(key=KEY, secret=SECRET, timestamp_delta_limit=10)
    http = URLRouter(
        [
            path("publish", Publisher("realm1")),
            path("call", Caller("realm1", call_timeout=0.5)),
            path("hook", Webhook("realm1", "com.example.hook")),
            path("signed", Publisher("realm1", security=signed)),
            path("small", Publisher("realm1", security=BridgeSecurity(post_body_limit=100))),
            path("lan", Publisher("realm1", security=BridgeSecurity(require_ip=["10.0.0.0/8"]))),
            path("limited", Publisher("realm1", role=LIMITED)),
            path("limited-call", Caller("realm1", role=LIMITED)),
        ]
    )
    websocket = URLRouter([path("ws", router.as_asgi())])
    return ProtocolTypeRouter({"http": http, "websocket": websocket})


@pytest.fixture
def bridge(
    run_server: Callable[..., Any],
) -> Callable[[], contextlib.AbstractAsyncContextManager[tuple[Wamp, httpx.AsyncClient]]]:
    """``async with bridge() as (wamp, http):`` a router with in-process procedures, autobahn
    clients (``wamp.connect()``) and an HTTP client, all on one real server."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[tuple[Wamp, httpx.AsyncClient]]:
        router = Router(realms=[Realm("realm1")])

        @router.register("realm1", "com.example.add")
        async def add(a: int, b: int) -> int:
            return a + b

        @router.register("realm1", "com.example.pair")
        async def pair(x: Any) -> Any:
            raise ApplicationError("com.example.odd", x, reason="odd")

        @router.register("realm1", "com.example.slow")
        async def slow() -> None:
            await asyncio.sleep(30)

        with run_server(bridge_app(router)) as server:
            wamp = Wamp(router, f"{server.ws_url}/ws", "127.0.0.1", server.port, "json")
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                try:
                    yield wamp, http
                finally:
                    await wamp.close()

    return factory


async def subscribe(wamp: Wamp, topic: str) -> asyncio.Queue[Any]:
    """An autobahn-python subscriber on ``topic``; its events arrive in the returned queue."""
    client = await wamp.connect()
    events: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe(lambda *args, **kwargs: events.put_nowait((args, kwargs)), topic)
    return events


async def test_publish_reaches_a_subscriber(bridge: Any) -> None:
    async with bridge() as (wamp, http):
        events = await subscribe(wamp, "com.myapp.topic1")
        body = {"topic": "com.myapp.topic1", "args": ["Hello, world"], "kwargs": {"n": 1}}
        response = await http.post("/publish", json=body)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["id"], int)
        assert await asyncio.wait_for(events.get(), 5) == (("Hello, world",), {"n": 1})
        options = {"topic": "com.myapp.topic1", "args": [2], "options": {"exclude": [1]}}
        assert (await http.post("/publish", json=options)).status_code == 200
        assert await asyncio.wait_for(events.get(), 5) == ((2,), {})


async def test_call_results_and_errors(bridge: Any) -> None:
    async with bridge() as (wamp, http):
        callee = await wamp.connect()
        await callee.register(lambda: None, "com.example.nothing")
        added = await http.post("/call", json={"procedure": "com.example.add", "args": [2, 3]})
        assert added.status_code == 200 and added.json() == {"args": [5]}
        nothing = await http.post("/call", json={"procedure": "com.example.nothing"})
        assert nothing.json() == {"args": []}
        missing = await http.post("/call", json={"procedure": "com.example.none"})
        assert missing.status_code == 404
        assert missing.json()["error"] == "wamp.error.no_such_procedure"
        failed = await http.post("/call", json={"procedure": "com.example.pair", "args": [3]})
        assert failed.status_code == 500
        assert failed.json() == {
            "error": "com.example.odd",
            "args": [3],
            "kwargs": {"reason": "odd"},
        }


async def test_call_timeout(bridge: Any) -> None:
    async with bridge() as (_, http):
        started = asyncio.get_running_loop().time()
        response = await http.post("/call", json={"procedure": "com.example.slow"})
        assert response.status_code == 504
        assert response.json()["error"] == "wamp.error.timeout"
        assert asyncio.get_running_loop().time() - started < 3


async def test_webhook_publishes_the_request(bridge: Any) -> None:
    async with bridge() as (wamp, http):
        events = await subscribe(wamp, "com.example.hook")
        response = await http.post("/hook", content=b"any <body>", headers={"x-event": "push"})
        assert response.status_code == 202 and "id" in response.json()
        (event,), _ = await asyncio.wait_for(events.get(), 5)
        assert event["body"] == "any <body>" and event["headers"]["x-event"] == ["push"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "crossway.error.invalid_json"),
        (b"\xff\xfe", 400, "crossway.error.invalid_json"),
        (b"[1, 2]", 400, "crossway.error.invalid_request"),
        (b'{"args": [1]}', 400, "crossway.error.invalid_request"),
        (b'{"topic": "t", "args": {"a": 1}}', 400, "crossway.error.invalid_request"),
        (
            b'{"topic": "t", "options": {"acknowledge": false}}',
            400,
            "crossway.error.invalid_request",
        ),
        (b'{"topic": "Not A Uri!"}', 400, "wamp.error.invalid_uri"),
    ],
)
async def test_bad_bodies(bridge: Any, body: bytes, status: int, error: str) -> None:
    async with bridge() as (_, http):
        response = await http.post("/publish", content=body)
        assert response.status_code == status, response.text
        assert response.json()["error"] == error


async def test_json_errors_say_where(bridge: Any) -> None:
    async with bridge() as (_, http):
        response = await http.post("/publish", content=b'{"topic": "a",\n "args": [1,]}')
        assert "line 2 column" in response.json()["message"]
        assert (await http.get("/publish")).status_code == 405


async def test_body_limit_and_ip_allow_list(bridge: Any) -> None:
    async with bridge() as (_, http):
        big = {"topic": "com.example.t", "args": ["x" * 200]}
        response = await http.post("/small", json=big)
        assert response.status_code == 413
        assert response.json()["error"] == "crossway.error.body_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield json.dumps(big).encode()

        assert (await http.post("/small", content=chunks())).status_code == 413
        small = {"topic": "com.example.t"}
        assert (await http.post("/small", json=small)).status_code == 200
        refused = await http.post("/lan", json=small)
        assert refused.status_code == 403
        assert refused.json()["error"] == "crossway.error.ip_not_allowed"


async def test_role_permissions(bridge: Any) -> None:
    async with bridge() as (_, http):
        allowed = await http.post("/limited", json={"topic": "com.public.news"})
        assert allowed.status_code == 200
        # An entry matches the topic and denies publish: 403.
        denied = await http.post("/limited", json={"topic": "com.public.secret.plans"})
        assert denied.status_code == 403 and denied.json()["error"] == "wamp.error.not_authorized"
        # No entry matches the topic at all: an unknown topic pattern for this path, 404.
        unknown = await http.post("/limited", json={"topic": "com.private.news"})
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "crossway.error.unknown_topic"
        # Calls keep 403 whether or not an entry matches.
        call = await http.post("/limited-call", json={"procedure": "com.example.add"})
        assert call.status_code == 403
        secret = await http.post("/limited-call", json={"procedure": "com.public.secret.x"})
        assert secret.status_code == 403


async def test_signed_requests(bridge: Any) -> None:
    async with bridge() as (wamp, http):
        events = await subscribe(wamp, "com.example.signed")
        body = json.dumps({"topic": "com.example.signed", "args": [1]}).encode()
        query = signed_query(SECRET, KEY, body, seq=1, nonce=12345)
        accepted = await http.post("/signed", content=body, params=query)
        assert accepted.status_code == 200, accepted.text
        assert await asyncio.wait_for(events.get(), 5) == ((1,), {})

        replayed = await http.post("/signed", content=body, params=query)
        assert replayed.status_code == 401
        assert replayed.json()["error"] == "crossway.error.replayed_nonce"

        unsigned = await http.post("/signed", content=body)
        assert unsigned.status_code == 401 and "signature" in unsigned.json()["message"]

        tampered_query = signed_query(SECRET, KEY, body, seq=2, nonce=2)
        tampered = await http.post("/signed", content=body + b" ", params=tampered_query)
        assert tampered.json()["error"] == "crossway.error.invalid_signature"

        wrong_secret = signed_query("guess", KEY, body, seq=3, nonce=3)
        assert (await http.post("/signed", content=body, params=wrong_secret)).status_code == 401

        stale = signed_query(SECRET, KEY, body, seq=4, nonce=4)
        stale["timestamp"] = "2011-10-14T16:59:51.123Z"  # correctly signed, but long ago
        digest = sign(SECRET, KEY, stale["timestamp"], "4", "4", body)
        stale["signature"] = base64.urlsafe_b64encode(digest).decode()
        old = await http.post("/signed", content=body, params=stale)
        assert old.status_code == 401
        assert old.json()["error"] == "crossway.error.stale_timestamp"
