"""A WAMP router for the cluster and browser tests: one per server process (or --workers
worker), joined through the channel layer that CHANNEL_LAYERS_URL names.

Each process answers ``com.worker.pid`` (a round-robin registration shared by every process)
and ``com.pid.<its PID>`` with its PID; its Python component republishes every ``com.chat``
event on ``com.chat.seen``. Over HTTP it serves a blank page at ``/`` that loads autobahn.js
from ``/autobahn.min.js``."""

from __future__ import annotations

import os
from typing import Any

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Limits, Realm, Router, publish
from consumers.wamp.browser import autobahn_js

router = Router(
    realms=[Realm("realm1")],
    limits=Limits(max_retained_events=int(os.environ.get("WAMP_MAX_RETAINED_EVENTS", "1000"))),
    sync_interval=float(os.environ.get("WAMP_SYNC_INTERVAL", "2")),
)
PAGE = b"<!doctype html><title>wamp</title><script src='/autobahn.min.js'></script>"


@router.register("realm1", "com.worker.pid", invoke="roundrobin")
@router.register("realm1", f"com.pid.{os.getpid()}")
def worker_pid() -> int:
    """The PID of the process that served the call."""
    return os.getpid()


@router.subscribe("realm1", "com.chat")
async def seen(*args: Any) -> None:
    """The Python component's echo: what it saw on com.chat, and where it ran."""
    await publish("realm1", "com.chat.seen", *args, pid=os.getpid())


async def page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The test page: autobahn.js and nothing else (the test drives it)."""
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAGE})


application = ProtocolTypeRouter(
    {
        "http": URLRouter([path("autobahn.min.js", autobahn_js), path("", page)]),
        "websocket": URLRouter([path("ws", router.as_asgi())]),
    }
)
