"""consumers.wamp: a WAMP v2 router (pub/sub and routed RPC) that is an ASGI application.

```python
from consumers.wamp import Router, Realm
router = Router(realms=[Realm("realm1")])
application = ProtocolTypeRouter({"websocket": URLRouter([path("ws", router.as_asgi())])})
```

Modules, one per role: ``session`` (the sans-IO session state machine), ``broker`` and ``filter``
(who gets an event), ``dealer`` (who answers a call), ``state`` (the realm's routing state behind
the ``RoutingState`` interface), ``index`` (pattern matching), ``realm``, ``router``, ``asgi`` (the
WebSocket endpoint), ``component`` (in-process sessions) and ``api`` (publish/call from anywhere).
"""

from __future__ import annotations

from .api import call, call_sync, publish, publish_sync
from .component import ComponentSession, JoinRefused
from .realm import Realm
from .router import Router
from .settings import LIMIT_EXCEEDED, Limits
from .state import LocalRoutingState, RoutingState

__all__ = [
    "LIMIT_EXCEEDED",
    "ComponentSession",
    "JoinRefused",
    "Limits",
    "LocalRoutingState",
    "Realm",
    "Router",
    "RoutingState",
    "call",
    "call_sync",
    "publish",
    "publish_sync",
]
