"""Consumers outlive a Redis outage (issue 17, item 1): two real servers running the chat example
on the durable Redis layer, 20 WebSocket clients in one room, and a private Redis that is
SIGKILLed and restarted (AOF on), then frozen with SIGSTOP for 6 s. No socket may close, and the
room must deliver again within 2 s of Redis answering. A connection opened during the outage is
refused with a 503 and one log line, not a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import RedisProcess, redis_command, redis_server_binary

ROOM = "/ws/chat/outage/"
CLIENTS_PER_SERVER = 10


def start_with_aof(server: RedisProcess) -> None:
    """(Re)start ``server`` on its port and directory with the append-only file on, so that it
    comes back with its data (the fixture's servers run without persistence)."""
    args = [redis_server_binary(), "--port", str(server.port), "--bind", "127.0.0.1"]
    args += ["--dir", str(server.directory), "--save", "", "--appendonly", "yes"]
    args += ["--daemonize", "no", "--loglevel", "warning"]
    server.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if redis_command(server.port, "PING").startswith(b"+PONG"):
                return
        time.sleep(0.01)
    raise RuntimeError("redis-server did not come back within 10 s")


async def open_client(url: str) -> ClientConnection:
    client = await websockets.connect(url + ROOM, origin=websockets.Origin("http://127.0.0.1"))
    assert json.loads(await client.recv())["type"] == "joined"
    return client


async def say_until_heard(clients: list[ClientConnection], text: str, seconds: float) -> float:
    """Send ``text`` to the room from the first client, again every 100 ms, until every client
    has received it; return how long that took (fails after ``seconds``)."""
    started = time.monotonic()
    heard: set[int] = set()

    async def listen(number: int, client: ClientConnection) -> None:
        while True:
            event = json.loads(await client.recv())
            if event.get("text") == text:
                heard.add(number)
                return

    listeners = [asyncio.ensure_future(listen(n, c)) for n, c in enumerate(clients)]
    try:
        async with asyncio.timeout(seconds):
            while len(heard) < len(clients):
                await clients[0].send(json.dumps({"name": "probe", "text": text}))
                await asyncio.wait(listeners, timeout=0.1, return_when=asyncio.ALL_COMPLETED)
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    return time.monotonic() - started


async def drain(clients: list[ClientConnection]) -> None:
    """Read what the clients received meanwhile (duplicate probes), until 200 ms of quiet."""
    for client in clients:
        with contextlib.suppress(TimeoutError):
            while True:
                await asyncio.wait_for(client.recv(), 0.2)


@contextlib.asynccontextmanager
async def room(urls: list[str]) -> AsyncIterator[list[ClientConnection]]:
    clients = [await open_client(url) for url in urls for _ in range(CLIENTS_PER_SERVER)]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def test_clients_stay_connected_through_a_redis_kill_and_a_freeze(
    redis_servers: Any,
    run_server_process: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = redis_servers.start()
    assert redis_command(redis.port, "CONFIG", "SET", "appendonly", "yes").startswith(b"+OK")
    monkeypatch.setenv("CHANNEL_LAYERS_URL", redis.url + "/0")
    app = "examples.chat.app:application"
    with run_server_process(app) as first, run_server_process(app) as second:
        async with room([first.ws_url, second.ws_url]) as clients:
            assert await say_until_heard(clients, "before", 5) < 2

            # A crash: SIGKILL, 3 s down (a new connection meanwhile is refused), back with AOF.
            time.sleep(0.5)  # let the AOF (fsync every second) hold the room's memberships
            redis.stop()
            await asyncio.sleep(1)
            with pytest.raises(websockets.InvalidStatus) as refused:
                await open_client(first.ws_url)
            assert refused.value.response.status_code == 503
            await asyncio.sleep(2)
            start_with_aof(redis)
            assert await say_until_heard(clients, "after the kill", 2) < 2
            await drain(clients)

            # A freeze: SIGSTOP for 6 s, then SIGCONT.
            assert redis.process is not None
            redis.process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(6)
            redis.process.send_signal(signal.SIGCONT)
            assert await say_until_heard(clients, "after the freeze", 2) < 2

            assert all(client.close_code is None for client in clients), "a socket was closed"
    for server in (first, second):
        log = server.output()
        assert "Traceback" not in log, log
        assert "channel layer 'default' is unavailable" in log, log
        assert "channel layer 'default' is back" in log, log
    assert "refused the connection: channel layer 'default' unavailable" in first.output()


async def test_groups_are_joined_again_when_redis_lost_them(
    redis_servers: Any,
    run_server_process: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis restarted without persistence forgets every membership: each consumer re-adds the
    groups it is in (joined in connect() through self.channel_layer, as the chat example does)."""
    redis = redis_servers.start()
    monkeypatch.setenv("CHANNEL_LAYERS_URL", redis.url + "/0")
    with run_server_process("examples.chat.app:application") as server:
        clients = [await open_client(server.ws_url) for _ in range(4)]
        assert await say_until_heard(clients, "before", 5) < 2
        redis.stop()
        await asyncio.sleep(1)
        redis.start()  # empty: no groups, no queues
        assert await say_until_heard(clients, "after", 2) < 2
        assert all(client.close_code is None for client in clients)
        for client in clients:
            await client.close()
    assert "Traceback" not in server.output()
