"""The exception ``send()`` raises to an app whose client has gone (HTTP and WebSocket alike).

It lives apart from ``asgi/http.py`` so that the hot-path modules hold no subclass of a builtin
exception: mypyc compiles them as they are (benchmarks/README.md, "Third pass on HTTP").
"""

from __future__ import annotations


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone: an ``OSError``, as the ASGI HTTP and
    WebSocket specs (2.4) ask. One class for both (``asgi.http`` and ``asgi.websocket``
    re-export it)."""
