"""What does an Application route cost per request, next to Starlette's and a Django ASGI view?

The ``/user/{id:int}/`` route answering ``{"id": 42}`` as JSON, on three frameworks. Two views:

- ``inproc`` (default): no server and no network. Each app is called directly with an HTTP scope
  and a one-message body, in its own subprocess (ours from this venv, Starlette and Django from
  benchmarks/.peers/venv), and we count process CPU microseconds per request, the best of a few
  batches: the framework's own cost, which is what the issue's target (at most 1.2x Starlette's
  CPU per request) is about.
- ``server``: each app behind asgi-server (and Starlette behind uvicorn too), loaded with wrk on
  one connection per core; prints requests/s and the server's CPU microseconds per request.

Usage: ``python -m benchmarks.app_route [--mode inproc|server] [--rounds 5] [--requests 20000]``
(run ``bash benchmarks/setup_peers.sh`` once first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

from benchmarks._common import (
    PEERS_BIN,
    ROOT,
    Server,
    ServerFailed,
    free_port,
    group_cpu_seconds,
    load_average,
    require,
    start_server,
)

PATH = "/user/42/"


def ours_app() -> Any:
    """The route on consumers.app."""
    from consumers.app import Application

    app = Application("bench")

    @app.http.get("/user/{id:int}/")
    async def user(request: Any, id: int) -> dict[str, int]:
        return {"id": id}

    return app


def starlette_app() -> Any:
    """The same route on Starlette."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def user(request: Any) -> Any:
        return JSONResponse({"id": request.path_params["id"]})

    return Starlette(routes=[Route("/user/{id:int}/", user)])


def django_app() -> Any:
    """The same route as a Django async view under Django's ASGI handler."""
    import django
    from django.conf import settings
    from django.http import JsonResponse
    from django.urls import path

    async def user(request: Any, id: int) -> Any:
        return JsonResponse({"id": id})

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="benchmark",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )
    django.setup()
    globals()["urlpatterns"] = [path("user/<int:id>/", user)]
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


APPS = {"ours": ours_app, "starlette": starlette_app, "django": django_app}


async def _measure(app: Any, requests: int, rounds: int) -> float:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()

    class Receive:
        """The request's one body message, then (as a server does) wait for a disconnect."""

        __slots__ = ("given",)

        def __init__(self) -> None:
            self.given = False

        async def __call__(self) -> dict[str, Any]:
            if not self.given:
                self.given = True
                return request
            await never.wait()
            return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), Receive(), send)  # warm up, and check the answer
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert json.loads(body) == {"id": 42}, body
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            sent.clear()
            await app(dict(scope), Receive(), send)
        best = min(best, (time.process_time() - started) / requests * 1e6)
    return best


def _side(name: str, requests: int, rounds: int) -> None:
    app = APPS[name]()
    print(json.dumps({"side": name, "us": asyncio.run(_measure(app, requests, rounds))}))


def _run_side(name: str, requests: int, rounds: int) -> float:
    python = sys.executable if name == "ours" else str(PEERS_BIN / "python")
    command = [python, "-m", "benchmarks.app_route", "--side", name]
    command += ["--requests", str(requests), "--rounds", str(rounds)]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return float(json.loads(output.stdout.splitlines()[-1])["us"])


def inproc(requests: int, rounds: int) -> None:
    """Print CPU microseconds per request in-process, and the ratios to Starlette."""
    require(PEERS_BIN / "python", "run: bash benchmarks/setup_peers.sh")
    costs = {name: _run_side(name, requests, rounds) for name in APPS}
    print(f"in-process, CPU us per request (best of {rounds} x {requests}):")
    for name, cost in costs.items():
        print(f"  {name:10s} {cost:8.1f} us   {cost / costs['starlette']:.2f}x Starlette")


def _wait_route(server: Server, timeout: float) -> None:
    """Poll GET PATH until it answers 200 (the apps have no route at /)."""
    deadline = time.monotonic() + timeout
    request = f"GET {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(f"{server.name} exited:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerFailed(f"{server.name} did not answer {PATH}:\n{server.log_tail()}")


def server(seconds: int) -> None:
    """Each app behind a server, loaded by wrk: requests/s and server CPU us per request."""
    require(PEERS_BIN / "uvicorn", "run: bash benchmarks/setup_peers.sh")
    runs = [
        ("ours on asgi-server", sys.executable, ["-m", "asgi_server"], "ours"),
        ("starlette on asgi-server", str(PEERS_BIN / "python"), ["-m", "asgi_server"], "starlette"),
        ("django on asgi-server", str(PEERS_BIN / "python"), ["-m", "asgi_server"], "django"),
        ("starlette on uvicorn", str(PEERS_BIN / "uvicorn"), [], "starlette"),
    ]
    for label, program, prefix, side in runs:
        port = free_port()
        spec = f"benchmarks.app_route:{side}_app"
        command = [program, *prefix, spec, "--factory", "--port", str(port)]
        command += ["--no-access-log"]
        with start_server(label, command, port, cpu=0, ready=_wait_route) as running:
            before = group_cpu_seconds(running.process.pid)
            url = f"http://127.0.0.1:{port}{PATH}"
            wrk = ["wrk", "-t1", "-c16", f"-d{seconds}s", url]
            out = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
            cpu = group_cpu_seconds(running.process.pid) - before
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        rate = float(found.group(1)) if found else 0.0
        count = int(total.group(1)) if total else 1
        print(f"  {label:26s} {rate:9.0f} req/s   {cpu / count * 1e6:7.1f} us CPU/request")


def main() -> None:
    """Parse the options and run one mode (or one side, in a subprocess)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["inproc", "server"], default="inproc")
    parser.add_argument("--side", choices=list(APPS))
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    options = parser.parse_args()
    if options.side:
        _side(options.side, options.requests, options.rounds)
        return
    if options.mode == "inproc":
        inproc(options.requests, options.rounds)
    else:
        server(options.seconds)
    print(f"(load average {load_average()})")


if __name__ == "__main__":
    main()
