"""A small plugin for the Application tests: ``app.plug("tests.app.sample_plugin")``."""

from __future__ import annotations

from typing import Any


def setup(app: Any) -> None:
    """Add a health route and a WAMP procedure to ``app``."""

    @app.http.get("/health")
    async def health(request: Any) -> dict[str, str]:
        return {"status": "ok", "app": app.name}

    @app.wamp.register("plugin.ping")
    async def ping(ctx: Any) -> str:
        return "pong"
