"""autobahn.js for the browser, served by the project itself.

``autobahn.min.js`` (npm ``autobahn-browser``, MIT; see ``static/vendor/autobahn-browser/``)
ships with Crossway, so a page can load it from the same server that routes its WAMP
sessions: ``path("autobahn.min.js", autobahn_js)`` in the HTTP URLRouter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

#: The vendored autobahn.js (a UMD build: ``<script src=...>`` sets ``window.autobahn``).
AUTOBAHN_JS = Path(__file__).parent / "static" / "vendor" / "autobahn-browser" / "autobahn.min.js"

_body: bytes | None = None


async def autobahn_js(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """An ASGI HTTP app answering with autobahn.min.js (cached in memory after the first read)."""
    global _body
    if _body is None:
        _body = AUTOBAHN_JS.read_bytes()
    headers = [
        (b"content-type", b"text/javascript; charset=utf-8"),
        (b"cache-control", b"public, max-age=86400"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _body})
