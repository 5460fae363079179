"""consumers.web: the path types of one port, as ASGI apps (Crossbar.io's web transport).

```python
from consumers.routing import URLRouter, path
from consumers.web import StaticFiles, WsgiApp, Publisher, Caller, Webhook
```

``static`` (a directory), ``wsgi`` (any WSGI app in the thread pool), ``bridge`` (``Publisher``,
``Caller`` and ``Webhook``: HTTP POST to WAMP publish and call), ``signing`` (Crossbar's request
signatures) and ``crossbar`` (run a Crossbar.io ``config.json``). Each app works alone and mounted
in a URLRouter (it serves everything below its prefix). The bridge needs the ``wamp`` extra; it
is imported on first use, so ``import consumers.web`` works without autobahn.
"""

from __future__ import annotations

from typing import Any

from .redirect import Redirect
from .static import StaticFiles
from .wsgi import WsgiApp

_BRIDGE = ("Caller", "Publisher", "Webhook", "BridgeSecurity")

__all__ = [
    "BridgeSecurity",
    "Caller",
    "Publisher",
    "Redirect",
    "StaticFiles",
    "Webhook",
    "WsgiApp",
]


def __getattr__(name: str) -> Any:
    if name in _BRIDGE:
        from . import bridge

        return getattr(bridge, name)
    raise AttributeError(f"module 'consumers.web' has no attribute {name!r}")
