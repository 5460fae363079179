"""A WAMP router for the cluster tests: one per server process (or --workers worker), joined
through the channel layer that CHANNEL_LAYERS_URL names. Each process answers
``com.worker.pid`` (a round-robin registration shared by every process) with its PID."""

from __future__ import annotations

import os

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router

router = Router(
    realms=[Realm("realm1")], sync_interval=float(os.environ.get("WAMP_SYNC_INTERVAL", "2"))
)


@router.register("realm1", "com.worker.pid", invoke="roundrobin")
def worker_pid() -> int:
    """The PID of the process that served the call."""
    return os.getpid()


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws", router.as_asgi())])})
