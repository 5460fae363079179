"""The WebSocket endpoint on the real server: negotiation, refusal, bad input, limits, vanishing
clients. Raw clients (the websockets library speaking JSON) where a test needs exact messages."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
import websockets

from consumers.wamp import Limits, Realm, Router, publish_sync
from tests.wamp._autobahn import ApplicationError
from tests.wamp._core import CLIENT_ROLES
from tests.wamp.conftest import application

pytestmark = pytest.mark.transports("asyncio")


class RawClient:
    """A WAMP-over-JSON client on a plain WebSocket: sends and receives raw lists."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def send(self, *raw: Any) -> None:
        await self.connection.send(json.dumps(list(raw)))

    async def recv(self, timeout: float = 2.0) -> list[Any]:
        return list(json.loads(await asyncio.wait_for(self.connection.recv(), timeout)))

    async def join(self, realm: str = "realm1") -> int:
        await self.send(1, realm, {"roles": CLIENT_ROLES})
        welcome = await self.recv()
        assert welcome[0] == 2, welcome
        return int(welcome[1])


def raw_client(url: str, subprotocol: str = "wamp.2.json", **kwargs: Any) -> Any:
    return websockets.connect(url, subprotocols=[websockets.Subprotocol(subprotocol)], **kwargs)


@pytest.mark.transports("asyncio", "twisted")
async def test_subprotocol_negotiation_and_refusal(run_server: Any) -> None:
    router = Router(realms=[Realm("realm1")])
    with run_server(application(router)) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        offered = [websockets.Subprotocol(p) for p in ("chat", "wamp.2.cbor", "wamp.2.json")]
        async with websockets.connect(url, subprotocols=offered) as connection:
            assert connection.subprotocol == "wamp.2.cbor"  # the client's first WAMP choice
        for name in ("wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor"):
            async with raw_client(url, name) as connection:
                assert connection.subprotocol == name
        for subprotocols in ([], [websockets.Subprotocol("chat")]):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with websockets.connect(url, subprotocols=subprotocols or None):
                    pass
            response = info.value.response
            assert response.status_code == 400
            assert b"offer one of the WebSocket subprotocols wamp.2.json" in response.body


async def test_disclose_me_and_cancel_modes_from_a_raw_client(run_server: Any) -> None:
    with run_server(application(Router(realms=[Realm("realm1")]))) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with raw_client(url) as a, raw_client(url) as b:
            callee, caller = RawClient(a), RawClient(b)
            await callee.join()
            caller_id = await caller.join()
            await callee.send(32, 1, {}, "com.topic")
            assert (await callee.recv())[0] == 33
            await caller.send(16, 1, {"disclose_me": True}, "com.topic")  # as autobahn.js does
            event = await callee.recv()
            assert event[3] == {
                "publisher": caller_id,
                "publisher_authid": event[3]["publisher_authid"],
                "publisher_authrole": "anonymous",
            }
            await callee.send(64, 2, {}, "com.slow")
            assert (await callee.recv())[0] == 65
            # kill: INTERRUPT, then the caller's error only after the callee's.
            await caller.send(48, 10, {"disclose_me": True}, "com.slow")
            invocation = await callee.recv()
            assert invocation[3]["caller"] == caller_id
            await caller.send(49, 10, {"mode": "kill"})
            assert await callee.recv() == [69, invocation[1], {"mode": "kill"}]
            with pytest.raises(asyncio.TimeoutError):
                await caller.recv(timeout=0.2)
            await callee.send(8, 68, invocation[1], {}, "wamp.error.canceled")
            assert (await caller.recv())[:5] == [8, 48, 10, {}, "wamp.error.canceled"]
            # skip: the caller's error at once, the callee not told.
            await caller.send(48, 11, {}, "com.slow")
            invocation = await callee.recv()
            await caller.send(49, 11, {"mode": "skip"})
            assert (await caller.recv())[4] == "wamp.error.canceled"
            await callee.send(70, invocation[1], {}, ["late"])
            await caller.send(48, 12, {}, "com.nothing")  # a marker: the late YIELD was dropped
            assert (await caller.recv())[:3] == [8, 48, 12]


async def test_malformed_frame_aborts_only_that_session(run_server: Any) -> None:
    with run_server(application(Router(realms=[Realm("realm1")]))) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with raw_client(url) as a, raw_client(url) as b:
            bad, good = RawClient(a), RawClient(b)
            await bad.join()
            await good.join()
            await a.send("[16, 1, {")
            abort = await bad.recv()
            assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
            with pytest.raises(websockets.ConnectionClosed):
                await a.recv()
            await good.send(32, 1, {}, "com.topic")
            assert (await good.recv())[0] == 33
        async with raw_client(url) as c:
            early = RawClient(c)
            await early.send(16, 1, {}, "com.topic")  # PUBLISH before HELLO
            assert (await early.recv())[2] == "wamp.error.protocol_violation"


