from __future__ import annotations

import asyncio
from typing import Any

import pytest


@pytest.mark.transports("asyncio")
async def test_pubsub_and_rpc(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        a = await wamp.connect()
        b = await wamp.connect()
        got: asyncio.Queue[Any] = asyncio.Queue()
        await a.subscribe(lambda *args, **kw: got.put_nowait((args, kw)), "com.example.t")
        b.publish("com.example.t", 1, 2, x=3)
        assert await asyncio.wait_for(got.get(), 2) == ((1, 2), {"x": 3})
        await a.register(lambda x, y: x + y, "com.example.add")
        assert await b.call("com.example.add", 2, 3) == 5
