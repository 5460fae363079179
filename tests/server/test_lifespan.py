"""Lifespan: startup and shutdown around serving, failures, and the auto/on/off modes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_app(events: list[str], fail: str | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail == "startup":
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    scope["state"]["answer"] = 42
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        events.append("http " + str(scope["state"]["answer"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def test_startup_then_requests_then_shutdown(run_server: Any) -> None:
    events: list[str] = []
    with run_server(make_app(events), lifespan="on") as server:
        assert httpx.get(server.url).status_code == 204
    assert events == ["lifespan.startup", "http 42", "lifespan.shutdown"]


def test_startup_failure_stops_the_server(run_server: Any) -> None:
    events: list[str] = []
    with (
        pytest.raises(RuntimeError, match="exit code 3"),
        run_server(make_app(events, fail="startup")),
    ):
        pass  # pragma: no cover - the server never starts
    assert events == ["lifespan.startup"]


async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "this app does not support lifespan"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_auto_mode_serves_an_app_without_lifespan(run_server: Any) -> None:
    with run_server(no_lifespan, lifespan="auto") as server:
        assert httpx.get(server.url).status_code == 204


def test_on_mode_refuses_an_app_without_lifespan(run_server: Any) -> None:
    with pytest.raises(RuntimeError, match="exit code 3"), run_server(no_lifespan, lifespan="on"):
        pass  # pragma: no cover


def test_off_mode_never_sends_lifespan(run_server: Any) -> None:
    events: list[str] = []
    app = make_app(events)

    async def tolerant(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["answer"] = "none"
        await app(scope, receive, send)

    with run_server(tolerant, lifespan="off") as server:
        assert httpx.get(server.url).status_code == 204
    assert events == ["http none"]


def test_startup_failure_exits_non_zero_with_the_message() -> None:
    env = {**os.environ, "CROSSWAY_TEST_STARTUP_FAIL": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "asgi_server", "_apps:slow", "--app-dir", "tests/server"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert "Application startup failed: database unreachable" in result.stderr


def test_shutdown_runs_on_sigterm(run_server_process: Any) -> None:
    with run_server_process("_apps:slow", "--app-dir", "tests/server") as server:
        assert httpx.get(server.url + "/?seconds=0").status_code == 200
    assert server.process.returncode == 0
    assert "lifespan shutdown ran" in server.output()