async def test_unknown_realm_is_refused(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        client = await wamp.transport(realm="nowhere")
        with pytest.raises(RuntimeError, match=r"wamp\.error\.no_such_realm"):
            await asyncio.wait_for(client.joined, 2)


async def test_max_message_size(run_server: Any) -> None:
    router = Router(realms=[Realm("realm1")], limits=Limits(max_message_size=1000))
    with run_server(application(router)) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with raw_client(url) as connection:
            client = RawClient(connection)
            await client.join()
            await client.send(16, 1, {}, "com.topic", ["x" * 2000])
            with pytest.raises(websockets.ConnectionClosed) as info:
                await client.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await asyncio.sleep(0)
        assert all(realm.is_idle() for realm in router._realms.values())


async def test_vanished_clients_leave_zero_routing_state(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        clients = [await wamp.connect() for _ in range(4)]
        for index, client in enumerate(clients):
            await client.subscribe(lambda *a: None, f"com.topic{index}")
            await client.subscribe(lambda *a: None, "com", options=_prefix())
            await client.register(lambda: None, f"com.proc{index}")
        for client in clients:
            sock = client._transport.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            client._transport.transport.abort()  # TCP reset, no closing handshake
        assert await wamp.idle()


def _prefix() -> Any:
    from tests.wamp._autobahn import SubscribeOptions

    return SubscribeOptions(match="prefix")


async def test_registration_limit_and_pending_call_limit(wamp_server: Any) -> None:
    router = Router(
        realms=[Realm("realm1")],
        limits=Limits(max_registrations_per_session=1, max_pending_calls_per_session=1),
    )
    async with wamp_server(router) as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()
        release = asyncio.Event()

        async def wait() -> str:
            await release.wait()
            return "ok"

        await callee.register(wait, "com.wait")
        with pytest.raises(ApplicationError) as info:
            await callee.register(wait, "com.other")
        assert info.value.error == "crossway.error.limit_exceeded"
        first = asyncio.ensure_future(caller.call("com.wait"))
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.wait")
        assert info.value.error == "crossway.error.limit_exceeded"
        release.set()
        assert await first == "ok"


async def test_loose_uris_per_realm(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1"), Realm("loose", uri_check="loose")])
    async with wamp_server(router) as wamp:
        strict, loose = await wamp.connect(), await wamp.connect("loose")
        with pytest.raises(ApplicationError) as info:
            await strict.register(lambda: 1, "com.Example.Upper")
        assert info.value.error == "wamp.error.invalid_uri"
        await loose.register(lambda: 1, "com.Example.Upper")
        assert await loose.call("com.Example.Upper") == 1


async def test_a_client_that_does_not_read_is_cut_off_not_buffered(run_server: Any) -> None:
    router = Router(realms=[Realm("realm1")], limits=Limits(max_outgoing_queue=10))
    with run_server(application(router)) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with raw_client(url) as connection:
            client = RawClient(connection)
            await client.join()
            await client.send(32, 1, {}, "com.flood")
            assert (await client.recv())[0] == 33

            def flood() -> None:  # 100 events in one loop turn: the writer cannot keep up
                for i in range(100):
                    publish_sync("realm1", "com.flood", i)

            assert router.loop is not None
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_run(flood), router.loop))
            with pytest.raises(websockets.ConnectionClosed) as info:
                while True:
                    await client.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        realm = router._realms["realm1"]
        assert realm.state.is_empty() and list(realm.sessions.values()) == [
            router._system["realm1"].session  # only the router's own publisher is left
        ]


async def _run(function: Any) -> None:
    function()


@pytest.mark.transports("asyncio", "twisted")
async def test_pubsub_and_rpc_on_both_server_transports(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        a, b = await wamp.connect(), await wamp.connect()
        got: asyncio.Queue[Any] = asyncio.Queue()
        await a.subscribe(lambda *args, **kw: got.put_nowait((args, kw)), "com.example.t")
        b.publish("com.example.t", 1, b"\x00\xff", x=3)
        assert await asyncio.wait_for(got.get(), 2) == ((1, b"\x00\xff"), {"x": 3})
        await a.register(lambda x, y: x + y, "com.example.add")
        assert await b.call("com.example.add", 2, 3) == 5
