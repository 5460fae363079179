"""The ``.batched`` subprotocols (wamp.2.json.batched, .msgpack.batched, .cbor.batched) with
autobahn-python's client in batched mode: negotiation, pub/sub and RPC end to end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.wamp._autobahn import PublishOptions

pytestmark = pytest.mark.transports("asyncio")


@pytest.mark.parametrize("serializer", ["json.batched", "msgpack.batched", "cbor.batched"])
async def test_batched_clients_publish_subscribe_and_call(
    wamp_server: Any, serializer: str
) -> None:
    async with wamp_server() as wamp:
        a, b = await wamp.connect(), await wamp.connect()
        # autobahn names the subprotocol it negotiated after its serializer
        negotiated = a._transport._serializer.SERIALIZER_ID
        assert negotiated == serializer
        events: asyncio.Queue[Any] = asyncio.Queue()
        await a.subscribe(lambda *args, **kwargs: events.put_nowait((args, kwargs)), "com.t")
        await b.publish("com.t", 1, b"\x00\xff", k="v", options=PublishOptions(acknowledge=True))
        assert await asyncio.wait_for(events.get(), 5) == ((1, b"\x00\xff"), {"k": "v"})
        await a.register(lambda x, y: [x + y, "é"], "com.add")
        assert await b.call("com.add", 2, 3) == [5, "é"]
        plain = await wamp.connect(serializer=serializer.split(".")[0])
        assert await plain.call("com.add", 1, 1) == [2, "é"]  # both framings on one router
