"""Application WAMP handlers and hooks through the real server and autobahn-python."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from consumers.app import Application, Context
from tests.app._wamp_client import close, connect


def make_app(log: list[Any]) -> Application:
    app = Application("site")

    @app.wamp.register("auth.signin")
    async def signin(ctx: Context, username: str, password: str) -> dict[str, Any]:
        await ctx.publish("auth.signedin", username)
        return {"user": username, "ok": password == "secret", "name": ctx.name}

    @app.wamp.register()
    def whoami(ctx: Context) -> str:  # a sync handler, default name "site.whoami"
        return f"{ctx.app.name}:{threading.current_thread() is not threading.main_thread()}"

    @app.wamp.subscribe("auth.signedin", limit_calls=3)
    async def on_signed_in(ctx: Context, user: str) -> None:
        log.append(("signedin", user))

    # Same session, subscribed later: its run for an event is queued after the limited one's.
    @app.wamp.subscribe("auth.signedin")
    async def every_sign_in(ctx: Context, user: str) -> None:
        log.append(("every", user))

    @app.wamp.register("test.log")
    async def read_log(ctx: Context) -> list[Any]:
        return [list(entry) for entry in log]

    @app.on("app.ready")
    async def ready(ctx: Context) -> None:
        log.append(("ready", ctx.name))
        await app.emit("my.event", 7)

    @app.on("my.event")
    def mine(ctx: Context, value: int) -> None:
        log.append(("my.event", value))

    @app.on("app.stopping")
    async def stopping(ctx: Context) -> None:
        log.append(("stopping",))

    return app


async def test_calls_events_and_hooks(run_server: Callable[..., Any]) -> None:
    log: list[Any] = []
    with run_server(make_app(log)) as server:
        assert log == [("ready", "app.ready"), ("my.event", 7)]
        client = await connect(server.host, server.port)
        try:
            answer = await client.call("auth.signin", "ada", "secret")
            assert answer == {"user": "ada", "ok": True, "name": "auth.signin"}
            assert await client.call("site.whoami") == "site:True"
            for n in range(5):
                await client.call("auth.signin", f"u{n}", "x")
            entries: list[Any] = []
            for _ in range(500):  # until the unlimited subscriber has seen all six events
                entries = await client.call("test.log")
                if len([e for e in entries if e[0] == "every"]) == 6:
                    break
                await asyncio.sleep(0.01)
            signed = [e for e in entries if e[0] == "signedin"]
            assert signed == [["signedin", "ada"], ["signedin", "u0"], ["signedin", "u1"]]
        finally:
            await close(client)
    assert log[-1] == ("stopping",)


async def test_ready_hook_publishes_to_a_subscriber(run_server: Callable[..., Any]) -> None:
    app = Application("pub")
    got: asyncio.Queue[Any] = asyncio.Queue()

    @app.wamp.register("pub.announce")
    async def announce(ctx: Context, text: str) -> int:
        return await app.wamp.publish("pub.news", text)

    with run_server(app) as server:
        client = await connect(server.host, server.port)
        try:
            await client.subscribe(lambda text: got.put_nowait(text), "pub.news")
            publication = await client.call("pub.announce", "hello")
            assert isinstance(publication, int)
            assert await asyncio.wait_for(got.get(), 5) == "hello"
        finally:
            await close(client)
