"""examples/wamp under ``python -m asgi_server`` (its own process): autobahn-python and httpx."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.wamp.conftest import Wamp


async def test_the_example_serves_wamp_and_publishes_from_http(run_server_process: Any) -> None:
    with run_server_process("examples.wamp.app:application") as server:
        for serializer in ("json", "msgpack", "cbor"):
            wamp = Wamp(
                None, f"ws://127.0.0.1:{server.port}/ws", "127.0.0.1", server.port, serializer
            )
            client = await wamp.connect()
            assert await client.call("com.example.add", 2, 3) == 5
            notices: asyncio.Queue[Any] = asyncio.Queue()
            await client.subscribe(notices.put_nowait, "com.example.notice")
            async with httpx.AsyncClient(base_url=server.url) as http:
                response = await http.post("/notify", content=f"hello {serializer}")
                assert response.status_code == 200 and int(response.text) >= 1
                page = await http.get("/")
                assert b"autobahn.min.js" in page.content
            assert await asyncio.wait_for(notices.get(), 2) == f"hello {serializer}"
            await wamp.close()
        assert "Traceback" not in server.output()
