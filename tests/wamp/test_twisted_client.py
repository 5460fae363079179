"""autobahn-python's Twisted client against the router, on json, msgpack and cbor."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.wamp import Realm, Router

pytestmark = pytest.mark.transports("asyncio")

CLIENT = Path(__file__).with_name("_twisted_client.py")


async def test_twisted_client(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1")])

    @router.register("realm1", "com.local.add")
    def add(a: int, b: int) -> int:
        return a + b

    async with wamp_server(router) as wamp:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CLIENT),
            wamp.url,
            wamp.serializer,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert stdout, stderr.decode()
        report = json.loads(stdout.decode().strip().splitlines()[-1])
        assert report == {
            "joined": "realm1",
            "sum": 42,
            "local": 3,
            "events": [["hi"]],
            "timeout": "wamp.error.timeout",
        }, stderr.decode()
        assert await wamp.idle()
