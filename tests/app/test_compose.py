"""Plugins, embedded sub-apps and supervised services, through the real server."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from consumers.app import Application, Context, Request
from consumers.app.services import Service
from tests.app._wamp_client import close, connect


async def test_plugins_and_embedded_apps(run_server: Callable[..., Any]) -> None:
    blog = Application("blog")
    events: list[str] = []

    @blog.http.get("/post/:slug")
    async def post(request: Request, slug: str) -> str:
        return f"post {slug}"

    @blog.wamp.register()
    async def count(ctx: Context) -> int:
        return 3

    @blog.on("app.ready")
    async def ready(ctx: Context) -> None:
        events.append("blog ready")

    shop = Application("shop")

    @shop.http.get("/item/{n:int}")
    async def item(request: Request, n: int) -> dict[str, Any]:
        return {"item": n, "root": request.scope.get("root_path", "")}

    app = Application("site", plugins=["tests.app.sample_plugin"])
    app.embed(blog)
    app.embed(shop, prefix="/shop")
    with run_server(app) as server:
        assert events == ["blog ready"]  # the embedded app's hook ran in the host's lifespan
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/health")).json() == {"status": "ok", "app": "site"}
            assert (await http.get("/post/first")).text == "post first"
            assert (await http.get("/shop/item/4")).json()["item"] == 4
            assert (await http.get("/item/4")).status_code == 404  # only below its prefix
        client = await connect(server.host, server.port)
        try:
            assert await client.call("plugin.ping") == "pong"
            assert await client.call("blog.count") == 3  # named after the app that declared it
        finally:
            await close(client)


def test_a_plugin_without_setup_is_refused() -> None:
    with pytest.raises(AttributeError, match="has no setup"):
        Application("x").plug("tests.app._wamp_client")


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_crashing_service_is_restarted_with_its_output_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crash = "import sys; print('crashing now', flush=True); sys.exit(3)"
    service = Service([sys.executable, "-c", crash], name="crasher", max_backoff=0.2)
    with caplog.at_level(logging.INFO, logger="consumers.app.services"):
        service.start()
        try:
            crashes = "[crasher] crashing now"
            await _until(lambda: [r.getMessage() for r in caplog.records].count(crashes) >= 3)
        finally:
            await service.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert service.starts >= 3
    assert any("exited with code 3; restarting" in line for line in lines)


async def test_a_service_that_exits_cleanly_stays_down_on_failure_policy() -> None:
    service = Service([sys.executable, "-c", "pass"], restart="on-failure")
    service.start()
    await _until(lambda: service.process is not None and service.process.returncode == 0)
    assert service._task is not None
    await asyncio.wait_for(service._task, 5)  # supervision ended: no restart
    assert service.starts == 1


async def test_a_service_ignoring_sigterm_is_killed_after_the_timeout() -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('up', flush=True); time.sleep(60)"
    )
    service = Service([sys.executable, "-c", stubborn], stop_timeout=0.5)
    service.start()
    await _until(lambda: service.starts == 1)
    await asyncio.sleep(0.3)  # let it install its SIGTERM handler  (it prints "up" after)
    started = time.monotonic()
    await service.stop()
    assert service.process is not None and service.process.returncode == -9
    assert 0.4 < time.monotonic() - started < 5


def test_services_start_after_ready_and_stop_with_the_app(
    run_server: Callable[..., Any], tmp_path: Any
) -> None:
    marker = tmp_path / "ran"
    app = Application("svc")
    order: list[str] = []
    script = f"open({str(marker)!r}, 'w').write('x'); import time; time.sleep(60)"
    service = app.service([sys.executable, "-c", script])

    @app.on("app.ready")
    def ready(ctx: Context) -> None:
        order.append(f"ready, service started {service.starts} times")

    with run_server(app):
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert order == ["ready, service started 0 times"]
    assert service.process is not None and service.process.returncode is not None


async def test_mounted_in_a_protocol_type_router(run_server: Callable[..., Any]) -> None:
    from consumers.routing import ProtocolTypeRouter, URLRouter, path

    app = Application("site")

    @app.http.get("/user/:id/")
    async def user(request: Request, id: str) -> dict[str, str]:
        return {"id": id, "root": request.scope["root_path"]}

    @app.wamp.register()
    async def ping(ctx: Context) -> str:
        return "pong"

    @app.on("app.ready")
    async def ready(ctx: Context) -> None:
        ready_calls.append(1)

    ready_calls: list[int] = []
    project = ProtocolTypeRouter(
        {
            "http": URLRouter([path("site/", app)]),
            "websocket": URLRouter([path("site/", app)]),
            "lifespan": app,
        }
    )
    with run_server(project) as server:
        assert ready_calls == [1]
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/site/user/5/")).json() == {"id": "5", "root": "/site"}
            assert (await http.get("/user/5/")).status_code == 404
        client = await connect(server.host, server.port, path="/site/ws")
        try:
            assert await client.call("site.ping") == "pong"
        finally:
            await close(client)


async def test_mounted_in_a_project_it_shares_the_projects_router(
    run_server: Callable[..., Any],
) -> None:
    from consumers.routing import ProtocolTypeRouter, URLRouter, path
    from consumers.wamp import Realm, Router

    project_router = Router(realms=[Realm("realm1")])

    @project_router.register("realm1", "project.hello")
    async def hello() -> str:
        return "hello from the project"

    app = Application("site", router=project_router)

    @app.wamp.register()
    async def ping(ctx: Context) -> str:
        return await ctx.call("project.hello")

    project = ProtocolTypeRouter(
        {
            "websocket": URLRouter([path("ws", project_router.as_asgi()), path("site/", app)]),
            "lifespan": app,
        }
    )
    with run_server(project) as server:
        # A client of the project's endpoint calls the app's handler, which calls the
        # project's: one router, one realm, whichever endpoint a client uses.
        for endpoint in ("/ws", "/site/ws"):
            client = await connect(server.host, server.port, path=endpoint)
            try:
                assert await client.call("site.ping") == "hello from the project"
            finally:
                await close(client)
    with pytest.raises(ValueError, match="has no realm 'other'"):
        Application("x", realm="other", router=project_router)
